"""What the two explorer browser modules share: the explorer page of a grokked run, and torch's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from circuits.space import ModelGraph
from circuits.views.explorer.page import explorer_figures
from circuits.views.render import Section, page
from circuits.views.sections import CURVES, position_labels
from interp.models import to_bridge
from interp.runs import read_metrics

from ...tiny import single_thread

TOLERANCE = 1e-9  # page (float64 arithmetic on float16 weights) against torch float64 on the same weights


def write_explorer_page(run_dir: Path, run, path: Path, *, max_checkpoints: int) -> Path:
    """The explorer of ``run`` (a ``LoadedRun`` of ``run_dir``) alone on a page at ``path``, built on one thread."""
    labels = position_labels(run.dataset)
    with single_thread():
        n_edges = ModelGraph.of(to_bridge(run.model), len(labels)).n_edges
        figs = explorer_figures(
            run_dir,
            run.model,
            run.dataset,
            labels,
            step=run.step,
            circuit_size=None,
            n_edges=n_edges,
            metrics=read_metrics(run_dir),
            curves=CURVES,
            n=30,
            max_checkpoints=max_checkpoints,
        )
    path.write_text(page("explorer", [Section("Explorer", figs)]), encoding="utf-8")
    return path


def torch_logits(model, prompts: list[list[int]]) -> np.ndarray:
    """The logits of ``model`` at every position of each prompt."""
    with torch.no_grad():
        return model(input_ids=torch.tensor(prompts)).logits.numpy()
