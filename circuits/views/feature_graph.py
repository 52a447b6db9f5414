"""An attribution graph (transcoder features, errors, embeddings, logits) drawn as a layered SVG.

Positions are columns (the prompt's tokens along the bottom), layers rows from the
embeddings (bottom) through each transcoder layer to the logits (top). In a cell the nodes
of that layer and position sit side by side, most influential first: features as circles,
errors as grey squares, embeddings and logits as labelled boxes. Edges are blue where the
direct effect is positive and red where it is negative, with width by ``|weight|``; every
node and edge has a hover title (feature, activation, influence; weight). All text from
the graph (tokens, labels) is HTML-escaped. The input is the Neuronpedia JSON
(:func:`interp.features.graph_to_json` / :func:`interp.features.load_graph_json`) or an
:class:`interp.features.AttributionGraph` (pruned here with the default thresholds)::

    from circuits.views.feature_graph import feature_graph_figure
    feature_graph_figure(load_graph_json(PATH), title="e0 r18 r9")   # displays inline in a notebook
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from circuits.views.figures import FONT, Figure, esc, fmt_number
from interp.features import AttributionGraph, graph_to_json
from interp.features.graph_json import check_graph_json

_KIND = {
    "cross layer transcoder": "feature",
    "mlp reconstruction error": "error",
    "embedding": "embedding",
    "logit": "logit",
}


def _as_json(graph: AttributionGraph | dict[str, Any]) -> dict[str, Any]:
    if isinstance(graph, AttributionGraph):
        return graph_to_json(graph, "graph")
    return check_graph_json(graph)


def _row(node: dict[str, Any], n_layers: int) -> int:
    """0 = embeddings, 1..n_layers = transcoder layers, n_layers + 1 = logits."""
    kind = _KIND[node["feature_type"]]
    if kind == "embedding":
        return 0
    if kind == "logit":
        return n_layers + 1
    return int(node["layer"]) + 1


def feature_graph_html(
    graph: AttributionGraph | dict[str, Any], *, title: str = "", max_edges: int | None = 400, max_per_cell: int = 8
) -> str:
    """The graph as an HTML ``<figure>`` with an inline SVG (see the module docstring).

    ``max_edges`` draws the strongest edges only; ``max_per_cell`` the most influential
    nodes of each (layer, position) cell (the rest are counted in the cell's corner).
    """
    data = _as_json(graph)
    nodes = data["nodes"]
    tokens = [str(t) for t in data["metadata"]["prompt_tokens"]]
    layers = [int(n["layer"]) for n in nodes if _KIND[n["feature_type"]] in ("feature", "error")]
    logit_layers = [int(n["layer"]) - 1 for n in nodes if _KIND[n["feature_type"]] == "logit"]
    n_layers = max([*(x + 1 for x in layers), *logit_layers, 0])
    n_pos = max([len(tokens), *(n["ctx_idx"] + 1 for n in nodes)])
    cells: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for n in nodes:
        cells[(_row(n, n_layers), n["ctx_idx"])].append(n)
    col_w, row_h, left, top, size = max(120, 26 * max_per_cell + 20), 64, 70, 24, 20
    width, height = left + n_pos * col_w + 20, top + (n_layers + 2) * row_h + 40
    where: dict[str, tuple[float, float]] = {}
    hidden: dict[tuple[int, int], int] = {}
    for (row, pos), members in cells.items():
        members.sort(key=lambda n: (n.get("influence") is None, n.get("influence") or 0.0))
        shown = members[:max_per_cell]
        hidden[(row, pos)] = len(members) - len(shown)
        y = top + (n_layers + 1 - row) * row_h + row_h / 2
        step = min(26.0, (col_w - 16) / max(1, len(shown)))
        for i, n in enumerate(shown):
            where[n["node_id"]] = (left + pos * col_w + col_w / 2 + (i - (len(shown) - 1) / 2) * step, y)
    links = [lk for lk in data["links"] if lk["source"] in where and lk["target"] in where]
    links.sort(key=lambda lk: -abs(lk["weight"]))
    if max_edges is not None:
        links = links[:max_edges]
    biggest = max((abs(lk["weight"]) for lk in links), default=0.0) or 1.0
    parts = [
        f'<svg class="gs-graph gs-feature-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(title or "attribution graph")}" style="{FONT}">'
    ]
    for p in range(n_pos):
        x0 = left + p * col_w
        parts.append(
            f'<rect x="{x0 + 4}" y="{top - 4}" width="{col_w - 8}" height="{(n_layers + 2) * row_h + 8}" '
            f'fill="{"#f6f8fb" if p % 2 else "#fbfbfb"}" rx="6"/>'
        )
        label = tokens[p] if p < len(tokens) else str(p)
        parts.append(
            f'<text x="{x0 + col_w / 2}" y="{height - 14}" font-size="12" text-anchor="middle" '
            f'font-weight="600">{esc(label)}</text>'
        )
    for row in range(n_layers + 2):
        name = "emb" if row == 0 else "logits" if row == n_layers + 1 else f"layer {row - 1}"
        y = top + (n_layers + 1 - row) * row_h + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" font-size="10" text-anchor="end" fill="#666">{esc(name)}</text>'
        )
    by_id = {n["node_id"]: n for n in nodes}
    for lk in reversed(links):
        (x1, y1), (x2, y2) = where[lk["source"]], where[lk["target"]]
        w = lk["weight"]
        colour = "#2166ac" if w >= 0 else "#b2182b"
        tip = f"{_name(by_id[lk['source']], tokens)} -> {_name(by_id[lk['target']], tokens)}: {fmt_number(w)}"
        parts.append(
            f'<path class="gs-edge" d="M{x1:.1f},{y1:.1f} Q{(x1 + x2) / 2 + 10:.1f},{(y1 + y2) / 2:.1f} '
            f'{x2:.1f},{y2:.1f}" fill="none" stroke="{colour}" stroke-opacity="0.55" '
            f'stroke-width="{0.6 + 4.0 * abs(w) / biggest:.2f}"><title>{esc(tip)}</title></path>'
        )
    for node_id, (x, y) in where.items():
        parts.append(_node_svg(by_id[node_id], x, y, size, tokens))
    for (row, pos), extra in hidden.items():
        if extra:
            y = top + (n_layers + 1 - row) * row_h + 12
            parts.append(
                f'<text x="{left + (pos + 1) * col_w - 10}" y="{y}" font-size="9" text-anchor="end" '
                f'fill="#888">+{extra}</text>'
            )
    parts.append("</svg>")
    caption = f'<figcaption class="gs-caption">{esc(title)}</figcaption>' if title else ""
    return f'<figure class="gs-figure">{caption}{"".join(parts)}</figure>'


def _name(node: dict[str, Any], tokens: list[str]) -> str:
    kind = _KIND[node["feature_type"]]
    pos = node["ctx_idx"]
    at = tokens[pos] if pos < len(tokens) else str(pos)
    if kind == "feature":
        feat = node["node_id"].split("_")[1]
        return f"L{node['layer']} f{feat} @ {at}"
    if kind == "error":
        return f"error L{node['layer']} @ {at}"
    if kind == "embedding":
        return f"embedding {at} (pos {pos})"
    return node.get("clerp") or f"logit {node['feature']}"


def _node_svg(node: dict[str, Any], x: float, y: float, size: float, tokens: list[str]) -> str:
    kind = _KIND[node["feature_type"]]
    tip = _name(node, tokens)
    if node.get("activation") is not None:
        tip += f", activation {fmt_number(node['activation'])}"
    if node.get("influence") is not None:
        tip += f", cumulative influence {fmt_number(node['influence'])}"
    if kind == "feature":
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size / 2 - 1:.1f}" fill="#d1e5f0" stroke="#333"/>'
        label = node["node_id"].split("_")[1]
    elif kind == "error":
        shape = (
            f'<rect x="{x - size / 2 + 2:.1f}" y="{y - size / 2 + 2:.1f}" width="{size - 4}" height="{size - 4}" '
            f'fill="#e0e0e0" stroke="#666"/>'
        )
        label = "err"
    else:
        shape = (
            f'<rect x="{x - 24:.1f}" y="{y - 11:.1f}" width="48" height="22" rx="4" '
            f'fill="{"#fde0c5" if kind == "logit" else "#eeeeee"}" stroke="#333"/>'
        )
        label = (
            tokens[node["ctx_idx"]]
            if kind == "embedding" and node["ctx_idx"] < len(tokens)
            else node.get("clerp", "").split('"')[1]
            if kind == "logit" and '"' in node.get("clerp", "")
            else str(node["feature"])
        )
    return (
        f'<g class="gs-node gs-{kind}"><title>{esc(tip)}</title>{shape}<text x="{x:.1f}" y="{y + 3:.1f}" '
        f'font-size="8.5" text-anchor="middle">{esc(label[:9])}</text></g>'
    )


def feature_graph_figure(
    graph: AttributionGraph | dict[str, Any], *, title: str = "", max_edges: int | None = 400, max_per_cell: int = 8
) -> Figure:
    """:func:`feature_graph_html` as a :class:`~circuits.views.figures.Figure` (``_repr_html_`` for notebooks, report pages)."""
    return Figure(feature_graph_html(graph, title=title, max_edges=max_edges, max_per_cell=max_per_cell), title=title)


__all__ = ["feature_graph_figure", "feature_graph_html"]
