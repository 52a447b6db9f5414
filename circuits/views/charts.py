"""Charts as inline SVG: labelled heatmaps (layer x position maps) and line charts (curves over training)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.views.figures import FONT, PALETTE, Figure, esc, fmt_number


# ------------------------------------------------------------------------------ colours
def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = min(1.0, max(0.0, t))
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b))
    return f"#{r:02x}{g:02x}{bl:02x}"


WHITE, BLUE, RED = (255, 255, 255), (8, 69, 148), (165, 15, 21)


def intensity(value: float, vmin: float, vmax: float, diverging: bool) -> float:
    """How far from white a value is drawn, 0..1 (nan: 0)."""
    if value is None or math.isnan(value):
        return 0.0
    if diverging:
        return min(1.0, abs(value) / (max(abs(vmin), abs(vmax)) or 1.0))
    return min(1.0, max(0.0, (value - vmin) / ((vmax - vmin) or 1.0)))


def color(value: float, vmin: float, vmax: float, diverging: bool) -> str:
    """White -> blue (sequential), or red <- white -> blue around 0 (diverging); grey for nan."""
    if value is None or math.isnan(value):
        return "#dddddd"
    t = intensity(value, vmin, vmax, diverging)
    return _mix(WHITE, RED if diverging and value < 0 else BLUE, t)


def _cell_text(x: float) -> str:
    """Two decimals for values of order one, three significant digits otherwise."""
    if math.isnan(x):
        return "nan"
    return f"{x:.2f}" if 0.01 <= abs(x) < 10 or x == 0 else f"{x:.2g}"


# ------------------------------------------------------------------------------ heatmap
def heatmap(
    values: Float[Tensor, "row col"] | Sequence[Sequence[float]],
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
    *,
    title: str = "",
    row_title: str = "layer",
    col_title: str = "position",
    vmin: float | None = None,
    vmax: float | None = None,
    diverging: bool | None = None,
    cell: int = 34,
    origin: str = "lower",
) -> Figure:
    """A labelled heatmap as inline SVG; ``origin="lower"`` puts row 0 at the bottom (layer 0 low, as the paper).

    Every cell carries a ``<title>`` (its labels and value) shown on hover.
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    if v.ndim != 2 or v.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"heatmap values of shape {tuple(v.shape)} do not match {len(row_labels)} x {len(col_labels)} labels"
        )
    finite = v[torch.isfinite(v)]
    lo = float(finite.min()) if vmin is None and finite.numel() else (vmin if vmin is not None else 0.0)
    hi = float(finite.max()) if vmax is None and finite.numel() else (vmax if vmax is not None else 1.0)
    if diverging is None:
        diverging = lo < 0 < hi
    n_rows, n_cols = v.shape
    left, top = 90, 34 if title else 12
    label_w = max(cell + 10, 44, 8 * max((len(str(c)) for c in col_labels), default=1))
    width = max(left + n_cols * label_w + 20, left + int(7.5 * len(title)) + 10)
    height = top + n_rows * cell + 48
    parts = [
        f'<svg class="gs-heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title or "heatmap")}" style="{FONT}">'
    ]
    if title:
        parts.append(f'<text x="{left}" y="18" font-size="13" font-weight="600">{esc(title)}</text>')
    for i in range(n_rows):
        row = n_rows - 1 - i if origin == "lower" else i
        y = top + row * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" font-size="11" text-anchor="end">{esc(row_labels[i])}</text>'
        )
        for j in range(n_cols):
            x = left + j * label_w
            val = float(v[i, j])
            fill = color(val, lo, hi, diverging)
            tip = f"{row_title} {row_labels[i]}, {col_title} {col_labels[j]}: {fmt_number(val)}"
            ink = "#ffffff" if intensity(val, lo, hi, diverging) > 0.55 else "#222222"
            parts.append(
                f'<g><title>{esc(tip)}</title><rect x="{x}" y="{y}" width="{label_w - 2}" height="{cell - 2}" '
                f'fill="{fill}" stroke="#ffffff"/>'
                f'<text x="{x + (label_w - 2) / 2}" y="{y + cell / 2 + 4}" font-size="10" text-anchor="middle" '
                f'fill="{ink}">{esc(_cell_text(val))}</text></g>'
            )
    base = top + n_rows * cell
    for j, lab in enumerate(col_labels):
        x = left + j * label_w + (label_w - 2) / 2
        parts.append(f'<text x="{x}" y="{base + 14}" font-size="11" text-anchor="middle">{esc(lab)}</text>')
    parts.append(
        f'<text x="{left + n_cols * label_w / 2}" y="{base + 34}" font-size="11" text-anchor="middle" '
        f'fill="#555">{esc(col_title)}</text>'
    )
    parts.append(
        f'<text x="14" y="{top + n_rows * cell / 2}" font-size="11" text-anchor="middle" fill="#555" '
        f'transform="rotate(-90 14 {top + n_rows * cell / 2})">{esc(row_title)}</text>'
    )
    parts.append("</svg>")
    return Figure("".join(parts), title=title)


# ---------------------------------------------------------------------------- line chart
def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    x_title: str = "step",
    y_title: str = "",
    y_range: tuple[float, float] | None = None,
    log_x: bool = False,
    width: int = 560,
    height: int = 300,
    markers: bool = False,
) -> Figure:
    """Lines (one per series, ``None`` gaps allowed) with axes, ticks and a legend, as inline SVG."""
    xs = [float(a) for a in x]
    if not xs:
        raise ValueError("a line chart needs at least one x value")
    if log_x and min(xs) <= 0:
        xs_t = [math.log10(a + 1.0) for a in xs]
    else:
        xs_t = [math.log10(a) for a in xs] if log_x else xs
    ys = [float(v) for vals in series.values() for v in vals if v is not None and not math.isnan(float(v))]
    lo, hi = y_range if y_range is not None else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if hi == lo:
        hi = lo + 1.0
    x_lo, x_hi = min(xs_t), max(xs_t)
    if x_hi == x_lo:
        x_hi = x_lo + 1.0
    longest = max((len(str(name)) for name in series), default=0)
    right = 40 + int(6.5 * longest)
    width = max(width, right + 260)
    left, top, bottom = 56, 30 if title else 12, 40
    pw, ph = width - left - right, height - top - bottom

    def px(a: float) -> float:
        return left + (a - x_lo) / (x_hi - x_lo) * pw

    def py(b: float) -> float:
        return top + ph - (b - lo) / (hi - lo) * ph

    parts = [
        f'<svg class="gs-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title or "chart")}" style="{FONT}">'
    ]
    if title:
        parts.append(f'<text x="{left}" y="18" font-size="13" font-weight="600">{esc(title)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>')
    for k in range(5):
        b = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{py(b):.1f}" y2="{py(b):.1f}" stroke="#e3e3e3"/>'
            f'<text x="{left - 6}" y="{py(b) + 4:.1f}" font-size="10" text-anchor="end">{esc(fmt_number(b))}</text>'
        )
    if log_x:  # ticks at powers of ten (and the ends when there are fewer than two)
        ticks = [float(k) for k in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
        if len(ticks) < 2:
            ticks = sorted({x_lo, *ticks, x_hi})
    else:
        ticks = [x_lo + (x_hi - x_lo) * k / 4 for k in range(5)]
    for a in ticks:
        label = 10**a if log_x else a
        text = f"{label:.0f}" if abs(label - round(label)) < 1e-6 * max(1.0, abs(label)) else fmt_number(label)
        parts.append(
            f'<line x1="{px(a):.1f}" x2="{px(a):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
            f'<text x="{px(a):.1f}" y="{top + ph + 15}" font-size="10" text-anchor="middle">{esc(text)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#555">'
        f"{esc(x_title + (' (log)' if log_x else ''))}</text>"
    )
    if y_title:
        parts.append(
            f'<text x="12" y="{top + ph / 2}" font-size="11" text-anchor="middle" fill="#555" '
            f'transform="rotate(-90 12 {top + ph / 2})">{esc(y_title)}</text>'
        )
    for i, (name, vals) in enumerate(series.items()):
        col = PALETTE[i % len(PALETTE)]
        segments, current = [], []
        for a, b in zip(xs_t, vals):
            if b is None or math.isnan(float(b)):
                if current:
                    segments.append(current)
                current = []
            else:
                current.append((px(a), py(min(max(float(b), lo), hi))))
        if current:
            segments.append(current)
        for seg in segments:
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in seg)
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2">'
                f"<title>{esc(name)}</title></polyline>"
            )
            if markers or len(seg) == 1:
                parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{col}"/>' for a, b in seg]
        ly = top + 10 + 16 * i
        parts.append(
            f'<line x1="{left + pw + 10}" x2="{left + pw + 28}" y1="{ly}" y2="{ly}" stroke="{col}" stroke-width="3"/>'
            f'<text x="{left + pw + 32}" y="{ly + 4}" font-size="11">{esc(name)}</text>'
        )
    parts.append("</svg>")
    return Figure("".join(parts), title=title)
