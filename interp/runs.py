"""Run folders: read what a training run wrote, without the training code.

A run folder (``grokscope train CONFIG --out RUN_DIR``) holds

* ``config.json``    the :class:`~interp.train.RunConfig`, written before the first step;
* ``data/``          the dataset it trains on, in the paper's layout (generated from the
                     config's data section, or a copy of ``--data DIR``);
* ``metrics.jsonl``  one row per evaluation; ``summary.json`` at the end;
* ``checkpoints/step_NNNNNNN/`` safetensors weights and a ``state.json`` with the full
                     config (see :mod:`interp.train.checkpoint`); ``latest`` names the newest.

``load_checkpoint(RUN_DIR)`` rebuilds the plain model (either family) of the newest checkpoint with its
config and dataset; ``to_bridge(loaded.model)`` gives the hooked view analyses run on.
``iter_checkpoints`` walks every checkpoint, oldest first, for circuit formation.

This module imports no optimiser and no trainer, so an analysis loads a run without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.data import KGDataset, generate, load_dataset
from interp.errors import CheckpointError, ConfigError
from interp.io import read_json, read_json_lines
from interp.models import CausalLM, build_model, default_device
from interp.train.checkpoint import latest_checkpoint, list_checkpoints, load_model_state, load_tensors, read_state
from interp.train.config import RunConfig


def stored_config(run_dir: str | Path) -> RunConfig | None:
    """The config of the run in ``run_dir`` (its ``config.json``, written when the run starts); None if there is none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    data = read_json(path, CheckpointError, what="run config", expect=dict, invalid="corrupted run config")
    return _run_config(data, path)


def _run_config(data: Any, where: Path) -> RunConfig:
    """``RunConfig.from_dict(data)``; a ConfigError names the file ``where`` it came from."""
    try:
        return RunConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``RUN_DIR/metrics.jsonl`` (one per evaluation)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; is {run_dir} a training run directory?")
    rows = read_json_lines(path, CheckpointError, what="metrics row", invalid="corrupted metrics row")
    for lineno, row in rows:
        if not isinstance(row.get("step"), int):
            raise CheckpointError(f"{path}:{lineno}: a metrics row must be an object with an integer step")
    return [row for _, row in rows]


def run_dataset(run_dir: str | Path, config: RunConfig) -> KGDataset:
    """The dataset of a run: its copy in ``RUN_DIR/data``, else regenerated from the config's data section.

    A run on a dataset read from a directory (``config.data_dir``) is never regenerated: its
    files need not be what the generator makes of their config.
    """
    data_dir = Path(run_dir) / "data"
    if (data_dir / "train.json").is_file():
        return load_dataset(data_dir)
    if config.data_dir is not None:
        raise CheckpointError(
            f"{data_dir} is missing; the run's data came from {config.data_dir}: copy that dataset to {data_dir}"
        )
    return generate(config.data)


@dataclass
class LoadedRun:
    """A model restored from a checkpoint, with the config and dataset that produced it."""

    config: RunConfig
    model: CausalLM
    """The plain Hugging Face module in eval mode; ``to_bridge(model)`` for the hooked view."""
    dataset: KGDataset
    step: int
    checkpoint: Path
    state: dict[str, Any]


def load_checkpoint(
    path: str | Path, *, device: torch.device | str | None = None, dataset: KGDataset | None = None
) -> LoadedRun:
    """Rebuild the model (and dataset) of a checkpoint folder or of a run's latest checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory or a checkpoint folder")
    ckpt = path if (path / "state.json").is_file() else latest_checkpoint(path)
    state = read_state(ckpt)
    config = _run_config(state["config"], ckpt / "state.json")
    run_dir = ckpt.parent.parent
    if dataset is None:
        dataset = run_dataset(run_dir, config)
    if len(dataset.vocab) != state["d_vocab"]:
        raise CheckpointError(
            f"{ckpt}: the model's vocabulary has {state['d_vocab']} tokens, the dataset's {len(dataset.vocab)}"
        )
    tensors = load_tensors(ckpt, "model.safetensors", state)  # hash-checked before a model is built
    _check_size(config, state, sum(t.numel() for t in tensors.values()), ckpt)
    device = torch.device(device) if device is not None else default_device()
    model = build_model(config.model, state["d_vocab"], state["n_ctx"], device=device)
    load_model_state(model, {k: v.to(device) for k, v in tensors.items()}, ckpt)
    model.eval()
    return LoadedRun(config=config, model=model, dataset=dataset, step=int(state["step"]), checkpoint=ckpt, state=state)


def _check_size(config: RunConfig, state: dict[str, Any], stored: int, ckpt: Path) -> None:
    """Refuse a config that describes a model larger than the weights stored (never build it: it may not fit)."""
    m = config.model
    d, d_mlp = m.d_model, m.mlp_width
    blocks = 1 if m.share_layers or m.loops > 1 else m.n_layers
    mlp_matrices = 3 if m.family == "llama" else 2  # llama's gated MLP: gate, up and down
    fewest = state["d_vocab"] * d + blocks * (
        4 * d * d + mlp_matrices * d * d_mlp
    )  # the embedding and the blocks' matrices
    if fewest > stored:
        raise CheckpointError(
            f"{ckpt}: weights do not match the model built from its config (it needs at least {fewest} parameters, "
            f"model.safetensors holds {stored})"
        )


def iter_checkpoints(run_dir: str | Path, *, device: torch.device | str | None = None) -> Iterator[LoadedRun]:
    """Every checkpoint of a run, oldest first (for analyses of circuit formation)."""
    run_dir = Path(run_dir)
    dataset = None
    for ckpt in list_checkpoints(run_dir):
        loaded = load_checkpoint(ckpt, device=device, dataset=dataset)
        dataset = loaded.dataset
        yield loaded


__all__ = [
    "LoadedRun",
    "iter_checkpoints",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_metrics",
    "run_dataset",
    "stored_config",
]
