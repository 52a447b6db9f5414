"""Analyses an experiment runs on each trained trial; each returns numbers for the trial's row.

An :class:`~experiments.spec.Experiment` with an ``analysis`` runs it on every trial's
run directory after training (``RUN_DIR/analysis.json`` keeps the result, so a rerun of the
sweep reuses it); its keys become columns of the results table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def edit_propagation(run_dir: str | Path, *, n_edits: int = 10, seed: int = 0) -> dict[str, Any]:
    """Knowledge edits on the trial's final model: edit accuracy, propagation, locality per method."""
    import torch

    from interp.edits import edit_suite
    from interp.runs import load_checkpoint

    torch.manual_seed(seed)
    run = load_checkpoint(run_dir, device="cpu")
    return edit_suite(run.model, run.dataset, n_edits=n_edits, seed=seed)


__all__ = ["edit_propagation"]
