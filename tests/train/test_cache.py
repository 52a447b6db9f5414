"""The cache of finished runs: keyed by config and training code, trained once, shared by processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interp.errors import CheckpointError
from interp.runs import load_checkpoint
from interp.train import cache as run_cache
from interp.train import start
from interp.train.cache import cached_train, entry_dir, run_key, training_code_hash, training_sources

from ..tiny import quick_config

ROOT = Path(run_cache.__file__).resolve().parents[1]


def test_the_key_hashes_the_training_modules_and_not_the_analyses():
    names = {p.relative_to(ROOT).as_posix() for p in training_sources()}
    # what decides a trained model: the trainer, its optimisers, the model, the data generators
    assert {
        "train/start.py",
        "train/trainer.py",
        "train/order.py",
        "train/muon.py",
        "train/config.py",
        "models/gpt2.py",
        "data/composition.py",
        "data/comparison.py",
        "__init__.py",
        "train/__init__.py",
    } <= names
    # what only reads a run
    assert not names & {"lens.py", "patching.py", "tracing.py", "attribution.py", "train/cache.py"}
    assert not any(n.startswith("features/") for n in names)


def test_a_change_to_a_training_module_changes_the_key_and_one_to_an_analysis_does_not(tmp_path):
    copy = tmp_path / "interp"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = training_code_hash(copy)
    assert before == training_code_hash(ROOT)
    (copy / "lens.py").write_text((copy / "lens.py").read_text() + "\n# a comment\n")
    assert training_code_hash(copy) == before
    (copy / "train" / "muon.py").write_text((copy / "train" / "muon.py").read_text() + "\n# a comment\n")
    assert training_code_hash(copy) != before
    config = quick_config()
    assert run_key(config, training_code_hash(copy)) != run_key(config, before)


def test_the_key_follows_the_config():
    assert run_key(quick_config()) == run_key(quick_config())
    assert run_key(quick_config("train.seed=1")) != run_key(quick_config())
    assert run_key(quick_config("train.threads=2")) != run_key(quick_config())


def _counting_train(monkeypatch) -> list[Path]:
    calls = []
    real = start.train

    def counted(config, run_dir, **kwargs):
        calls.append(Path(run_dir))
        return real(config, run_dir, **kwargs)

    monkeypatch.setattr(start, "train", counted)
    return calls


def test_the_first_call_trains_and_later_calls_read_the_same_run(tmp_path, monkeypatch):
    calls = _counting_train(monkeypatch)
    config = quick_config("train.max_steps=20")
    run_dir = cached_train(config, tmp_path)
    assert run_dir == entry_dir(config, tmp_path) and len(calls) == 1
    assert calls[0] != run_dir  # trained beside it, renamed into place when done
    assert cached_train(config, tmp_path) == run_dir and len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [run_dir.name, f"{run_dir.name}.json", f"{run_dir.name}.lock"]
    )
    manifest = json.loads((tmp_path / f"{run_dir.name}.json").read_text())
    assert manifest["code"] == training_code_hash() and manifest["torch"] == torch.__version__
    assert "checkpoints/step_0000020/model.safetensors" in manifest["files"]
    loaded = load_checkpoint(run_dir, device="cpu")
    assert loaded.step == 20 and loaded.config == config
    # another config is another entry
    other = cached_train(quick_config("train.max_steps=10"), tmp_path)
    assert other != run_dir and len(calls) == 2


def test_a_run_being_trained_elsewhere_is_busy_without_waiting(tmp_path, monkeypatch):
    calls = _counting_train(monkeypatch)
    config = quick_config("train.max_steps=10")
    with run_cache._entry_lock(entry_dir(config, tmp_path), wait=True):  # another open file: another holder
        assert cached_train(config, tmp_path, wait=False) is None
    assert calls == []
    assert cached_train(config, tmp_path, wait=False) == entry_dir(config, tmp_path) and len(calls) == 1


def test_a_failed_training_leaves_no_entry_and_frees_the_lock(tmp_path, monkeypatch):
    def broken(config, run_dir, **kwargs):
        Path(run_dir).mkdir(parents=True)
        (Path(run_dir) / "metrics.jsonl").write_text("{}\n")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(start, "train", broken)
    config = quick_config("train.max_steps=10")
    with pytest.raises(RuntimeError, match="out of memory"):
        cached_train(config, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{entry_dir(config, tmp_path).name}.lock"]
    monkeypatch.undo()
    assert cached_train(config, tmp_path, wait=False) == entry_dir(config, tmp_path)


def test_a_crashed_trainers_leftovers_are_cleared(tmp_path):
    config = quick_config("train.max_steps=10")
    entry = entry_dir(config, tmp_path)
    stale = entry.with_name(f".{entry.name}.partial-999999")
    (stale / "checkpoints").mkdir(parents=True)
    entry.mkdir()  # renamed into place, but the manifest was never written
    (entry / "junk").write_text("x")
    assert cached_train(config, tmp_path) == entry
    assert not stale.exists() and not (entry / "junk").exists()


def test_an_entry_changed_after_training_is_refused_in_one_line(tmp_path, one_line):
    config = quick_config("train.max_steps=10")
    run_dir = cached_train(config, tmp_path)
    # what readers may add (per-checkpoint analyses, progress measures) leaves the entry as it was
    (run_dir / "analyses" / "step_0000010").mkdir(parents=True)
    (run_dir / "analyses" / "step_0000010" / "grids-0123.json").write_text("{}")
    (run_dir / "progress.jsonl").write_text("{}\n")
    assert cached_train(config, tmp_path) == run_dir
    (run_dir / "report.html").write_text("<html>")  # anything else is a change
    with pytest.raises(CheckpointError, match="report.html: the cached run changed"):
        cached_train(config, tmp_path)
    (run_dir / "report.html").unlink()
    (run_dir / "metrics.jsonl").write_text((run_dir / "metrics.jsonl").read_text() + "\n")
    with pytest.raises(CheckpointError) as err:
        cached_train(config, tmp_path)
    assert one_line(err.value).startswith(f"{run_dir / 'metrics.jsonl'}: the cached run changed")
    (tmp_path / f"{run_dir.name}.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupted cache manifest"):
        cached_train(config, tmp_path)


CHILD = """
import sys
from pathlib import Path
from interp.train import load_run_config, start
from interp.train.cache import cached_train
real = start.train
def counted(config, run_dir, **kwargs):
    with open(sys.argv[2], "a") as log:
        log.write("trained\\n")
    return real(config, run_dir, **kwargs)
start.train = counted
print(cached_train(load_run_config("composition-tiny", sys.argv[3:]), sys.argv[1]))
"""


@pytest.mark.slow  # two real processes
def test_two_processes_asking_at_once_train_one_run(tmp_path):
    from ..tiny import QUICK

    args = [sys.executable, "-c", CHILD, str(tmp_path / "cache"), str(tmp_path / "log"), *QUICK, "train.max_steps=40"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(entry_dir(quick_config("train.max_steps=40"), tmp_path / "cache"))
    assert (tmp_path / "log").read_text() == "trained\n"
