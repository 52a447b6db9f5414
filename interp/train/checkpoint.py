"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint is a folder ``RUN_DIR/checkpoints/step_000400/`` holding

* ``model.safetensors``   the model's weights, each shared tensor (tied embeddings, the blocks
                          of a looped model) once, under its first name;
* ``trainer.safetensors`` optimizer moments, the RNG state, slow-gradient filter state;
* ``state.json``          the full run config, step, elapsed seconds, optimizer hyper-parameters,
                          metrics history, and a SHA-256 of each tensor file.

The folder is written under a temporary name and renamed into place, and ``RUN_DIR/latest``
names the newest complete checkpoint, so a run killed at any moment (``kill -9``) leaves
only complete checkpoints behind. Loading checks the hashes and the config, and refuses a
corrupted, truncated or mismatched checkpoint with a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp.errors import CheckpointError
from interp.io import atomic_write_text, read_json

FORMAT_VERSION = 1
_CHECKPOINT_NAME = re.compile(r"step_[0-9]{7,}")
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "config": (dict,),
    "sha256": (dict,),
    "d_vocab": (int,),
    "n_ctx": (int,),
    "elapsed": (int, float),
    "metrics": (list,),
    "memorized_step": (int, type(None)),
    "grokked_step": (int, type(None)),
}
"""What ``state.json`` holds, by key, as the trainer writes it."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _storage_key(t: torch.Tensor) -> tuple[Any, ...]:
    return (t.device, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())


def unique_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` without later names of the same tensor (one entry per shared parameter)."""
    seen: set[tuple[Any, ...]] = set()
    out = {}
    for name, t in tensors.items():
        key = _storage_key(t)
        if key not in seen:
            seen.add(key)
            out[name] = t
    return out


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint at ``step``: ``step_NNNNNNN``."""
    return f"step_{step:07d}"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    trainer_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    """Write one checkpoint atomically and point ``RUN_DIR/latest`` at it."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        save_file(_contiguous(unique_tensors(model_state)), str(tmp / "model.safetensors"))
        save_file(_contiguous(trainer_tensors), str(tmp / "trainer.safetensors"))
        state = dict(state)
        state["format_version"] = FORMAT_VERSION
        state["step"] = step
        state["sha256"] = {
            "model.safetensors": _sha256(tmp / "model.safetensors"),
            "trainer.safetensors": _sha256(tmp / "trainer.safetensors"),
        }
        atomic_write_text(tmp / "state.json", json.dumps(state, indent=1, sort_keys=True))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700; give the usual folder mode
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / "latest", final.name + "\n")
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / "state.json").is_file()
    )


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint ``RUN_DIR/latest`` names (or the newest complete one)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    pointer = run_dir / "latest"
    if pointer.is_file():  # a pointer that names no complete checkpoint of this run is passed over
        name = pointer.read_bytes()[:64].decode("utf-8", "replace").strip()
        path = run_dir / "checkpoints" / name
        if _CHECKPOINT_NAME.fullmatch(name) and (path / "state.json").is_file():
            return path
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} holds no checkpoint (expected {run_dir}/checkpoints/step_*/state.json)")
    return found[-1]


def read_state(path: str | Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint folder, checked for format."""
    path = Path(path)
    state_file = path / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{path} is not a checkpoint (no state.json)")
    state = read_json(state_file, CheckpointError, what="state file", expect=dict, invalid="corrupted state file")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{state_file}: not a grokscope checkpoint of format {FORMAT_VERSION}")
    for key, types in _STATE_TYPES.items():
        if key not in state:
            raise CheckpointError(f"{state_file}: truncated state file (no {key!r})")
        value = state[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, types)
            or (key in ("step", "d_vocab", "n_ctx") and value < 0)
        ):
            raise CheckpointError(f"{state_file}: corrupted state file ({key} = {value!r:.40})")
    hashes = state["sha256"]
    if not all(isinstance(hashes.get(n), str) for n in ("model.safetensors", "trainer.safetensors")):
        raise CheckpointError(
            f"{state_file}: corrupted state file (sha256 needs model.safetensors and trainer.safetensors)"
        )
    if not all(isinstance(row, dict) for row in state["metrics"]):
        raise CheckpointError(f"{state_file}: corrupted state file (metrics must be rows of numbers)")
    return state


def load_tensors(path: str | Path, name: str, state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Load ``name`` (model.safetensors / trainer.safetensors) after checking its hash."""
    file = Path(path) / name
    if not file.is_file():
        raise CheckpointError(f"{file} is missing; the checkpoint is incomplete")
    expected = state["sha256"][name]
    if _sha256(file) != expected:
        raise CheckpointError(f"{file} is corrupted or truncated (SHA-256 does not match state.json)")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{file} cannot be read as safetensors ({err})") from None


def load_model_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str | Path) -> None:
    """Copy ``tensors`` into ``model``; a missing, extra or misshapen tensor is a CheckpointError.

    A tensor the model shares under several names (saved once) is filled in under the others.
    """
    own = model.state_dict()
    first: dict[tuple[Any, ...], str] = {}
    for key, value in own.items():
        name = first.setdefault(_storage_key(value), key)
        if key not in tensors and name in tensors:
            tensors = {**tensors, key: tensors[name]}
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CheckpointError(f"{where}: weights do not match the model built from its config ({what})")
    for key, value in tensors.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"{where}: weights do not match the model built from its config "
                f"({key} has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)})"
            )
    model.load_state_dict(tensors, strict=True)
