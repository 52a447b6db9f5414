"""A circuit drawn as a layered SVG graph: positions as columns, layers bottom to top."""

from __future__ import annotations

from collections.abc import Sequence

from circuits.graph import CircuitGraph, Node
from circuits.views.figures import FONT, Figure, esc, fmt_number


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
        parts.append(
            f'<rect x="{x0 + 4}" y="{top - 4}" width="{col_w - 8}" height="{(2 * L + 2) * row_h + 8}" '
            f'fill="{"#f6f8fb" if p % 2 else "#fbfbfb"}" rx="6"/>'
        )
        parts.append(
            f'<text x="{x0 + col_w / 2}" y="{height - 14}" font-size="12" text-anchor="middle" '
            f'font-weight="600">{esc(labels[p])}</text>'
        )
    for layer in range(L):
        for kind, lvl in (("attn", 2 * layer), ("mlp", 2 * layer + 1)):
            y = top + (2 * L - lvl) * row_h + row_h / 2
            parts.append(
                f'<text x="{left - 8}" y="{y + 4}" font-size="10" text-anchor="end" fill="#666">{kind} {layer}</text>'
            )
    # movers: dashed arcs from a head's k/v input at p' to its output at p > p'
    kv = {(e.dst.layer, e.dst.head, e.pos) for e in circuit.edges if e.dst.kind == "head" and e.channel in ("k", "v")}
    outs = {(e.src.layer, e.src.head, e.pos) for e in circuit.edges if e.src.kind == "head"}
    for layer, head, p_src in sorted(kv):
        for p_dst in range(p_src + 1, P):
            if (layer, head, p_dst) in outs:
                x1, y1 = xy(Node("head", p_src, layer, head))
                x2, y2 = xy(Node("head", p_dst, layer, head))
                parts.append(
                    f'<path class="gs-mover" d="M{x1:.1f},{y1:.1f} Q{(x1 + x2) / 2:.1f},{y1 - 40:.1f} {x2:.1f},{y2:.1f}" '
                    f'fill="none" stroke="#7b3294" stroke-width="1.6" stroke-dasharray="5,3">'
                    f"<title>{esc(f'a{layer}.{head} moves {labels[p_src]} -> {labels[p_dst]}')}</title></path>"
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
            f"<title>{esc(f'{e.src.name} -> {e.dst.name} ({e.channel}): {fmt_number(s)}')}</title></path>"
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
            tip = n.name + ("" if score is None else f": {fmt_number(score)}")
            fill = (
                "#ffffff"
                if not on
                else ("#fde0c5" if n.kind == "mlp" else "#d1e5f0" if n.kind == "head" else "#e0e0e0")
            )
            stroke = "#333" if on else "#cccccc"
            if n.kind == "head":
                shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="13" fill="{fill}" stroke="{stroke}"/>'
            else:
                shape = (
                    f'<rect x="{x - 22:.1f}" y="{y - 12:.1f}" width="44" height="24" rx="4" '
                    f'fill="{fill}" stroke="{stroke}"/>'
                )
            parts.append(
                f'<g class="gs-node{" gs-in" if on else ""}"><title>{esc(tip)}</title>{shape}'
                f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="9.5" text-anchor="middle" fill="{"#111" if on else "#bbb"}">'
                f"{esc(short)}</text></g>"
            )
    parts.append("</svg>")
    caption = f'<figcaption class="gs-caption">{esc(title)}</figcaption>' if title else ""
    return Figure(f'<figure class="gs-figure">{caption}{"".join(parts)}</figure>', title=title)
