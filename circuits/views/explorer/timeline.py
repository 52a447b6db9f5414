"""What the explorer's checkpoint slider shows: per checkpoint, computed once in Python.

A bounded number of evenly spaced checkpoints (first and last always) are each loaded and
analysed on the same prompts: the logit-lens MRR of the task's report targets and the
causal-tracing top-1 change rate per swapped token (state x position), and the EAP-IG
score of every edge on the task's clean against corrupt prompts. For each of a few circuit
sizes ``k`` the circuit at that checkpoint is the strongest ``k`` edges that lie on a path
from the embeddings to the logits (as :func:`circuits.discover.find_circuit` builds it),
with its faithfulness under mean ablation (:class:`circuits.ablation.Faithfulness`). The
page then shows, at each checkpoint, which edges are in the circuit: the generalising
circuit forming. For modular arithmetic it also shows the Fourier view of the weights (each
frequency's norm in ``W_E`` and ``W_U W_out``, :mod:`interp.fourier`): the key frequencies
standing out as the circuit forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from circuits.ablation import Faithfulness
from circuits.edges import EdgeScores, edge_attribution
from circuits.pruning import connected
from circuits.space import CircuitError
from circuits.tasks import Task, dataset_task
from interp.checkpoint_analyses import cached_analysis, checkpoint_grids, state_grids
from interp.data import KGDataset, task_schema
from interp.errors import CheckpointError
from interp.fourier import ModularTask, fourier_measures, is_modular
from interp.models import to_bridge
from interp.progress import checkpoint_measures
from interp.runs import list_checkpoints, load_checkpoint

IG_STEPS = 5
"""Integrated-gradient steps of the slider's edge scores."""


def pick_checkpoints(paths: Sequence[Path], limit: int) -> list[Path]:
    """At most ``limit`` (>= 2) evenly spaced paths, always the first and the last."""
    if limit < 2:
        raise CircuitError(f"max_checkpoints={limit}; the slider needs at least 2")
    if len(paths) <= limit:
        return list(paths)
    keep = sorted({round(i * (len(paths) - 1) / (limit - 1)) for i in range(limit)})
    return [paths[i] for i in keep]


def circuit_sizes(n_edges: int, circuit_size: int | None, n_sizes: int = 8) -> list[int]:
    """Circuit sizes for the edge-count slider: geometric from 1 to a few times the found circuit's size."""
    top = n_edges if circuit_size is None else min(n_edges, max(4 * circuit_size, 40))
    sizes = {int(k) for k in np.unique(np.round(np.geomspace(1, max(top, 1), n_sizes)).astype(int))}
    if circuit_size is not None and 0 < circuit_size <= n_edges:
        sizes.add(int(circuit_size))
    return sorted(sizes)


def top_circuit(scores: EdgeScores, k: int) -> torch.Tensor:
    """The mask of the strongest ``k`` edges that lie on a path from an embedding to the logits."""
    space = scores.space
    order = scores.scores.abs().masked_fill(~space.allowed, -1.0).flatten().argsort(descending=True)
    keep = torch.zeros(space.allowed.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    return connected(space, keep.view_as(space.allowed))


@dataclass
class Snapshot:
    """One checkpoint's view: heatmaps, edge scores, and per circuit size its mask and faithfulness."""

    step: int
    lens: dict[str, list[list[float]]]
    tracing: dict[str, list[list[float]]]
    scores: EdgeScores | None
    masks: list[torch.Tensor] = field(default_factory=list)
    faithfulness: list[float | None] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    fourier: dict[str, Any] = field(default_factory=dict)
    """Modular arithmetic: each frequency's norm in ``W_E`` and ``W_U W_out`` (rows), each row scaled to its maximum."""


def _rounded(grid: Sequence[Sequence[float]]) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in grid]


def snapshot(
    model: Any,
    dataset: KGDataset,
    task: Task,
    sizes: Sequence[int],
    *,
    step: int,
    n: int,
    ig_steps: int = 5,
    seed: int = 0,
    grids: dict[str, Any] | None = None,
    fourier: dict[str, Any] | None = None,
    circuit: dict[str, Any] | None = None,
) -> Snapshot:
    """Everything the slider shows of one model (a Hugging Face GPT-2 or a bridge). ``grids``: its lens and
    tracing grids, its :func:`circuit_part` and for modular arithmetic its Fourier measures, if already
    computed (:func:`interp.checkpoint_analyses.checkpoint_grids`, :func:`interp.progress.checkpoint_measures`)."""
    bridge = to_bridge(model) if not hasattr(model, "blocks") else model
    snap = Snapshot(step, {}, {}, None)
    grids = grids if grids is not None else state_grids(bridge, dataset, n=n, seed=seed)
    snap.lens = {
        k: _rounded(grids["lens"][k]["mrr"]) for k in task_schema(dataset).report_targets if k in grids["lens"]
    }
    snap.tracing = {k: _rounded(t) for k, t in grids["tracing"].items()}
    snap.errors.extend(grids["errors"])
    if is_modular(dataset):
        row = fourier if fourier is not None else fourier_measures(bridge, ModularTask(dataset))
        norms = [row["embedding_frequency_norms"], row["unembed_out_frequency_norms"]]
        snap.fourier = {
            "rows": ["W_E", "W_U W_out"],
            "key": row["key_frequencies"],
            "norms": [[round(v / (max(r) or 1.0), 4) for v in r] for r in norms],
        }
    circuit = circuit if circuit is not None else circuit_part(bridge, task, sizes, ig_steps=ig_steps, seed=seed)
    snap.scores = EdgeScores.from_data(circuit["scores"])
    snap.masks = [top_circuit(snap.scores, k) for k in sizes]
    snap.faithfulness = list(circuit["faithfulness"])
    snap.errors.extend(circuit["errors"])
    return snap


def circuit_part(bridge: Any, task: Task, sizes: Sequence[int], *, ig_steps: int, seed: int) -> dict[str, Any]:
    """The circuit views of one model as JSON data: every edge's EAP-IG score and, per circuit size, the
    faithfulness (mean ablation) of its strongest edges on a path to the logits."""
    scores = edge_attribution(
        bridge,
        task.clean,
        task.corrupt,
        task.metric(),
        method="eap-ig",
        ig_steps=ig_steps,
        answer_pos=task.answer_pos,
        positions=task.positions,
    )
    out: dict[str, Any] = {"scores": scores.to_data(), "faithfulness": [None] * len(sizes), "errors": []}
    try:
        faith = Faithfulness(bridge, task, "mean", seed=seed)
        faith.span()
        out["faithfulness"] = [round(faith(top_circuit(scores, k)), 4) for k in sizes]
    except CircuitError as err:  # an untrained model: the model and the empty circuit agree
        out["errors"].append(f"faithfulness: {err}")
    return out


def checkpoint_snapshots(
    run_dir: str | Path,
    sizes: Sequence[int],
    *,
    n: int = 100,
    max_checkpoints: int = 8,
    metrics: Mapping[int, Mapping[str, Any]] | None = None,
    device: torch.device | str | None = "cpu",
    seed: int = 0,
    on_checkpoint: Callable[[int], None] | None = None,
) -> list[Snapshot]:
    """:func:`snapshot` of up to ``max_checkpoints`` evenly spaced checkpoints of a run, all on the same prompts."""
    paths = list_checkpoints(Path(run_dir))
    if not paths:
        raise CheckpointError(f"{run_dir} holds no checkpoints (expected {run_dir}/checkpoints/step_*/state.json)")
    out: list[Snapshot] = []
    dataset: KGDataset | None = None
    task: Task | None = None
    for path in pick_checkpoints(paths, max_checkpoints):
        run = load_checkpoint(path, device=device, dataset=dataset)
        dataset = run.dataset
        if task is None:
            task = dataset_task(dataset, n=max(1, n // 3), seed=seed, device=device)
        grids = checkpoint_grids(path, run.model, dataset, n=n, seed=seed)
        fourier = checkpoint_measures(path, run.model, ModularTask(dataset)) if is_modular(dataset) else None
        params = {"task_n": max(1, n // 3), "seed": seed, "sizes": list(sizes), "ig_steps": IG_STEPS}
        circuit = cached_analysis(
            path,
            "timeline-circuit",
            params,
            lambda run=run, task=task: circuit_part(to_bridge(run.model), task, sizes, ig_steps=IG_STEPS, seed=seed),
            code=("circuits.views.explorer.timeline",),
        )
        snap = snapshot(
            run.model, dataset, task, sizes, step=run.step, n=n, seed=seed, grids=grids, fourier=fourier,
            circuit=circuit,
        )  # fmt: skip
        logged = (metrics or {}).get(run.step, {})
        snap.accuracy = {
            k: float(v)
            for k, v in logged.items()
            if k not in ("step", "seconds", "loss") and isinstance(v, (int, float))
        }
        out.append(snap)
        if on_checkpoint is not None:
            on_checkpoint(run.step)
    return out
