"""Renderers: heatmaps, line charts, circuit graphs and attention patterns as self-contained HTML.

Every renderer returns a :class:`Figure`: an HTML fragment that needs no network. Charts
are inline SVG drawn here; attention patterns are circuitsvis's ``AttentionHeads``
component, run from the JavaScript bundle shipped inside the circuitsvis package (never
its CDN). A notebook displays a figure inline (``_repr_html_``, with the bundle inlined
when the figure needs it); :func:`page` assembles figures into one HTML document that
holds the bundle once.

Every text that comes from data (token names such as ``<e_3>``, position names, titles)
is HTML-escaped; data passed to JavaScript is JSON with ``<``, ``>`` and ``&`` escaped,
so no token can close a tag or a script.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.graph import CircuitGraph, Node

FONT = "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def esc(text: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(text), quote=True)


def js_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>``: ``<``, ``>`` and ``&`` are escaped as unicode."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def circuitsvis_bundle() -> str:
    """circuitsvis's browser bundle (defines ``CircuitsVis``), from the installed package, script-safe."""
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    if not path.is_file():
        raise FileNotFoundError(f"circuitsvis's bundled script is missing ({path}); reinstall circuitsvis")
    # "</script" only occurs inside string literals, where "<\/script" is the same string.
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")


def bundle_tag() -> str:
    return f"<script>{circuitsvis_bundle()}</script>"


@dataclass
class Figure:
    """An HTML fragment; ``needs_circuitsvis`` if it calls the circuitsvis bundle."""

    html: str
    needs_circuitsvis: bool = False
    title: str = ""

    def _repr_html_(self) -> str:
        return (bundle_tag() + self.html) if self.needs_circuitsvis else self.html

    def __html__(self) -> str:
        return self._repr_html_()


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


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}"


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
        raise ValueError(f"heatmap values of shape {tuple(v.shape)} do not match {len(row_labels)} x {len(col_labels)} labels")
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
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" font-size="11" text-anchor="end">{esc(row_labels[i])}</text>')
        for j in range(n_cols):
            x = left + j * label_w
            val = float(v[i, j])
            fill = color(val, lo, hi, diverging)
            tip = f"{row_title} {row_labels[i]}, {col_title} {col_labels[j]}: {_fmt(val)}"
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
    parts.append(f'<text x="{left + n_cols * label_w / 2}" y="{base + 34}" font-size="11" text-anchor="middle" '
                 f'fill="#555">{esc(col_title)}</text>')
    parts.append(f'<text x="14" y="{top + n_rows * cell / 2}" font-size="11" text-anchor="middle" fill="#555" '
                 f'transform="rotate(-90 14 {top + n_rows * cell / 2})">{esc(row_title)}</text>')
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
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(b):.1f}" y2="{py(b):.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{py(b) + 4:.1f}" font-size="10" text-anchor="end">{esc(_fmt(b))}</text>')
    if log_x:  # ticks at powers of ten (and the ends when there are fewer than two)
        ticks = [float(k) for k in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
        if len(ticks) < 2:
            ticks = sorted({x_lo, *ticks, x_hi})
    else:
        ticks = [x_lo + (x_hi - x_lo) * k / 4 for k in range(5)]
    for a in ticks:
        label = 10 ** a if log_x else a
        text = f"{label:.0f}" if abs(label - round(label)) < 1e-6 * max(1.0, abs(label)) else _fmt(label)
        parts.append(f'<line x1="{px(a):.1f}" x2="{px(a):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
                     f'<text x="{px(a):.1f}" y="{top + ph + 15}" font-size="10" text-anchor="middle">{esc(text)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#555">'
                 f'{esc(x_title + (" (log)" if log_x else ""))}</text>')
    if y_title:
        parts.append(f'<text x="12" y="{top + ph / 2}" font-size="11" text-anchor="middle" fill="#555" '
                     f'transform="rotate(-90 12 {top + ph / 2})">{esc(y_title)}</text>')
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
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2">'
                         f'<title>{esc(name)}</title></polyline>')
            if markers or len(seg) == 1:
                parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{col}"/>' for a, b in seg]
        ly = top + 10 + 16 * i
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 28}" y1="{ly}" y2="{ly}" stroke="{col}" stroke-width="3"/>'
                     f'<text x="{left + pw + 32}" y="{ly + 4}" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return Figure("".join(parts), title=title)


# ------------------------------------------------------------------------- circuit graph
def circuit_svg(
    circuit: CircuitGraph,
    *,
    title: str = "",
    column_labels: Sequence[str] | None = None,
    max_edges: int | None = 300,
) -> Figure:
    """The circuit as a layered SVG: one column per position, layers bottom to top.

    Each column holds the embedding (bottom), per layer a row of heads and the MLP above it,
    and the logits (top) where they are read. Nodes of the circuit are drawn dark, the rest
    faint; edges are blue where corrupting them lowers the metric (negative score) and red
    where it raises it, with width by |score| and the input channel (q, k, v) on hover.
    Dashed arcs join a head's key/value input at one position to its output at a later one:
    information the head moves. ``max_edges`` draws only the strongest edges.
    """
    L, H, P = circuit.n_layers, circuit.n_heads, len(circuit.positions)
    labels = list(column_labels) if column_labels is not None else list(circuit.positions)
    col_w = max(150, 34 * H + 40)
    row_h = 46
    left, top = 60, 20
    height = top + (2 * L + 2) * row_h + 40
    width = left + P * col_w + 20

    def xy(n: Node) -> tuple[float, float]:
        cx = left + n.pos * col_w + col_w / 2
        if n.kind == "embed":
            return cx, top + (2 * L + 1) * row_h + row_h / 2
        if n.kind == "logits":
            return cx, top + row_h / 2
        assert n.layer is not None
        level = 2 * n.layer + (1 if n.kind == "mlp" else 0)  # 0 = lowest head row
        y = top + (2 * L - level) * row_h + row_h / 2
        if n.kind == "head":
            assert n.head is not None
            return cx + (n.head - (H - 1) / 2) * 32, y
        return cx, y

    in_circuit = set(circuit.nodes)
    edges = sorted(circuit.edges.items(), key=lambda kv: -abs(kv[1]))
    if max_edges is not None:
        edges = edges[:max_edges]
    biggest = max((abs(s) for _, s in edges), default=0.0) or 1.0
    parts = [
        f'<svg class="gs-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title or "circuit graph")}" style="{FONT}">'
    ]
    for p in range(P):
        x0 = left + p * col_w
        parts.append(f'<rect x="{x0 + 4}" y="{top - 4}" width="{col_w - 8}" height="{(2 * L + 2) * row_h + 8}" '
                     f'fill="{"#f6f8fb" if p % 2 else "#fbfbfb"}" rx="6"/>')
        parts.append(f'<text x="{x0 + col_w / 2}" y="{height - 14}" font-size="12" text-anchor="middle" '
                     f'font-weight="600">{esc(labels[p])}</text>')
    for layer in range(L):
        for kind, lvl in (("attn", 2 * layer), ("mlp", 2 * layer + 1)):
            y = top + (2 * L - lvl) * row_h + row_h / 2
            parts.append(f'<text x="{left - 8}" y="{y + 4}" font-size="10" text-anchor="end" fill="#666">{kind} {layer}</text>')
    # movers: dashed arcs from a head's k/v input at p' to its output at p > p'
    kv = {(e.dst.layer, e.dst.head, e.pos) for e in circuit.edges if e.dst.kind == "head" and e.channel in ("k", "v")}
    outs = {(e.src.layer, e.src.head, e.pos) for e in circuit.edges if e.src.kind == "head"}
    for (layer, head, p_src) in sorted(kv):
        for p_dst in range(p_src + 1, P):
            if (layer, head, p_dst) in outs:
                x1, y1 = xy(Node("head", p_src, layer, head))
                x2, y2 = xy(Node("head", p_dst, layer, head))
                parts.append(
                    f'<path class="gs-mover" d="M{x1:.1f},{y1:.1f} Q{(x1 + x2) / 2:.1f},{y1 - 40:.1f} {x2:.1f},{y2:.1f}" '
                    f'fill="none" stroke="#7b3294" stroke-width="1.6" stroke-dasharray="5,3">'
                    f'<title>{esc(f"a{layer}.{head} moves {labels[p_src]} -> {labels[p_dst]}")}</title></path>'
                )
    for e, s in reversed(edges):
        x1, y1 = xy(e.src)
        x2, y2 = xy(e.dst)
        col = "#2166ac" if s < 0 else "#b2182b"
        w = 0.6 + 4.0 * abs(s) / biggest
        bend = 18 if e.channel in ("k", "v") else 0
        parts.append(
            f'<path class="gs-edge" d="M{x1:.1f},{y1:.1f} Q{(x1 + x2) / 2 + bend:.1f},{(y1 + y2) / 2:.1f} {x2:.1f},{y2:.1f}" '
            f'fill="none" stroke="{col}" stroke-opacity="0.55" stroke-width="{w:.2f}">'
            f'<title>{esc(f"{e.src.name} -> {e.dst.name} ({e.channel}): {_fmt(s)}")}</title></path>'
        )
    for p in range(P):
        nodes = [Node("embed", p)]
        for layer in range(L):
            nodes += [Node("head", p, layer, h) for h in range(H)] + [Node("mlp", p, layer)]
        if p in circuit.logit_positions:
            nodes.append(Node("logits", p))
        for n in nodes:
            x, y = xy(n)
            on = n in in_circuit
            short = {"embed": "emb", "logits": "out", "mlp": f"m{n.layer}", "head": f"{n.layer}.{n.head}"}[n.kind]
            score = circuit.node_scores.get(n)
            tip = n.name + ("" if score is None else f": {_fmt(score)}")
            fill = "#ffffff" if not on else ("#fde0c5" if n.kind == "mlp" else "#d1e5f0" if n.kind == "head" else "#e0e0e0")
            stroke = "#333" if on else "#cccccc"
            if n.kind == "head":
                shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="13" fill="{fill}" stroke="{stroke}"/>'
            else:
                shape = (f'<rect x="{x - 22:.1f}" y="{y - 12:.1f}" width="44" height="24" rx="4" '
                         f'fill="{fill}" stroke="{stroke}"/>')
            parts.append(
                f'<g class="gs-node{" gs-in" if on else ""}"><title>{esc(tip)}</title>{shape}'
                f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="9.5" text-anchor="middle" fill="{"#111" if on else "#bbb"}">'
                f'{esc(short)}</text></g>'
            )
    parts.append("</svg>")
    caption = f'<figcaption class="gs-caption">{esc(title)}</figcaption>' if title else ""
    return Figure(f'<figure class="gs-figure">{caption}{"".join(parts)}</figure>', title=title)


# ------------------------------------------------------------------------------ attention
def attention_heads(
    patterns: Float[Tensor, "head_index pos pos"],
    tokens: Sequence[str],
    head_names: Sequence[str],
    *,
    title: str = "",
) -> Figure:
    """circuitsvis's ``AttentionHeads`` (destination x source patterns, one per head), run from the local bundle."""
    pat = torch.as_tensor(patterns, dtype=torch.float32)
    if pat.ndim != 3 or pat.shape[1] != len(tokens) or pat.shape[2] != len(tokens) or pat.shape[0] != len(head_names):
        raise ValueError(f"attention patterns of shape {tuple(pat.shape)} do not fit {len(head_names)} heads and "
                         f"{len(tokens)} tokens")
    div = "gs-attn-" + uuid.uuid4().hex[:12]
    props = {
        "attention": [[[round(float(v), 5) for v in row] for row in head] for head in pat],
        "tokens": [str(t) for t in tokens],
        "attentionHeadNames": [str(h) for h in head_names],
        "maxValue": 1.0,
        "minValue": 0.0,
        "maskUpperTri": True,
    }
    caption = f'<div class="gs-caption">{esc(title)}</div>' if title else ""
    body = (
        f'<div class="gs-attention">{caption}<div id="{div}"></div>'
        f'<script>CircuitsVis.render("{div}", CircuitsVis.AttentionHeads, {js_json(props)});</script></div>'
    )
    return Figure(body, needs_circuitsvis=True, title=title)


def table(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """A plain HTML table (keys of the first row as columns; floats to 4 significant digits)."""
    if not rows:
        return Figure(f"<p>{esc(title)}: nothing to show</p>", title=title)
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    caption = f"<caption>{esc(title)}</caption>" if title else ""
    return Figure(f'<table class="gs-table">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>', title=title)


# ----------------------------------------------------------------------------------- page
CSS = """
body { margin: 24px auto; max-width: 1180px; padding: 0 16px; color: #222; %s; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; }
p.gs-note { color: #555; max-width: 900px; line-height: 1.45; }
.gs-row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.gs-table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
.gs-table td, .gs-table th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
.gs-table caption { text-align: left; font-weight: 600; padding: 4px 0; }
.gs-caption { font-size: 13px; font-weight: 600; margin: 6px 0; max-width: 760px; }
figure.gs-figure { margin: 0; }
.gs-error { color: #a00; }
""" % FONT


@dataclass
class Section:
    """A titled part of a page: a note and figures laid out in a row."""

    title: str
    figures: Sequence[Figure | str]
    note: str = ""


def page(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """One self-contained HTML document: inline CSS and SVG, the circuitsvis bundle once if needed.

    A Content-Security-Policy forbids every network fetch, so the page is the same offline.
    """
    needs_cv = any(isinstance(f, Figure) and f.needs_circuitsvis for s in sections for f in s.figures)
    csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style>",
        bundle_tag() if needs_cv else "",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="gs-note">{esc(subtitle)}</p>' if subtitle else "",
    ]
    for s in sections:
        out.append(f'<section><h2>{esc(s.title)}</h2>')
        if s.note:
            out.append(f'<p class="gs-note">{esc(s.note)}</p>')
        out.append('<div class="gs-row">')
        for f in s.figures:
            out.append(f.html if isinstance(f, Figure) else f)
        out.append("</div></section>")
    out.append("</body></html>")
    return "\n".join(x for x in out if x)


def error_figure(message: str) -> Figure:
    return Figure(f'<p class="gs-error">{esc(message)}</p>')
