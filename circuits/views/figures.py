"""Figures: self-contained HTML fragments, the circuitsvis bundle, and pages assembled from them.

A :class:`Figure` is an HTML fragment that needs no network; a notebook displays it inline
(with circuitsvis's bundle inlined when it needs it) and :func:`page` assembles figures
into one document that holds the bundle once. Attention patterns are circuitsvis's
``AttentionHeads`` component run from the JavaScript bundle shipped inside the circuitsvis
package (never its CDN). Every text that comes from data is HTML-escaped (:func:`esc`);
data passed to JavaScript is JSON with ``<``, ``>`` and ``&`` escaped (:func:`js_json`).
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
    """circuitsvis's bundled script as one inline ``<script>`` tag (no network request)."""
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


def fmt_number(x: float) -> str:
    """Three significant digits (``nan`` for nan or None): the numbers in tooltips and axes."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}"


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
        raise ValueError(
            f"attention patterns of shape {tuple(pat.shape)} do not fit {len(head_names)} heads and "
            f"{len(tokens)} tokens"
        )
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
    return Figure(
        f'<table class="gs-table">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>', title=title
    )


# ----------------------------------------------------------------------------------- page
CSS = (
    """
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
"""
    % FONT
)


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
        out.append(f"<section><h2>{esc(s.title)}</h2>")
        if s.note:
            out.append(f'<p class="gs-note">{esc(s.note)}</p>')
        out.append('<div class="gs-row">')
        for f in s.figures:
            out.append(f.html if isinstance(f, Figure) else f)
        out.append("</div></section>")
    out.append("</body></html>")
    return "\n".join(x for x in out if x)


def error_figure(message: str) -> Figure:
    """A figure that shows ``message`` as an error, in place of a section that failed."""
    return Figure(f'<p class="gs-error">{esc(message)}</p>')
