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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from interp.intervene import as_bridge

from circuits.ablation import ABLATIONS, Ablation, ablation_reference, circuit_logits, evaluate_circuit
from circuits.edges import EdgeScores, Method, edge_attribution
from circuits.graph import CircuitError, CircuitGraph, connected
from circuits.tasks import Task


def _search_sizes(n_edges: int, n_points: int = 40) -> list[int]:
    grid = np.unique(np.round(np.geomspace(1, n_edges, n_points)).astype(int))
    return [int(k) for k in grid]


def find_circuit(
    model: Any,
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
        scores = edge_attribution(bridge, task.clean, task.corrupt, task.metric(), method=method, ig_steps=ig_steps,
                                  answer_pos=task.answer_pos, positions=task.positions)
    space = scores.space
    search: list[list[float]] = []
    if top_n is None and threshold is None:
        metric = task.metric()
        ref = ablation_reference(bridge, task.clean, ablation, corrupt=task.corrupt, seed=seed)

        def faith(keep: torch.Tensor) -> float:
            lg = circuit_logits(bridge, task.clean, keep, ref, answer_pos=task.answer_pos)
            return float(metric(lg, torch.arange(len(task))).double().mean())

        top, bottom = faith(space.allowed), faith(torch.zeros_like(space.allowed))
        if top == bottom:
            raise CircuitError("the model and the empty circuit give the same metric; nothing to find")
        order = scores.scores.abs().masked_fill(~space.allowed, -1.0).flatten().argsort(descending=True)
        top_n = space.n_edges
        for k in _search_sizes(space.n_edges):
            keep = torch.zeros(space.allowed.numel(), dtype=torch.bool)
            keep[order[:k]] = True
            keep = connected(space, keep.view_as(space.allowed))
            f = (faith(keep) - bottom) / (top - bottom)
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
    """A head that reads at ``src_pos`` (key/value input) and writes at ``dst_pos > src_pos``."""

    layer: int
    head: int
    src_pos: int
    dst_pos: int
    weight: float
    """Summed |score| of the circuit edges into its k/v input at ``src_pos`` and out of it at ``dst_pos``."""


def circuit_shape(circuit: CircuitGraph) -> dict[str, Any]:
    """Where a circuit works: writer layers per position, and the heads that move information.

    ``writer_layers[label]``: the layers of the circuit's heads and MLPs that write at that
    position (with the summed |score| of their outgoing edges); ``movers``: every head with
    an edge into its k/v input at ``p'`` and out of its output at ``p > p'``.
    """
    writers: dict[str, dict[int, float]] = {label: {} for label in circuit.positions}
    kv_in: dict[tuple[int, int, int], float] = {}
    out_of: dict[tuple[int, int, int], float] = {}
    for e, s in circuit.edges.items():
        if e.src.kind in ("head", "mlp"):
            layers = writers[circuit.positions[e.pos]]
            layers[e.src.layer] = layers.get(e.src.layer, 0.0) + abs(s)  # type: ignore[index]
        if e.src.kind == "head":
            key = (e.src.layer, e.src.head, e.pos)
            out_of[key] = out_of.get(key, 0.0) + abs(s)  # type: ignore[index]
        if e.dst.kind == "head" and e.channel in ("k", "v"):
            key = (e.dst.layer, e.dst.head, e.pos)
            kv_in[key] = kv_in.get(key, 0.0) + abs(s)  # type: ignore[index]
    movers = [
        Mover(L, H, p_src, p_dst, kv + out_of[(L2, H2, p_dst)])
        for (L, H, p_src), kv in kv_in.items()
        for (L2, H2, p_dst) in out_of
        if (L2, H2) == (L, H) and p_dst > p_src
    ]
    movers.sort(key=lambda m: -m.weight)
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
