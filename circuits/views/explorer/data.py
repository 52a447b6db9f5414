"""The explorer's data block: model weights, queries, the node layout, and the per-checkpoint views.

Everything the page shows is in one JSON object (:func:`explorer_data`); token names travel
as data, never as markup (the page sets them as text). Queries are built per prompt position
from the tokens seen there in the task's inferred prompts, so a composition page offers
``h``, ``r1``, ``r2`` and a comparison page ``attr q e1 mask e2``; prompts the dataset holds
come with their known answer and split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from circuits.space import ModelGraph, Node
from circuits.views.explorer.timeline import Snapshot
from circuits.views.explorer.weights import export_weights
from interp.data import KGDataset
from interp.models import CausalLM

QUERY_SPLITS = ("test_id", "train_inferred", "test_ood")
MAX_KNOWN = 6000
MAX_CHOICES = 400
MAX_EDGES = 400


def query_data(dataset: KGDataset, position_names: Sequence[str]) -> dict[str, Any]:
    """Per position the tokens one can pick, the prompts with a known answer, and a default prompt."""
    examples = [(s, ex) for s in QUERY_SPLITS if s in dataset.sizes for ex in dataset.examples(s)]
    n_pos = len(position_names)
    examples = [(s, ex) for s, ex in examples if len(ex.input_tokens) == n_pos]
    if not examples:
        return {"choices": [], "known": {}, "default": None}
    vocab = dataset.vocab
    choices: list[list[int]] = []
    for p in range(n_pos):
        seen = sorted({vocab.encode([ex.input_tokens[p]])[0] for _, ex in examples})
        choices.append(seen[:MAX_CHOICES])
    known: dict[str, list[Any]] = {}
    for split, ex in examples[:MAX_KNOWN]:
        ids = vocab.encode(ex.input_tokens)
        known.setdefault(",".join(map(str, ids)), [vocab.encode([ex.answer])[0], split])
    default = vocab.encode(examples[0][1].input_tokens)
    return {"choices": choices, "known": known, "default": default}


def graph_nodes(space: ModelGraph) -> list[dict[str, Any]]:
    """Every node of the model graph, in the order the page indexes them."""
    out = []
    for p in range(space.n_pos):
        nodes = [Node("embed", p)]
        for layer in range(space.n_layers):
            nodes += [Node("head", p, layer, h) for h in range(space.n_heads)] + [Node("mlp", p, layer)]
        if p in space.logit_positions:
            nodes.append(Node("logits", p))
        out += [{"name": n.name, "kind": n.kind, "pos": n.pos, "layer": n.layer, "head": n.head} for n in nodes]
    return out


def timeline_data(snapshots: Sequence[Snapshot], sizes: Sequence[int]) -> dict[str, Any]:
    """Nodes, the union of the edges of every checkpoint's circuits (the strongest first), and per checkpoint
    its heatmaps, accuracies, edge scores, circuits (edge indices per size) and their faithfulness."""
    scored = [s for s in snapshots if s.scores is not None]
    if not scored:
        return {"sizes": list(sizes), "nodes": [], "edges": [], "checkpoints": []}
    space = scored[-1].scores.space  # type: ignore[union-attr]
    nodes = graph_nodes(space)
    node_index = {n["name"]: i for i, n in enumerate(nodes)}
    union: dict[tuple[int, int, int], float] = {}
    for snap in scored:
        for mask in snap.masks:
            for idx in mask.nonzero().tolist():
                key = (idx[0], idx[1], idx[2])
                union[key] = max(union.get(key, 0.0), abs(float(snap.scores.scores[key])))  # type: ignore[union-attr]
    keys = sorted(union, key=lambda k: -union[k])[:MAX_EDGES]
    order = {k: i for i, k in enumerate(keys)}
    edges = []
    for p, w, r in keys:
        e = space.edge(p, w, r)
        edges.append([node_index[e.src.name], node_index[e.dst.name], e.channel])
    checkpoints = []
    for snap in snapshots:
        ck: dict[str, Any] = {
            "step": snap.step,
            "lens": snap.lens,
            "tracing": snap.tracing,
            "accuracy": snap.accuracy,
            "faithfulness": snap.faithfulness,
            "errors": snap.errors,
            "fourier": snap.fourier,
        }
        if snap.scores is not None:
            s = snap.scores.scores
            ck["scores"] = [round(float(s[k]), 5) for k in keys]
            ck["circuits"] = [
                sorted(order[(i[0], i[1], i[2])] for i in m.nonzero().tolist() if (i[0], i[1], i[2]) in order)
                for m in snap.masks
            ]
        checkpoints.append(ck)
    return {
        "sizes": list(sizes),
        "nodes": nodes,
        "edges": edges,
        "checkpoints": checkpoints,
        "n_layers": space.n_layers,
        "n_heads": space.n_heads,
        "logit_positions": list(space.logit_positions),
    }


def metric_curves(metrics: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The page's accuracy curves: ``steps`` and one series per name in ``names`` that some metrics row holds."""
    steps = [int(row["step"]) for row in metrics]
    series = {k: [row.get(k) for row in metrics] for k in names if any(row.get(k) is not None for row in metrics)}
    return {"steps": steps, "series": series}


def explorer_data(
    model: CausalLM,
    dataset: KGDataset,
    position_names: Sequence[str],
    *,
    step: int,
    snapshots: Sequence[Snapshot] = (),
    sizes: Sequence[int] = (),
    circuit_size: int | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    curves: Sequence[str] = (),
    node_features: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The JSON object the page reads (``explorer/ui.js``).

    ``node_features`` is the hook for sparse-dictionary features: node name (``a1.2@1``, ``m0@2``) ->
    rows ``{"label": ..., "value": ...}``, shown when a node is clicked.
    """
    schema_answer = len(position_names) - 1
    return {
        "step": step,
        "positions": list(position_names),
        "answer_pos": schema_answer,
        "vocab": list(dataset.vocab.tokens),
        "weights": export_weights(model),
        "queries": query_data(dataset, position_names),
        "curves": metric_curves(metrics, curves),
        "timeline": timeline_data(snapshots, sizes) if snapshots else None,
        "circuit_size": circuit_size,
        "features": {k: [dict(r) for r in v] for k, v in (node_features or {}).items()},
    }
