"""One writer per run folder: a second writer is refused in one line naming the holder; a killed holder never blocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interp.lock import LOCK_FILE, RunLockedError, is_locked, run_lock
from interp.runs import read_metrics, stored_config
from interp.train import resume, train, train_or_resume
from tests.tiny import QUICK, quick_config

ROOT = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from interp.lock import run_lock\nwith run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)"


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the lock of ``run_dir`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def kill_9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_second_writer_is_refused_naming_the_holder_and_writes_nothing(tmp_path, one_line):
    run_dir = tmp_path / "run"
    holder = hold_lock(run_dir)
    try:
        assert is_locked(run_dir)
        for write in (
            lambda: train(quick_config("train.max_steps=10"), run_dir),
            lambda: train_or_resume(quick_config("train.max_steps=10"), run_dir),
            lambda: resume(run_dir),
        ):
            with pytest.raises(RunLockedError) as err:
                write()
            assert f"pid {holder.pid}" in one_line(err.value) and str(run_dir) in str(err.value)
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]  # nothing written beside the lock
    finally:
        kill_9(holder)


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    kill_9(hold_lock(run_dir))
    assert (run_dir / LOCK_FILE).is_file() and not is_locked(run_dir)
    result = train(quick_config("train.max_steps=10"), run_dir)
    assert result.step == 10 and not is_locked(run_dir)
    kill_9(hold_lock(run_dir))
    assert resume(run_dir, max_steps=20).step == 20  # kill -9, then resume


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    with run_lock(tmp_path / "run") as run_dir:
        with run_lock(run_dir):
            assert is_locked(run_dir)
        assert is_locked(run_dir)
        result = train_or_resume(quick_config("train.max_steps=10"), run_dir)  # train -> Trainer.run lock again
        assert result.step == 10
    assert not is_locked(run_dir)
    holder = hold_lock(run_dir)  # released for other processes too
    kill_9(holder)


def test_readers_need_no_lock(tmp_path):
    run_dir = tmp_path / "run"
    train(quick_config("train.max_steps=10"), run_dir)
    holder = hold_lock(run_dir)
    try:
        assert stored_config(run_dir) == quick_config("train.max_steps=10")
        assert [row["step"] for row in read_metrics(run_dir)] == [10]
    finally:
        kill_9(holder)


def test_experiment_trial_is_refused_while_its_folder_is_written(tmp_path, one_line):
    from experiments.runner import run_trial

    run_dir = tmp_path / "trials" / "t0"
    holder = hold_lock(run_dir)
    try:
        with pytest.raises(RunLockedError) as err:
            run_trial(quick_config("train.max_steps=10").to_dict(), str(run_dir))
        assert f"pid {holder.pid}" in one_line(err.value)
    finally:
        kill_9(holder)
    assert run_trial(quick_config("train.max_steps=10").to_dict(), str(run_dir))["summary"]["step"] == 10


@pytest.mark.slow  # two real `grokscope train` processes
def test_two_train_commands_on_one_folder_one_wins(tmp_path):
    """The issue's case: two `grokscope train` a second apart on one --out, the second with another lr."""
    run_dir = tmp_path / "run"
    # the first runs for max_seconds (long enough to still run when the second one starts), then ends well
    sets = [x for o in QUICK + ["train.max_steps=1000000", "train.max_seconds=45"] for x in ("--set", o)]
    cmd = [sys.executable, "-m", "experiments.cli", "train", "composition-tiny", "--out", str(run_dir), *sets]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "config.json").is_file() and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read() if first.stderr else ""
    second = subprocess.run([*cmd, "--set", "train.lr=0.001"], cwd=ROOT, capture_output=True, text=True)
    assert first.poll() is None, "the first run ended before the second started: the test proves nothing"
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"pid {first.pid}" in lines[0], second.stderr
    assert first.wait(timeout=300) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["lr"] != 0.001 and config["train"]["max_seconds"] == 45
    assert stored_config(run_dir).train.lr == quick_config().train.lr
    assert len(read_metrics(run_dir)) > 0 and (run_dir / "summary.json").is_file()
    assert not is_locked(run_dir) and os.path.getsize(run_dir / LOCK_FILE) == 0
