"""The report's progress-measures section for a modular-arithmetic run (Nanda et al. 2023).

Three charts over the checkpoints (losses with the restricted and excluded loss; the Fourier
sparsity measures; the total weight norm), the Fourier view of the weights across the
checkpoints (each frequency's norm in ``W_E`` and in ``W_U W_out``, one row per checkpoint:
the key frequencies light up as the circuit forms and the rest fade in clean-up), and the
phases :func:`interp.progress.detect_phases` finds. The rows come from
``RUN_DIR/progress.jsonl`` when it covers every checkpoint, else they are computed (and kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from circuits.views.render import Figure, Section, heatmap, line_chart, table
from interp.data import KGDataset
from interp.data.operations import SYMBOLS
from interp.progress import detect_phases, progress_measures, read_progress

LOSSES = ("train_loss", "test_loss", "restricted_loss", "excluded_loss")
FOURIER = ("gini_embedding", "gini_unembed_out", "embedding_key_power", "single_frequency_neurons")


def progress_figures(rows: Sequence[dict[str, Any]]) -> list[Figure]:
    """The progress measures over the checkpoints, the Fourier view across them, and the phases."""
    steps = [r["step"] for r in rows]
    log_losses = {
        k.replace("_", " "): [None if r.get(k) is None else math.log10(max(r[k], 1e-12)) for r in rows]
        for k in LOSSES
        if any(r.get(k) is not None for r in rows)
    }
    figs = [
        line_chart(
            steps, log_losses, title="losses (log10) over training", y_title="log10 loss", markers=True, width=620
        ),
        line_chart(
            steps,
            {k.replace("_", " "): [r[k] for r in rows] for k in FOURIER},
            title="Fourier structure over training",
            y_range=(0.0, 1.0),
            markers=True,
            width=620,
        ),
        line_chart(
            steps,
            {"total weight norm": [r["weight_norm"] for r in rows]},
            title="weight norm",
            markers=True,
            width=620,
            height=240,
        ),
    ]
    key = rows[-1]["key_frequencies"]
    for name, field in (("W_E", "embedding_frequency_norms"), ("W_U W_out", "unembed_out_frequency_norms")):
        norms = [r[field] for r in rows]
        top = max(max(n) for n in norms) or 1.0
        cols = [f"{k}{'*' if k in key else ''}" for k in range(1, len(norms[0]) + 1)]
        figs.append(
            heatmap(
                [[v / top for v in n] for n in norms],
                [str(s) for s in steps],
                cols,
                title=f"norm of each frequency in {name} (* key frequency)",
                row_title="checkpoint",
                col_title="frequency",
                vmin=0.0,
                vmax=1.0,
                cell=14,
            )
        )
    phases = detect_phases(rows)
    figs.append(
        table(
            [
                {"phase": name.replace("_", " "), "steps": "not reached" if span is None else f"{span[0]} - {span[1]}"}
                for name, span in phases.items()
                if name != "criteria"
            ],
            title=f"phases ({phases['criteria']})",
        )
    )
    return figs


def progress_section(run_dir: str | Path, dataset: KGDataset, *, log: Callable[[str], None] | None = None) -> Section:
    """The report section: progress measures of every checkpoint of the run."""
    (log or (lambda _m: None))("progress measures")
    rows = read_progress(run_dir) or progress_measures(run_dir)
    kg = dataset.kg
    return Section(
        "Progress measures (Nanda et al. 2023)",
        progress_figures(rows),
        f"{SYMBOLS[kg.operation]} mod {kg.modulus}. Restricted loss: the logits kept only along cos/sin(w_k(a+b)) of "
        "the final checkpoint's key frequencies (all pairs); excluded loss: those directions removed (training "
        "pairs). Gini: how concentrated the weights' Fourier norms are; the embedding's power in the key "
        "frequencies; the share of MLP neurons with > 85% of their variance from one frequency.",
    )


__all__ = ["progress_figures", "progress_section"]
