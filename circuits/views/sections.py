"""The sections of a run's report as figures: curves, heatmaps, the circuit, attention, formation.

Each function computes one analysis of a model (or reads one already computed) and returns
:class:`~circuits.views.render.Figure` s: :func:`circuits.views.report.build_report` puts them into the
page, and a notebook calls the same functions and displays the figures inline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from circuits.discover import circuit_shape
from circuits.graph import CircuitGraph
from circuits.localize import Localization
from circuits.views.render import Figure, attention_heads, circuit_svg, heatmap, line_chart, table
from interp.data import KGDataset, task_schema
from interp.errors import GrokscopeError
from interp.intervene import as_bridge, cache_activations
from interp.lens import dataset_lens
from interp.models import HookedModel
from interp.tracing import trace_counterfactual

CURVES = ("train", "train_inferred", "test_id", "test_ood", "id_atomic", "ood_atomic")
STATES = "state (blocks applied)"


def position_labels(dataset: KGDataset) -> list[str]:
    """Names of the prompt positions of a dataset's inferred facts, from its task schema (``h r1 r2``;
    ``attr q e1 mask e2``); numbers where the prompts do not have the schema's length."""
    examples = dataset.examples("train_inferred")
    n_pos = len(examples[0].input_tokens) if examples else 0
    positions = task_schema(dataset).positions
    return list(positions) if n_pos == len(positions) else [str(p) for p in range(n_pos)]


def grokking_curves(metrics: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracies over training steps (log scale when the run spans decades)."""
    steps = [row["step"] for row in metrics]
    series = {k: [row.get(k) for row in metrics] for k in CURVES if any(row.get(k) is not None for row in metrics)}
    positive = [s for s in steps if s > 0]
    spread = max(steps) / min(positive) if positive else 1
    return line_chart(
        steps,
        series,
        title="accuracy over training",
        y_title="accuracy",
        y_range=(0.0, 1.0),
        log_x=spread > 20,
        width=720,
        height=320,
    )


def lens_figures(model: HookedModel, dataset: KGDataset, *, n: int = 200) -> list[Figure]:
    """Logit-lens MRR heatmaps (state x position) of the task's intermediate and final tokens (its schema's
    report targets)."""
    res = dataset_lens(model, dataset, task_schema(dataset).report_targets, n=n)
    return _lens_heatmaps({name: r.mrr for name, r in res.items()}, dataset)


def tracing_figures(model: HookedModel, dataset: KGDataset, *, n: int = 200) -> list[Figure]:
    """Causal-tracing heatmaps (state x position), one per swapped input token."""
    return _tracing_heatmaps(trace_counterfactual(model, dataset, n=n), dataset)


def grid_figures(grids: Mapping[str, Any], dataset: KGDataset) -> tuple[list[Figure], list[Figure]]:
    """The lens and the tracing heatmaps of a checkpoint's grids (:func:`interp.checkpoint_analyses.state_grids`):
    what :func:`lens_figures` and :func:`tracing_figures` draw, from the analysis computed once per checkpoint."""
    for error in grids["errors"]:
        raise GrokscopeError(error)
    lens = {k: grids["lens"][k]["mrr"] for k in task_schema(dataset).report_targets if k in grids["lens"]}
    return _lens_heatmaps(lens, dataset), _tracing_heatmaps(grids["tracing"], dataset)


def _lens_heatmaps(mrr: Mapping[str, Any], dataset: KGDataset) -> list[Figure]:
    labels = position_labels(dataset)
    return [
        heatmap(
            m, [str(s) for s in range(len(m))], labels, title=f"MRR of {name}", row_title=STATES, vmin=0.0, vmax=1.0
        )
        for name, m in mrr.items()
    ]


def _tracing_heatmaps(tracing: Mapping[str, Any], dataset: KGDataset) -> list[Figure]:
    labels = position_labels(dataset)
    return [
        heatmap(
            t,
            [str(s) for s in range(len(t))],
            labels,
            title=f"swap {swap}: top-1 change rate",
            row_title=STATES,
            vmin=0.0,
            vmax=1.0,
        )
        for swap, t in tracing.items()
    ]


def localization_figures(locs: Mapping[str, Localization]) -> list[Figure]:
    """Per intermediate: lens top-1, causal and interchange rates over the states at its position; a summary table."""
    figs = []
    for name, lz in locs.items():
        col = lz.position
        figs.append(
            line_chart(
                list(range(lz.decodable.shape[0])),
                {
                    "lens top-1": lz.decodable[:, col].tolist(),
                    "causal (tracing)": lz.causal[:, col].tolist(),
                    "interchange": lz.interchange.tolist(),
                },
                title=f"{name} at {lz.position_name}",
                x_title=STATES,
                y_range=(0.0, 1.0),
                markers=True,
                width=520,
            )
        )
    rows = [
        {
            "target": k,
            "position": v.position_name,
            "best state": v.best_layer,
            "interchange": float(v.interchange.max()),
            "baseline": v.interchange_baseline,
            "decodable at": ", ".join(map(str, v.decodable_layers())) or "-",
            "n": v.n_interchange,
        }
        for k, v in locs.items()
    ]
    return figs + [table(rows, title="interchange test")]


def circuit_figures(circuit: CircuitGraph) -> list[Figure]:
    """The circuit graph, its evaluation table, the size search and the heads that move information."""
    figs = [circuit_svg(circuit, title=circuit.summary())]
    evaluations = circuit.meta.get("evaluations", {})
    if evaluations:
        figs.append(
            table(
                [
                    {
                        "ablation": a,
                        "faithfulness": e["faithfulness"],
                        "completeness": e["completeness"],
                        "circuit accuracy": e["circuit_accuracy"],
                        "model accuracy": e["model_accuracy"],
                        "edges": f"{e['n_edges']} / {e['total_edges']}",
                    }
                    for a, e in evaluations.items()
                ],
                title="faithfulness and completeness",
            )
        )
    search = circuit.meta.get("search")
    if search:
        figs.append(
            line_chart(
                [row[1] for row in search],
                {"faithfulness (mean ablation)": [row[2] for row in search]},
                title="faithfulness against circuit size",
                x_title="edges kept",
                log_x=True,
                markers=True,
                width=480,
            )
        )
    movers = sorted(circuit_shape(circuit)["movers"], key=lambda m: -m.reads_computed)[:8]
    if movers:
        labels = circuit.positions
        figs.append(
            table(
                [
                    {
                        "head": f"a{m.layer}.{m.head}",
                        "from": labels[m.src_pos],
                        "to": labels[m.dst_pos],
                        "reads (computed)": m.reads_computed,
                        "reads (all)": m.reads,
                        "writes": m.writes,
                    }
                    for m in movers
                ],
                title="heads that move information",
            )
        )
    return figs


def attention_figures(
    model: HookedModel,
    dataset: KGDataset,
    circuit: CircuitGraph | None,
    *,
    n_examples: int = 3,
    max_heads: int = 8,
) -> list[Figure]:
    """circuitsvis attention patterns of the circuit's strongest heads (all heads if it has none) on held-out prompts."""
    bridge = as_bridge(model)
    if circuit is not None and circuit.heads:
        strength: dict[tuple[int, int], float] = {}
        for node, s in circuit.node_scores.items():
            if node.kind == "head":
                key = (int(node.layer), int(node.head))  # type: ignore[arg-type]
                strength[key] = strength.get(key, 0.0) + abs(s)
        heads = sorted(sorted(circuit.heads, key=lambda lh: -strength.get(lh, 0.0))[:max_heads])
        note = "circuit heads"
    else:
        heads = [(L, H) for L in range(len(bridge.blocks)) for H in range(int(bridge.cfg.n_heads))][:max_heads]
        note = "the circuit uses no head; the model's first heads"
    examples = dataset.examples("test_id")[:n_examples] or dataset.examples("train_inferred")[:n_examples]
    tokens = torch.tensor(
        [dataset.vocab.encode(ex.input_tokens) for ex in examples], dtype=torch.long, device=bridge.cfg.device
    )
    hooks = sorted({f"blocks.{L}.attn.hook_pattern" for L, _ in heads})
    with torch.no_grad():
        _, acts = cache_activations(bridge, tokens, hooks)
    figs = []
    for i, ex in enumerate(examples):
        pats = torch.stack([acts[f"blocks.{L}.attn.hook_pattern"][i, H] for L, H in heads]).cpu()
        figs.append(
            attention_heads(
                pats,
                list(ex.input_tokens),
                [f"L{L}H{H}" for L, H in heads],
                title=f"{ex.input_text} -> {ex.answer} ({note})",
            )
        )
    return figs


def formation_figures(df: pd.DataFrame) -> list[Figure]:
    """Causal strength and lens MRR of the key states over the checkpoints (from :func:`circuit_formation`)."""
    steps = sorted(df["step"].unique().tolist())
    figs = []
    for metric, name in (("causal", "causal strength"), ("mrr", "lens MRR")):
        series: dict[str, list[Any]] = {}
        for state, grp in df.groupby("state", sort=False):
            by_step = dict(zip(grp["step"], grp[metric]))
            series[f"{state} ({grp['target'].iloc[0]})"] = [by_step.get(s) for s in steps]
        if "test_id" in df:
            first = df.drop_duplicates("step").set_index("step")["test_id"]
            series["test_id accuracy"] = [first.get(s) for s in steps]
        figs.append(
            line_chart(
                steps,
                series,
                title=f"{name} of the key states over training",
                y_range=(0.0, 1.0),
                markers=True,
                width=620,
            )
        )
    return figs


__all__ = [
    "CURVES",
    "attention_figures",
    "circuit_figures",
    "formation_figures",
    "grokking_curves",
    "lens_figures",
    "localization_figures",
    "position_labels",
    "tracing_figures",
]
