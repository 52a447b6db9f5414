"""Training to grokking: configs and presets, the trainer, checkpoints, exact resume.

``train(config, run_dir)`` trains a fresh run, ``resume(run_dir)`` continues one from its last
complete checkpoint (``train_or_resume`` does whichever applies), ``load_checkpoint(path)`` rebuilds a trained model with its dataset.
"""

from interp.train.config import RunConfig, TrainConfig, load_run_config, presets
from interp.train.trainer import (
    LoadedRun,
    Trainer,
    TrainResult,
    accuracy,
    answer_logits,
    batch_loss,
    iter_checkpoints,
    load_checkpoint,
    read_metrics,
    resume,
    stored_config,
    train,
    train_or_resume,
)

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
