"""Circuit formation over training: the causal strength of the key states, checkpoint by checkpoint.

Wang et al. (2024, Figure 4b-c) follow two states of the generalising circuit through
grokking: ``S[l, r1]``, which holds the bridge entity, and ``S[l, r2]``, which carries
``r2`` to the second hop. While training accuracy is already perfect, the *causal
strength* of ``S[l, r1]`` (the top-1 change rate when ``h`` is swapped and that state is
pasted from the swapped run) rises sharply, and so does the logit-lens MRR of ``b`` there
and of ``r2`` at ``S[l, r2]``: the generalising circuit forms, and test accuracy follows.

:func:`circuit_formation` computes, for every checkpoint of a run, the causal strength
and the MRR of each key state, next to the run's accuracies. The key layer defaults to
the one where the final model's intermediate is best swapped (:mod:`circuits.localize`).
For comparison the key states are ``S[l, e1]`` (``v1``) and ``S[l, e2]`` (``v2``); each task's
key states are its schema's (:attr:`interp.data.tasks.TaskSchema.key_states`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from circuits.graph import CircuitError
from circuits.localize import localize
from interp.checkpoint_analyses import checkpoint_grids
from interp.counterfactuals import counterfactual_batch
from interp.data import KGDataset, TaskSchemaError, task_schema
from interp.data.tasks import KeyState
from interp.errors import CheckpointError
from interp.intervene import as_bridge
from interp.lens import example_targets, logit_lens
from interp.models import HookedModel
from interp.patching import activation_patch, top1, top1_change
from interp.runs import list_checkpoints, load_checkpoint, read_metrics


def key_states(dataset: KGDataset) -> dict[str, KeyState]:
    """The key states of a task: position name -> (position, lens target, swapped token)."""
    try:
        states = dict(task_schema(dataset).key_states)
    except TaskSchemaError as err:
        raise CircuitError(str(err)) from None
    if not states:
        raise CircuitError(f"no key states for a {dataset.task} dataset")
    return states


def grid_strengths(grids: dict[str, Any], dataset: KGDataset, layer: int) -> list[dict[str, Any]]:
    """:func:`state_strengths` read off a checkpoint's lens and tracing grids (:func:`state_grids`)."""
    rows = []
    for name, (pos, target, swap) in key_states(dataset).items():
        lens = grids["lens"][target]
        rows.append(
            {
                "state": f"S[{layer},{name}]",
                "layer": layer,
                "position": name,
                "target": target,
                "swap": swap,
                "causal": grids["tracing"][swap][layer][pos],
                "mrr": lens["mrr"][layer][pos],
                "top1": lens["top1"][layer][pos],
            }
        )
    return rows


def state_strengths(
    model: HookedModel,
    dataset: KGDataset,
    layer: int,
    *,
    split: str = "train_inferred",
    n: int | None = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Causal strength and lens MRR of the key states ``S[layer, p]`` of one model."""
    bridge = as_bridge(model)
    examples = dataset.examples(split)[:n] if n is not None else dataset.examples(split)
    device = bridge.cfg.device
    tokens = torch.tensor([dataset.vocab.encode(ex.input_tokens) for ex in examples], dtype=torch.long, device=device)
    rows = []
    for name, (pos, target, swap) in key_states(dataset).items():
        pairs = counterfactual_batch(dataset, examples, swap, seed=seed, device=device)
        reference = top1(bridge, pairs.clean, pairs.answer_pos)
        causal = activation_patch(
            bridge,
            pairs.clean,
            pairs.corrupt,
            top1_change(reference),
            "resid",
            layers=[layer],
            positions=[pos],
            answer_pos=pairs.answer_pos,
        )
        lens = logit_lens(bridge, tokens, example_targets(dataset, examples, target), positions=[pos])
        rows.append(
            {
                "state": f"S[{layer},{name}]",
                "layer": layer,
                "position": name,
                "target": target,
                "swap": swap,
                "causal": float(causal[0, 0]),
                "mrr": float(lens.mrr[layer, 0]),
                "top1": float(lens.top1[layer, 0]),
            }
        )
    return rows


def circuit_formation(
    run_dir: str | Path,
    *,
    layer: int | None = None,
    split: str = "train_inferred",
    n: int | None = 200,
    seed: int = 0,
    max_checkpoints: int | None = 40,
    device: torch.device | str | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Per checkpoint and key state: causal strength, lens MRR and top-1 rate, with the run's accuracies.

    Columns: step, state, layer, position, target, swap, causal, mrr, top1, and the metrics
    logged at that step (train, train_inferred, test_id, test_ood ...) where there are any.
    ``max_checkpoints`` evenly spaced checkpoints are analysed (always the first and the last). Each
    checkpoint's lens and tracing grids are computed once and kept in the run folder
    (:func:`interp.checkpoint_analyses.checkpoint_grids`, shared with the report and the explorer);
    the key states are read off them.
    """
    run_dir = Path(run_dir)
    if layer is None:
        final = load_checkpoint(run_dir, device=device)
        first = next(iter(localize(final.model, final.dataset, split, n=n, seed=seed).values()))
        layer = first.best_layer
    metrics = {row["step"]: row for row in read_metrics(run_dir)} if (run_dir / "metrics.jsonl").is_file() else {}
    paths = list_checkpoints(run_dir)
    if not paths:
        raise CheckpointError(f"{run_dir} holds no checkpoints (expected {run_dir}/checkpoints/step_*/state.json)")
    if max_checkpoints is not None and len(paths) > max_checkpoints:
        keep = sorted({round(i * (len(paths) - 1) / (max_checkpoints - 1)) for i in range(max_checkpoints)})
        paths = [paths[i] for i in keep]
    rows: list[dict[str, Any]] = []
    dataset = None
    for path in paths:
        run = load_checkpoint(path, device=device, dataset=dataset)
        dataset = run.dataset
        logged = {k: v for k, v in metrics.get(run.step, {}).items() if k not in ("step", "seconds", "loss")}
        grids = checkpoint_grids(path, run.model, run.dataset, n=n, seed=seed, split=split)
        for row in grid_strengths(grids, run.dataset, layer):
            rows.append({"step": run.step, **row, **logged})
        if on_checkpoint is not None:
            on_checkpoint(run.step)
    return pd.DataFrame(rows)
