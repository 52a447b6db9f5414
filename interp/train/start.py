"""Starting a run in a folder: train a fresh one, resume a stopped one, or whichever applies.

Each entry point holds the folder's run lock (:func:`interp.lock.run_lock`) while it checks
what the folder holds and trains, so one folder has one writer. ``train`` refuses a folder
that already holds a run; ``resume`` continues from the last complete checkpoint (or, for a
run stopped before its first one, starts again from ``config.json`` and the dataset copy);
``train_or_resume`` does whichever applies and refuses a folder holding another config's run.
The loop itself is :class:`interp.train.trainer.Trainer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.data import KGDataset
from interp.errors import ConfigError
from interp.lock import holding_run_lock
from interp.models import CausalLM
from interp.runs import run_dataset, stored_config
from interp.train.checkpoint import latest_checkpoint, list_checkpoints, read_state
from interp.train.config import RunConfig
from interp.train.trainer import Trainer, TrainResult


@holding_run_lock(lambda config, run_dir, **_: run_dir)  # checks and writes under one lock: one writer per folder
def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    dataset: KGDataset | None = None,
    model: CausalLM | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train ``config`` from scratch into ``run_dir`` (which must not hold a run already)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory; pick a new --out")
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with `grokscope resume {run_dir}` or pick a new --out"
        )
    return Trainer(config, run_dir, dataset=dataset, model=model).run(max_steps=max_steps)


@holding_run_lock(lambda run_dir, **_: run_dir, create=False)
def resume(
    run_dir: str | Path, *, max_steps: int | None = None, overrides: dict[str, Any] | None = None
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last complete checkpoint.

    A run stopped before its first checkpoint (``config.json`` written, no checkpoint) starts
    again from its stored config and its dataset copy.
    """
    run_dir = Path(run_dir)
    stored = stored_config(run_dir) if run_dir.is_dir() and not list_checkpoints(run_dir) else None
    if stored is not None:
        return Trainer(stored, run_dir, dataset=run_dataset(run_dir, stored)).run(max_steps=max_steps)
    ckpt = latest_checkpoint(run_dir)
    state = read_state(ckpt)
    config = RunConfig.from_dict(state["config"])
    trainer = Trainer(config, run_dir, dataset=run_dataset(run_dir, config))
    trainer.load(ckpt)
    return trainer.run(max_steps=max_steps)


@holding_run_lock(lambda config, run_dir: run_dir)
def train_or_resume(config: RunConfig, run_dir: str | Path) -> TrainResult:
    """Train ``config`` into ``run_dir``; if it already holds a run of the same config, resume that.

    A finished run returns at once, so notebooks and the main job can call this every time.
    A run of another config in ``run_dir`` is refused (one line), never silently continued.
    """
    run_dir = Path(run_dir)
    if not list_checkpoints(run_dir):
        return train(config, run_dir)
    stored = stored_config(run_dir)
    if stored != config:
        raise ConfigError(
            f"{run_dir} holds a run of another config ({getattr(stored, 'name', 'no config.json')}); pick another run directory or resume it as it is"
        )
    return resume(run_dir)


__all__ = ["resume", "train", "train_or_resume"]
