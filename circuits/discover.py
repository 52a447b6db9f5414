"""Circuit discovery: score every edge, keep the fewest strong edges that still do the task.

:func:`find_circuit` is the whole pipeline on a :class:`~circuits.tasks.Task`:

1. score every edge of the model with EAP-IG (or EAP) on the clean prompts against the
   corrupt ones (:func:`circuits.edges.edge_attribution`);
2. rank edges by ``|score|`` and, for growing sizes ``k``, keep the top ``k`` edges that
   lie on a path from the embeddings to the logits (:func:`circuits.graph.prune`);
3. return the smallest such circuit whose faithfulness under the chosen ablation reaches
   ``target`` (or a fixed ``top_n`` / ``threshold``), evaluated under mean *and* resample
   ablation (:func:`circuits.ablation.evaluate_circuit`), with the search curve in ``meta``.

:func:`circuit_shape` reads off where a circuit works: which layers write at each
position, and which heads move information from one position to another (a head with an
edge into its key or value input at ``p'`` and an edge out of its output at ``p > p'``).
:func:`handoff` weighs those heads by what earlier components computed at ``p'``: in the
paper's two-hop circuit the bridge entity leaves ``r1`` for ``r2`` in the upper layers,
once the first hop is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from circuits.ablation import ABLATIONS, Ablation, Faithfulness, evaluate_circuit
from circuits.edges import EdgeScores, Method, edge_attribution
from circuits.graph import CircuitError, CircuitGraph, connected
from circuits.tasks import Task
from interp.intervene import as_bridge
from interp.models.protocol import HookedModel


def _search_sizes(n_edges: int, n_points: int = 40) -> list[int]:
    grid = np.unique(np.round(np.geomspace(1, n_edges, n_points)).astype(int))
    return [int(k) for k in grid]


def find_circuit(
    model: HookedModel,
    task: Task,
    *,
    method: Method = "eap-ig",
    ig_steps: int = 5,
    ablation: Ablation = "mean",
    target: float = 0.9,
    top_n: int | None = None,
    threshold: float | None = None,
    scores: EdgeScores | None = None,
    seed: int = 0,
) -> CircuitGraph:
    """The circuit of ``task``: the smallest top-``k`` edge set reaching faithfulness ``target``.

    Give ``top_n`` or ``threshold`` to fix the size instead; pass precomputed ``scores`` to
    skip the attribution.
    """
    bridge = as_bridge(model)
    if ablation not in ABLATIONS:
        raise CircuitError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    if top_n is not None and threshold is not None:
        raise CircuitError("give at most one of top_n or threshold")
    if scores is None:
        scores = edge_attribution(
            bridge,
            task.clean,
            task.corrupt,
            task.metric(),
            method=method,
            ig_steps=ig_steps,
            answer_pos=task.answer_pos,
            positions=task.positions,
        )
    space = scores.space
    search: list[list[float]] = []
    if top_n is None and threshold is None:
        faith = Faithfulness(bridge, task, ablation, seed=seed)
        faith.span()  # runs the two ends; fails now if they give the same metric
        order = scores.scores.abs().masked_fill(~space.allowed, -1.0).flatten().argsort(descending=True)
        top_n = space.n_edges
        for k in _search_sizes(space.n_edges):
            keep = torch.zeros(space.allowed.numel(), dtype=torch.bool)
            keep[order[:k]] = True
            keep = connected(space, keep.view_as(space.allowed))
            f = faith(keep)
            search.append([k, int(keep.sum()), round(f, 6)])
            if f >= target:
                top_n = k
                break
    circuit = scores.prune(top_n=top_n, threshold=threshold)
    evaluations = {a: evaluate_circuit(bridge, task, circuit, a, seed=seed).to_dict() for a in ("mean", "resample")}
    if ablation not in evaluations:
        evaluations[ablation] = evaluate_circuit(bridge, task, circuit, ablation, seed=seed).to_dict()
    circuit.meta.update(
        task=task.name,
        n_examples=len(task),
        ablation=ablation,
        target=target,
        top_n=top_n,
        faithfulness=evaluations[ablation]["faithfulness"],
        completeness=evaluations[ablation]["completeness"],
        evaluations=evaluations,
        search=search,
    )
    return circuit


# --------------------------------------------------------------------------- shape
@dataclass(frozen=True)
class Mover:
    """A head that reads at ``src_pos`` (key/value input) and writes at ``dst_pos > src_pos``.

    Weights are summed |scores| of circuit edges: into its key/value input at ``src_pos``
    (``reads``; ``reads_computed`` leaves out the edges from the token embedding, so it
    counts what earlier layers computed there) and out of its output at ``dst_pos`` (``writes``).
    """

    layer: int
    head: int
    src_pos: int
    dst_pos: int
    reads: float
    reads_computed: float
    writes: float


def circuit_shape(circuit: CircuitGraph) -> dict[str, Any]:
    """Where a circuit works: writer layers per position, and the heads that move information.

    ``writer_layers[label]``: the layers of the circuit's heads and MLPs that write at that
    position, with the summed |score| of their outgoing edges; ``movers``: every head with
    an edge into its key/value input at ``p'`` and out of its output at ``p > p'``, by
    decreasing ``reads``.
    """
    writers: dict[str, dict[int, float]] = {label: {} for label in circuit.positions}
    reads: dict[tuple[int, int, int], list[float]] = {}
    writes: dict[tuple[int, int, int], float] = {}
    for e, s in circuit.edges.items():
        if e.src.kind in ("head", "mlp"):
            layers = writers[circuit.positions[e.pos]]
            layers[e.src.layer] = layers.get(e.src.layer, 0.0) + abs(s)  # type: ignore[index]
        if e.src.kind == "head":
            key = (e.src.layer, e.src.head, e.pos)
            writes[key] = writes.get(key, 0.0) + abs(s)  # type: ignore[index]
        if e.dst.kind == "head" and e.channel in ("k", "v"):
            acc = reads.setdefault((e.dst.layer, e.dst.head, e.pos), [0.0, 0.0])  # type: ignore[arg-type]
            acc[0] += abs(s)
            acc[1] += abs(s) if e.src.kind != "embed" else 0.0
    movers = [
        Mover(L, H, p_src, p_dst, r[0], r[1], writes[(L, H, p_dst)])
        for (L, H, p_src), r in reads.items()
        for p_dst in range(p_src + 1, len(circuit.positions))
        if (L, H, p_dst) in writes
    ]
    movers.sort(key=lambda m: (-m.reads, m.layer, m.head, m.dst_pos))
    return {
        "writer_layers": {k: dict(sorted(v.items())) for k, v in writers.items()},
        "movers": movers,
    }


def layer_split_mass(circuit: CircuitGraph, position: int, split: int) -> tuple[float, float]:
    """Summed |score| of edges written at ``position`` by components below layer ``split`` (and the embedding),
    and by components at or above it."""
    low = high = 0.0
    for e, s in circuit.edges.items():
        if e.pos != position:
            continue
        if e.src.kind == "embed" or (e.src.layer is not None and e.src.layer < split):
            low += abs(s)
        else:
            high += abs(s)
    return low, high


@dataclass
class Handoff:
    """How a circuit carries what it computed at ``src_pos`` to ``dst_pos`` (see :func:`handoff`)."""

    src_pos: int
    dst_pos: int
    movers: list[Mover]
    mass_by_layer: dict[int, float]
    """Summed ``reads_computed`` of the movers, per layer."""
    layer: int
    """The lowest layer holding at least ``min_share`` of that mass: where the information leaves ``src_pos``."""
    src_done: float
    """Share of what components (not the embedding) write at ``src_pos`` that layers <= ``layer`` write."""

    def share_at_or_above(self, layer: int) -> float:
        """The share of the movers' mass (``mass_by_layer``) in layers ``>= layer``; NaN without movers."""
        total = sum(self.mass_by_layer.values())
        return sum(m for L, m in self.mass_by_layer.items() if L >= layer) / total if total else float("nan")


def handoff(circuit: CircuitGraph, src_pos: int, dst_pos: int, *, min_share: float = 0.1) -> Handoff:
    """Which layers move what was computed at one position to another, and whether that work was done by then.

    Movers are weighed by what they read at ``src_pos`` from earlier *components* (not the
    token embedding): that is information computed there, such as the bridge entity. In the
    paper's two-hop circuit, reading ``r1`` and writing at ``r2``, the movers sit in the upper
    layers and the ``r1`` position's work, the first hop, is finished by their layer.
    """
    movers = [
        m
        for m in circuit_shape(circuit)["movers"]
        if m.src_pos == src_pos and m.dst_pos == dst_pos and m.reads_computed > 0
    ]
    if not movers:
        raise CircuitError(f"no head of the circuit moves computed information from position {src_pos} to {dst_pos}")
    mass: dict[int, float] = {}
    for m in movers:
        mass[m.layer] = mass.get(m.layer, 0.0) + m.reads_computed
    total = sum(mass.values())
    layer = min(L for L, v in mass.items() if v >= min_share * total)
    at_src = [(e.src.layer, abs(s)) for e, s in circuit.edges.items() if e.pos == src_pos and e.src.kind != "embed"]
    src_total = sum(s for _, s in at_src)
    done = sum(s for L, s in at_src if L is not None and L <= layer)
    movers.sort(key=lambda m: -m.reads_computed)
    return Handoff(
        src_pos, dst_pos, movers, dict(sorted(mass.items())), layer, done / src_total if src_total else float("nan")
    )
