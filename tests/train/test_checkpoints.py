"""Checkpoints: written dense early and sparse later, safetensors with the full config, refused when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.errors import CheckpointError
from interp.runs import latest_checkpoint, load_checkpoint
from interp.train import Trainer, resume

from ..tiny import quick_config


def test_checkpoints_dense_early_sparse_later(tmp_path):
    trainer = Trainer(quick_config(), tmp_path)
    steps = [s for s in range(1, 101) if trainer.is_checkpoint_step(s)]
    assert steps == [10, 20, 30, 40, 60, 80, 100]


def test_checkpoint_holds_full_config_and_no_pickle(small_run):
    ckpt = latest_checkpoint(small_run)
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.safetensors", "state.json", "trainer.safetensors"]
    state = json.loads((ckpt / "state.json").read_text())
    assert set(state["config"]) == {"name", "data", "model", "train"}
    assert state["config"]["data"]["n_entities"] == 40
    assert state["metrics"][-1]["step"] == 20
    # safetensors files start with a little-endian header length and a JSON header: no pickle
    for name in ("model.safetensors", "trainer.safetensors"):
        raw = (ckpt / name).read_bytes()
        header_len = int.from_bytes(raw[:8], "little")
        json.loads(raw[8 : 8 + header_len])


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _one_line_checkpoint_error(path, match):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, device="cpu")
    assert "\n" not in str(err.value)
    assert match in str(err.value)


def test_corrupted_checkpoint_is_refused(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    f = latest_checkpoint(run) / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0xFF
    f.write_bytes(bytes(raw))
    _one_line_checkpoint_error(run, "corrupted")


def test_truncated_checkpoint_is_refused(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    f = latest_checkpoint(run) / "trainer.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        resume(run)
    state = latest_checkpoint(run) / "state.json"
    state.write_text(state.read_text()[:50])
    _one_line_checkpoint_error(run, "corrupted state file")


def test_mismatched_checkpoint_is_refused(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    state_file = latest_checkpoint(run) / "state.json"
    state = json.loads(state_file.read_text())
    state["config"]["model"]["d_model"] = 64
    state_file.write_text(json.dumps(state))
    _one_line_checkpoint_error(run, "do not match")


def test_missing_checkpoint_is_refused(tmp_path):
    _one_line_checkpoint_error(tmp_path / "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    _one_line_checkpoint_error(tmp_path / "empty", "no checkpoint")
