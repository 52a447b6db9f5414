"""Progress measures over a run's checkpoints, and the three phases of grokking they show.

Nanda et al. (2023) follow a grokking run of modular addition with measures that move
*before* the test loss does: the Fourier structure of the weights
(:mod:`interp.fourier`), the restricted loss (only the generalising circuit kept) and the
excluded loss (it removed), and the total weight norm. They split training into

1. **memorisation**: the training loss falls, the test loss does not;
2. **circuit formation**: the Fourier circuit grows (restricted loss falls, excluded loss
   rises, weights grow sparse in frequency) while the test loss stays high;
3. **clean-up**: weight decay removes the memorising components; the test loss falls
   steeply (grokking) and then levels off.

:func:`progress_measures` computes one row per checkpoint (key frequencies fixed from the
final checkpoint, as in the paper) and :func:`detect_phases` the three phases' step
ranges, by stated criteria: memorisation ends at the first checkpoint with training
accuracy >= 0.99; clean-up starts at the first checkpoint (after the test loss's peak) whose
test loss is below a uniform guess's, log p (the held-out pairs are answered better than
chance), and ends where the test loss has fallen 90% of the way, in log scale, from its
peak to its final value. ``grokscope progress RUN`` prints the rows as
JSON lines and keeps them in ``RUN/progress.jsonl``; each checkpoint's measures are computed once
(:mod:`interp.checkpoint_analyses`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from interp.checkpoint_analyses import cached_analysis
from interp.errors import GrokscopeError
from interp.fourier import ModularTask, fourier_measures, key_frequencies, neuron_frequencies
from interp.io import atomic_write_text, read_json_lines
from interp.runs import iter_checkpoints, list_checkpoints, load_checkpoint

FIELDS = frozenset(
    {
        "step",
        "key_frequencies",
        "embedding_key_power",
        "gini_embedding",
        "gini_unembed_out",
        "single_frequency_neurons",
        "train_loss",
        "test_loss",
        "train_accuracy",
        "test_accuracy",
        "restricted_loss",
        "chance_loss",
        "excluded_loss",
        "embedding_frequency_norms",
        "unembed_out_frequency_norms",
        "weight_norm",
    }
)
"""The measures of a row: a saved file that lacks one is stale and computed again."""
MEMORISED = 0.99
"""Training accuracy that ends memorisation."""
DESCENT = 0.9
"""Clean-up ends at 90% of the test loss's fall (log scale) from its peak to its final value."""


def weight_norm(model: torch.nn.Module) -> float:
    """The total L2 norm of a model's parameters (each shared tensor once)."""
    return float(torch.sqrt(sum(p.detach().double().pow(2).sum() for p in model.parameters())))


def checkpoint_measures(
    checkpoint: str | Path, model: torch.nn.Module, task: ModularTask, key: list[int] | None = None
) -> dict[str, Any]:
    """:func:`~interp.fourier.fourier_measures` and the weight norm of the model of ``checkpoint``, computed
    once per checkpoint and key frequencies (:mod:`interp.checkpoint_analyses`)."""

    def compute() -> dict[str, Any]:
        return {**fourier_measures(model, task, key), "weight_norm": weight_norm(model)}

    return cached_analysis(checkpoint, "fourier", {"key": key}, compute, code=("interp.progress",))


def final_key_frequencies(run_dir: str | Path) -> list[int]:
    """The key frequencies of a run's last checkpoint."""
    loaded = load_checkpoint(run_dir, device="cpu")
    return list(checkpoint_measures(loaded.checkpoint, loaded.model, ModularTask(loaded.dataset))["key_frequencies"])


def progress_measures(run_dir: str | Path, *, save: bool = True) -> list[dict[str, Any]]:
    """One row of measures per checkpoint of the run in ``run_dir`` (oldest first); with ``save``, also
    written to ``RUN_DIR/progress.jsonl``."""
    run_dir = Path(run_dir)
    key = final_key_frequencies(run_dir)
    rows: list[dict[str, Any]] = []
    task: ModularTask | None = None
    for loaded in iter_checkpoints(run_dir, device="cpu"):
        task = task or ModularTask(loaded.dataset)
        rows.append({"step": loaded.step, **checkpoint_measures(loaded.checkpoint, loaded.model, task, key)})
    if save:
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        atomic_write_text(run_dir / "progress.jsonl", text)
    return rows


def read_progress(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """The rows of ``RUN_DIR/progress.jsonl`` if they cover every checkpoint of the run with every measure of
    :data:`FIELDS`; None otherwise."""
    run_dir = Path(run_dir)
    try:
        rows = [row for _, row in read_json_lines(run_dir / "progress.jsonl", GrokscopeError)]
    except GrokscopeError:  # missing or damaged: the measures are computed again
        return None
    steps = [int(c.name.rsplit("_", 1)[1]) for c in list_checkpoints(run_dir)]
    complete = all(FIELDS <= set(r) for r in rows)
    return rows if complete and [r.get("step") for r in rows] == steps else None


def detect_phases(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The step ranges of memorisation, circuit formation and clean-up (None where a phase was not reached)."""
    memorised = next((r["step"] for r in rows if r["train_accuracy"] >= MEMORISED), None)
    phases: dict[str, Any] = {
        "memorisation": [0, memorised] if memorised is not None else None,
        "circuit_formation": None,
        "cleanup": None,
        "criteria": (
            f"memorisation ends at train accuracy >= {MEMORISED}; clean-up starts when the test loss falls below a "
            f"uniform guess's (log p) and ends at {DESCENT:.0%} of its fall (log scale) from its peak to its last value"
        ),
    }
    if memorised is None:
        return phases
    after = [r for r in rows if r["step"] >= memorised]
    logs = [math.log(max(r["test_loss"], 1e-12)) for r in after]
    peak = max(range(len(logs)), key=logs.__getitem__)
    below = [i for i in range(peak, len(after)) if after[i]["test_loss"] < after[i]["chance_loss"]]
    if not below:  # held-out pairs never beat a uniform guess: the circuit is still forming
        phases["circuit_formation"] = [memorised, after[-1]["step"]]
        return phases
    first = below[0]
    top, bottom = logs[peak], logs[-1]
    end = next(i for i in range(first, len(logs)) if logs[i] <= top - DESCENT * (top - bottom))
    phases["circuit_formation"] = [memorised, after[first]["step"]]
    phases["cleanup"] = [after[first]["step"], after[max(end, first)]["step"]]
    return phases


__all__ = [
    "DESCENT",
    "FIELDS",
    "MEMORISED",
    "detect_phases",
    "final_key_frequencies",
    "key_frequencies",
    "neuron_frequencies",
    "progress_measures",
    "read_progress",
    "weight_norm",
]
