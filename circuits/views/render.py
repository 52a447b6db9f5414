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

Three modules, re-exported here: :mod:`circuits.views.figures` (:class:`Figure`, escaping, the
circuitsvis bundle and attention view, tables, pages), :mod:`circuits.views.charts` (heatmaps,
line charts) and :mod:`circuits.views.graph_svg` (the circuit graph).
"""

from circuits.views.charts import BLUE, RED, WHITE, color, heatmap, intensity, line_chart
from circuits.views.figures import (
    CSS,
    FONT,
    PALETTE,
    Figure,
    Section,
    attention_heads,
    bundle_tag,
    circuitsvis_bundle,
    error_figure,
    esc,
    js_json,
    page,
    table,
)
from circuits.views.graph_svg import circuit_svg

__all__ = [
    "BLUE",
    "CSS",
    "FONT",
    "PALETTE",
    "RED",
    "WHITE",
    "Figure",
    "Section",
    "attention_heads",
    "bundle_tag",
    "circuit_svg",
    "circuitsvis_bundle",
    "color",
    "error_figure",
    "esc",
    "heatmap",
    "intensity",
    "js_json",
    "line_chart",
    "page",
    "table",
]
