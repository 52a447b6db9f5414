"""Training to grokking: configs and presets, the trainer, checkpoints, exact resume.

``train(config, run_dir)`` trains a fresh run, ``resume(run_dir)`` continues one from its last
complete checkpoint (``train_or_resume`` does whichever applies). Reading a run folder
(``load_checkpoint``, ``iter_checkpoints``, ``read_metrics``, ``stored_config``, ``LoadedRun``)
lives in :mod:`interp.runs` and is re-exported here.

The configs import at once; the entry points (:mod:`interp.train.start`), the trainer (and with
it the optimisers) and :mod:`interp.runs` import on first use of one of their names, so
``interp.runs`` can read the configs of this package without loading the training code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from interp.train.config import RunConfig, TrainConfig
from interp.train.presets import load_run_config, presets

if TYPE_CHECKING:
    from interp.runs import LoadedRun, iter_checkpoints, load_checkpoint, read_metrics, stored_config
    from interp.train.objective import accuracy, answer_logits, batch_loss
    from interp.train.start import resume, train, train_or_resume
    from interp.train.trainer import Trainer, TrainResult

_LAZY = {
    **dict.fromkeys(
        ("LoadedRun", "iter_checkpoints", "load_checkpoint", "read_metrics", "stored_config"), "interp.runs"
    ),
    **dict.fromkeys(("accuracy", "answer_logits", "batch_loss"), "interp.train.objective"),
    **dict.fromkeys(("resume", "train", "train_or_resume"), "interp.train.start"),
    **dict.fromkeys(("Trainer", "TrainResult"), "interp.train.trainer"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LoadedRun",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "accuracy",
    "answer_logits",
    "batch_loss",
    "iter_checkpoints",
    "load_checkpoint",
    "load_run_config",
    "presets",
    "read_metrics",
    "resume",
    "stored_config",
    "train",
    "train_or_resume",
]
