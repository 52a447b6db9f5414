"""Feature dashboards as self-contained HTML: one card per feature, in the style of SAE-dashboard.

A card shows a feature's frequency and largest activation, the task variable it best
matches (knowledge-graph ground truth), an SVG histogram of its non-zero activations, the
tokens it promotes and suppresses through the unembedding, and its top-activating prompts
with every read token shaded by the feature's activation there (hover for the value; the
largest is outlined, unread positions are grey, the answer follows in italics).

The data comes from :func:`interp.features.dashboard.dashboard_data`; every token name is
HTML-escaped (``<e_3>`` is text, never a tag) and nothing is fetched from the network.
A :class:`~circuits.views.figures.Figure` shows inline in a notebook (``_repr_html_``);
:func:`dashboard_page` is one standalone HTML document.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from circuits.views.charts import color, intensity
from circuits.views.figures import FONT, Figure, Section, esc, fmt_number, page
from interp.features.dashboard import Dashboard, FeatureDashboard, TopExample
from interp.io import atomic_write_text

STYLE = (
    """<style>
.gs-fd { %s; font-size: 13px; color: #222; }
.gs-fd-card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; margin: 10px 0; max-width: 1120px; }
.gs-fd-head { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
.gs-fd-title { font-weight: 600; font-size: 15px; }
.gs-fd-stat { color: #555; }
.gs-fd-match { background: #eef5ee; border-radius: 4px; padding: 1px 6px; }
.gs-fd-body { display: flex; gap: 22px; flex-wrap: wrap; align-items: flex-start; margin-top: 8px; }
.gs-fd-col h4 { margin: 2px 0 6px 0; font-size: 12px; color: #555; font-weight: 600; }
.gs-fd-logits td { padding: 1px 6px; font-family: ui-monospace, monospace; font-size: 12px; }
.gs-fd-logits td.gs-fd-num { text-align: right; color: #444; }
.gs-fd-ex { font-family: ui-monospace, monospace; font-size: 12px; margin: 2px 0; white-space: nowrap; }
.gs-fd-tok { display: inline-block; padding: 1px 3px; margin: 0 1px; border-radius: 3px; border: 1px solid transparent; }
.gs-fd-tok.gs-fd-max { border-color: #d62728; }
.gs-fd-tok.gs-fd-unread { color: #999; background: #f3f3f3; }
.gs-fd-ans { color: #777; font-style: italic; margin-left: 6px; }
.gs-fd-val { color: #555; margin-right: 8px; display: inline-block; min-width: 44px; text-align: right; }
.gs-fd-note { color: #555; max-width: 900px; line-height: 1.4; }
</style>"""
    % FONT
)


def _token(tok: str, act: float | None, top: float, is_max: bool, pos_name: str) -> str:
    if act is None:
        return f'<span class="gs-fd-tok gs-fd-unread" title="{esc(pos_name)}: not read">{esc(tok)}</span>'
    hi = top if top > 0 else 1.0
    fill = color(0.85 * act, 0.0, hi, False)
    ink = "#ffffff" if intensity(0.85 * act, 0.0, hi, False) > 0.55 else "#222222"
    cls = "gs-fd-tok gs-fd-max" if is_max else "gs-fd-tok"
    tip = f"{pos_name}: {fmt_number(act)}"
    return f'<span class="{cls}" style="background:{fill};color:{ink}" title="{esc(tip)}">{esc(tok)}</span>'


def example_html(ex: TopExample, top: float, position_names: Sequence[str]) -> str:
    """One prompt, its tokens shaded by the feature's activation, the answer after it."""
    names = [position_names[p] if p < len(position_names) else str(p) for p in range(len(ex.tokens))]
    toks = "".join(
        _token(t, a, top, p == ex.position, names[p]) for p, (t, a) in enumerate(zip(ex.tokens, ex.activations))
    )
    return (
        f'<div class="gs-fd-ex"><span class="gs-fd-val">{esc(fmt_number(ex.activation))}</span>{toks}'
        f'<span class="gs-fd-ans">&#8594; {esc(ex.answer)}</span></div>'
    )


def histogram_svg(
    counts: Sequence[int],
    edges: Sequence[float],
    *,
    width: int = 240,
    height: int = 110,
    title: str = "activations when active",
) -> str:
    """Bars of ``counts`` over ``edges`` as inline SVG, hover for each bin's range and count."""
    left, top, bottom = 34, 16, 22
    pw, ph = width - left - 8, height - top - bottom
    peak = max(counts, default=0) or 1
    n = max(len(counts), 1)
    bw = pw / n
    parts = [
        f'<svg class="gs-fd-hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}" style="{FONT}">',
        f'<text x="{left}" y="11" font-size="11" fill="#555">{esc(title)}</text>',
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>',
    ]
    for i, c in enumerate(counts):
        h = ph * c / peak
        lo, hi = (edges[i], edges[i + 1]) if i + 1 < len(edges) else (0.0, 0.0)
        tip = f"{fmt_number(lo)} to {fmt_number(hi)}: {c}"
        parts.append(
            f'<rect x="{left + i * bw:.1f}" y="{top + ph - h:.1f}" width="{max(bw - 1, 0.5):.1f}" '
            f'height="{h:.1f}" fill="#1f77b4"><title>{esc(tip)}</title></rect>'
        )
    parts.append(
        f'<text x="{left - 4}" y="{top + 8}" font-size="9" text-anchor="end">{peak}</text>'
        f'<text x="{left - 4}" y="{top + ph}" font-size="9" text-anchor="end">0</text>'
    )
    if edges:
        parts.append(
            f'<text x="{left}" y="{height - 6}" font-size="9">{esc(fmt_number(edges[0]))}</text>'
            f'<text x="{left + pw}" y="{height - 6}" font-size="9" text-anchor="end">{esc(fmt_number(edges[-1]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _logit_table(rows: Sequence[tuple[str, float]], title: str, colour: str) -> str:
    if not rows:
        return ""
    peak = max(abs(v) for _, v in rows) or 1.0
    body = "".join(
        f'<tr><td>{esc(tok)}</td><td class="gs-fd-num">{esc(fmt_number(v))}</td>'
        f'<td><svg width="60" height="9"><rect width="{60 * abs(v) / peak:.1f}" height="9" fill="{colour}"/></svg></td></tr>'
        for tok, v in rows
    )
    return f'<div class="gs-fd-col"><h4>{esc(title)}</h4><table class="gs-fd-logits">{body}</table></div>'


def feature_card(fd: FeatureDashboard, position_names: Sequence[str]) -> str:
    """The HTML of one feature's card (see the module docstring)."""
    best = fd.best_match
    match = (
        (
            f'<span class="gs-fd-match" title="{esc(f"support {best.support} active rows")}">'
            f"{esc(best.variable)} = {esc(best.value)}: precision {fmt_number(best.precision)}, "
            f"recall {fmt_number(best.recall)}</span>"
        )
        if best
        else '<span class="gs-fd-stat">no task variable</span>'
    )
    head = (
        f'<div class="gs-fd-head"><span class="gs-fd-title">feature {fd.feature}</span>'
        f'<span class="gs-fd-stat">frequency {fmt_number(fd.frequency)} ({fd.n_active} rows)</span>'
        f'<span class="gs-fd-stat">max {fmt_number(fd.max_activation)}, mean {fmt_number(fd.mean_activation)}</span>'
        f"{match}</div>"
    )
    examples = "".join(example_html(ex, fd.max_activation, position_names) for ex in fd.top_examples)
    body = (
        f'<div class="gs-fd-body"><div class="gs-fd-col"><h4>top activations</h4>{examples or "none"}</div>'
        f'<div class="gs-fd-col">{histogram_svg(fd.histogram, fd.bin_edges)}</div>'
        f"{_logit_table(fd.promoted, 'promoted logits', '#1f77b4')}"
        f"{_logit_table(fd.suppressed, 'suppressed logits', '#d62728')}</div>"
    )
    return f'<div class="gs-fd-card" id="gs-fd-{fd.feature}">{head}{body}</div>'


def dashboard_figure(data: Dashboard, *, title: str = "") -> Figure:
    """All cards of ``data`` with a header line, as one figure (inline in a notebook)."""
    alive = int((data.frequencies > 0).sum())
    caption = title or f"features of {data.hook_name}"
    summary = (
        f"{data.d_sae} features, {alive} active on some row; {data.n_rows} rows from {data.n_prompts} prompts. "
        f"Shown: {data.selection}. Logits: {data.logit_note}."
    )
    cards = "".join(feature_card(fd, data.position_names) for fd in data.features)
    body = (
        f'<div class="gs-fd">{STYLE}<div class="gs-caption">{esc(caption)}</div>'
        f'<p class="gs-fd-note">{esc(summary)}</p>{cards}</div>'
    )
    return Figure(body, title=caption)


def dashboard_page(data: Dashboard, *, title: str = "") -> str:
    """A standalone HTML document of the dashboard (no network, as every grokscope page)."""
    name = title or f"feature dashboard: {data.hook_name}"
    return page(name, [Section("Features", [dashboard_figure(data, title=name)])])


def write_dashboard(data: Dashboard, path: str | Path, *, title: str = "") -> Path:
    """Write :func:`dashboard_page` to ``path`` atomically; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, dashboard_page(data, title=title))
    return out


__all__ = ["dashboard_figure", "dashboard_page", "example_html", "feature_card", "histogram_svg", "write_dashboard"]
