"""Starting runs (``interp.train.start``): resume is bit-exact, even after SIGKILL; folders that hold a run are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from interp.errors import ConfigError
from interp.runs import latest_checkpoint, list_checkpoints, load_checkpoint, read_metrics
from interp.train import Trainer, resume, train, train_or_resume

from ..tiny import QUICK, quick_config


def _accuracies(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# -- exact resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [("train.grokfast=ema",), ("train.optimizer=muon",), ("train.atomic_fraction=0.25",)],
    ids=["adamw-grokfast", "muon", "atomic-fraction"],
)
def test_resume_is_bit_exact(tmp_path, options):
    cfg = quick_config(*options)
    full = train(cfg, tmp_path / "full")
    part = train(cfg, tmp_path / "part", max_steps=20)
    assert part.step == 20
    resumed = resume(tmp_path / "part")
    assert resumed.step == full.step == 50
    assert _accuracies(read_metrics(tmp_path / "part")) == _accuracies(read_metrics(tmp_path / "full"))
    a = load_checkpoint(tmp_path / "full", device="cpu").model.state_dict()
    b = load_checkpoint(tmp_path / "part", device="cpu").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # a real training process, killed
def test_resume_after_kill_9_is_bit_exact(tmp_path):
    """A run killed with SIGKILL mid-training resumes to the uninterrupted run's metrics."""
    overrides = [
        x
        for o in QUICK + ["train.max_steps=200", "train.grokfast=window", "train.grokfast_window=7"]
        for x in ("--set", o)
    ]
    reference = train(
        quick_config("train.max_steps=200", "train.grokfast=window", "train.grokfast_window=7"), tmp_path / "ref"
    )
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "experiments.cli", "train", "composition-tiny", "--out", str(run_dir), *overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(run_dir)) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run_dir)
    assert int(killed_at.name.split("_")[1]) < 200
    assert not list((run_dir / "checkpoints").glob(".*")) or all(
        p.is_dir() for p in (run_dir / "checkpoints").glob(".*")
    )
    out = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "resume", str(run_dir)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert _accuracies(read_metrics(run_dir)) == _accuracies(read_metrics(tmp_path / "ref"))
    assert reference.step == 200


def test_training_into_an_existing_run_is_refused(small_run):
    with pytest.raises(ConfigError, match="already holds a run"):
        train(quick_config(), small_run)


def test_training_into_a_file_or_for_no_steps_is_refused(tmp_path, one_line):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError) as err:
        train(quick_config(), tmp_path / "a_file")
    assert "is a file" in one_line(err.value)
    for steps in (0, -3):
        with pytest.raises(ConfigError) as err:
            train(quick_config(), tmp_path / "run", max_steps=steps)
        assert f"max_steps = {steps}" in one_line(err.value)
    assert not (tmp_path / "run").exists()


def test_resume_restarts_a_run_stopped_before_its_first_checkpoint(small_run, tmp_path, monkeypatch):
    """Killed before its first checkpoint (config.json, data/ and a metrics row written), a run starts again."""

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Trainer, "save", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(quick_config("train.max_steps=20"), tmp_path / "run")
    run_dir = tmp_path / "run"
    assert (run_dir / "config.json").is_file() and (run_dir / "data" / "train.json").is_file()
    assert not list_checkpoints(run_dir) and read_metrics(run_dir)[-1]["step"] == 10
    result = resume(run_dir)
    assert result.step == 20
    assert _accuracies(read_metrics(run_dir)) == _accuracies(read_metrics(small_run))


def test_train_or_resume_trains_then_continues_and_refuses_another_config(tmp_path, one_line):
    run_dir = tmp_path / "run"
    first = train_or_resume(quick_config("train.max_steps=20"), run_dir)
    rows = read_metrics(run_dir)
    assert first.step == 20 and rows[-1]["step"] == 20
    # the same config again: the finished run is resumed, not retrained, and ends where it was
    again = train_or_resume(quick_config("train.max_steps=20"), run_dir)
    assert again.step == 20 and again.metrics == first.metrics
    assert _accuracies(read_metrics(run_dir)) == _accuracies(rows)
    with pytest.raises(ConfigError) as err:
        train_or_resume(quick_config("train.max_steps=20", "train.lr=1e-4"), run_dir)
    assert "another config" in one_line(err.value)


def test_a_run_saved_before_a_setting_existed_resumes(tmp_path):
    """A checkpoint (and run folder) written before a train setting was added, i.e. without its key,
    is the same config as today's with that setting at its default: it resumes, bit for bit."""
    cfg = quick_config("train.max_steps=20", "train.checkpoint_every=10")
    whole = train_or_resume(cfg, tmp_path / "whole")
    run_dir = tmp_path / "run"
    Trainer(cfg, run_dir).run(max_steps=10)
    for state_file in [*run_dir.glob("checkpoints/*/state.json"), run_dir / "config.json"]:
        state = json.loads(state_file.read_text())
        config = state.get("config", state)
        for key in ("label_smoothing", "atomic_loops"):
            del config["train"][key]
        state_file.write_text(json.dumps(state))
    again = train_or_resume(cfg, run_dir)
    assert again.step == 20 and _accuracies(read_metrics(run_dir)) == _accuracies(read_metrics(tmp_path / "whole"))
    assert {k: v for k, v in again.metrics.items() if k != "seconds"} == {
        k: v for k, v in whole.metrics.items() if k != "seconds"
    }
