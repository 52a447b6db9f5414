"""The trainer: it really groks, resumes bit for bit, and its checkpoints are safe."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from interp.data import generate, load_dataset
from interp.errors import CheckpointError, ConfigError
from interp.models import build_model
from interp.runs import latest_checkpoint, list_checkpoints, load_checkpoint, read_metrics
from interp.train import (
    RunConfig,
    Trainer,
    answer_logits,
    batch_loss,
    load_run_config,
    resume,
    train,
)
from interp.train.grokfast import GradientFilter

SPLITS = ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")

# A run small enough to train many times: a tiny graph and model, a checkpoint every 10 steps.
QUICK = [
    "data.n_entities=40",
    "data.n_relations=8",
    "data.out_degree=4",
    "data.phi=2",
    "data.test_id_fraction=0.1",
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=2",
    "train.batch_size=32",
    "train.eval_every=10",
    "train.checkpoint_every=10",
    "train.checkpoint_dense_until=30",
    "train.checkpoint_sparse_every=20",
    "train.max_steps=50",
    "train.stop_after_grok=false",
    "train.progress=false",
    "train.threads=1",
]


def quick_config(*extra: str):
    return load_run_config("composition-tiny", QUICK + list(extra))


def _accuracies(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# -- the scientific result ------------------------------------------------------------------
def test_default_tiny_recipe_groks(grokked_run_dir):
    rows = read_metrics(grokked_run_dir)
    summary = json.loads((grokked_run_dir / "summary.json").read_text())
    last = rows[-1]
    assert last["test_id"] >= 0.99
    assert last["train"] >= 0.99
    # as the paper reports, OOD composition does not generalize
    assert last["test_ood"] < 0.5
    assert summary["grokked_step"] == last["step"]
    assert summary["memorized_step"] is not None and summary["memorized_step"] <= summary["grokked_step"]
    for row in rows:
        assert set(SPLITS) | {"step", "seconds", "loss"} <= set(row)
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert [r["seconds"] for r in rows] == sorted(r["seconds"] for r in rows)
    assert list((grokked_run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_checkpoint_round_trip_gives_identical_logits(grokked_run_dir, grokked_composition):
    loaded = grokked_composition
    batch = loaded.dataset.batch("test_id")
    again = load_checkpoint(latest_checkpoint(grokked_run_dir), device="cpu")
    with torch.no_grad():
        a = loaded.model(input_ids=batch.tokens).logits
        b = again.model(input_ids=batch.tokens).logits
    assert torch.equal(a, b)
    acc = (answer_logits(loaded.model, batch.tokens, batch.answer_pos).argmax(-1) == batch.answer).float().mean()
    assert acc.item() == pytest.approx(read_metrics(grokked_run_dir)[-1]["test_id"])


# -- losses ------------------------------------------------------------------------------------
def test_answer_only_unembedding_equals_full_loss():
    cfg = quick_config()
    data = generate(cfg.data)
    model = build_model(cfg.model, len(data.vocab), 5, seed=0, device="cpu")
    batch = data.batch("train")[torch.arange(64)]
    full = batch_loss(model, batch, answer_only=False, loss_on_eos=False)
    fast = batch_loss(model, batch, answer_only=True, loss_on_eos=False)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    with_eos = batch_loss(model, batch, answer_only=False, loss_on_eos=True)
    assert not torch.isclose(with_eos, full)


def test_label_smoothing_is_the_mixture_of_the_loss_and_the_mean_over_the_vocabulary():
    """eps-smoothed loss = (1 - eps) x cross-entropy + eps x mean over the vocabulary of -log p, on both paths."""
    cfg = quick_config()
    data = generate(cfg.data)
    model = build_model(cfg.model, len(data.vocab), 5, seed=0, device="cpu")
    batch = data.batch("train")[torch.arange(64)]
    eps = 0.1
    logp = answer_logits(model, batch.tokens, batch.answer_pos).log_softmax(-1)
    plain = -logp[torch.arange(len(batch)), batch.answer].mean()
    expected = (1 - eps) * plain + eps * (-logp.mean(-1)).mean()
    for answer_only in (True, False):
        smoothed = batch_loss(model, batch, answer_only=answer_only, loss_on_eos=False, label_smoothing=eps)
        torch.testing.assert_close(smoothed, expected, rtol=1e-5, atol=1e-6)


def test_atomic_fraction_sets_each_batch_and_keeps_every_epoch_whole(tmp_path):
    """Each batch holds round(f x batch) atomic facts; each group's rows recur only after its whole epoch."""
    trainer = Trainer(quick_config("train.atomic_fraction=0.25"), tmp_path)
    atomic = torch.tensor([trainer.dataset.schema.is_atomic(ex) for ex in trainer.dataset.examples("train")])
    n_atomic, n_other = int(atomic.sum()), int((~atomic).sum())
    per_epoch = n_atomic // 8  # 8 of each batch of 32 are atomic
    seen = []
    for step in range(per_epoch):
        idx = trainer.batch_indices(step)
        assert len(idx) == 32 and int(atomic[idx].sum()) == 8
        seen += idx[atomic[idx]].tolist()
    assert len(seen) == len(set(seen)) == per_epoch * 8 <= n_atomic
    assert n_other >= 24
    default = Trainer(quick_config(), tmp_path / "default")
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(default.batch_indices(1), torch.randperm(len(default.train_batch), generator=gen)[32:64])


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
    overrides = [x for o in QUICK + ["train.max_steps=200", "train.grokfast=window", "train.grokfast_window=7"] for x in ("--set", o)]
    reference = train(quick_config("train.max_steps=200", "train.grokfast=window", "train.grokfast_window=7"), tmp_path / "ref")
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
    assert not list((run_dir / "checkpoints").glob(".*")) or all(p.is_dir() for p in (run_dir / "checkpoints").glob(".*"))
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "resume", str(run_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _accuracies(read_metrics(run_dir)) == _accuracies(read_metrics(tmp_path / "ref"))
    assert reference.step == 200


# -- checkpoints -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    train(quick_config("train.max_steps=20"), run_dir)
    return run_dir


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


def test_a_config_with_data_dir_trains_on_that_directory(tmp_path, one_line):
    data = generate(quick_config().data)
    data.save(tmp_path / "d")
    cfg = quick_config().with_data_from(tmp_path / "d", load_dataset(tmp_path / "d").config)
    assert cfg.to_dict()["data_dir"] == str((tmp_path / "d").resolve())
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert Trainer(cfg, tmp_path / "run").dataset.examples("test_id") == data.examples("test_id")
    # a data section that is not the dataset's own would be a config that lies about its data
    other = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seed=5))
    with pytest.raises(ConfigError) as err:
        Trainer(other, tmp_path / "run2")
    assert "not that of the dataset" in one_line(err.value)
    with pytest.raises(ConfigError) as err:
        cfg.with_overrides(["data.seed=5"])
    assert "data.seed=5" in one_line(err.value)


def test_run_folders_load_without_the_training_code():
    """interp.runs reads configs and checkpoints but imports no trainer, optimiser or filter."""
    code = "import sys, interp.runs; print(' '.join(sorted(m for m in sys.modules if m.startswith('interp.train.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["interp.train.checkpoint", "interp.train.config"]
    import interp.runs
    import interp.train

    for name in ("LoadedRun", "load_checkpoint", "iter_checkpoints", "read_metrics", "stored_config"):
        assert getattr(interp.train, name) is getattr(interp.runs, name)


def test_grokking_needs_every_grok_split(tmp_path, monkeypatch):
    """With grok_splits (test_id, test_ood) the grokking step is the first evaluation where both pass."""
    trainer = Trainer(quick_config("train.grok_splits=test_id,test_ood", "train.tensorboard=false"), tmp_path)
    assert trainer.config.train.grok_splits == ("test_id", "test_ood")
    scores = iter([
        {"test_id": 0.995, "test_ood": 0.40},  # test-ID grokked, OOD not: not yet
        {"test_id": 0.999, "test_ood": 0.985},  # OOD just under the 0.99 threshold
        {"test_id": 0.992, "test_ood": 0.991},  # both: the grokking step
        {"test_id": 0.500, "test_ood": 0.500},  # a later drop does not undo it
    ])
    monkeypatch.setattr(trainer, "evaluate", lambda: {**dict.fromkeys(SPLITS, 1.0), **next(scores)})
    grokked = []
    for step in (100, 200, 300, 400):
        trainer.step = step
        trainer._record(0.0, None, None)
        grokked.append(trainer.grokked_step)
    assert grokked == [None, None, 300, 300]
    # the default is the paper's criterion, test-ID alone
    assert quick_config().train.grok_splits == ("test_id",)


# -- slow-gradient filters ------------------------------------------------------------------
def _grads(model, values):
    for p, v in zip(model.parameters(), values):
        p.grad = v.clone()


def test_grokfast_ema_and_window_filters():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    seq = [[torch.randn_like(p) for p in model.parameters()] for _ in range(5)]
    ema = GradientFilter(model, "ema", alpha=0.9, lamb=2.0, window=3)
    win = GradientFilter(model, "window", alpha=0.9, lamb=2.0, window=3)
    h = None
    for t, g in enumerate(seq):
        h = [x.clone() for x in g] if h is None else [0.9 * a + 0.1 * b for a, b in zip(h, g)]
        _grads(model, g)
        ema.apply()
        for p, gi, hi in zip(model.parameters(), g, h):
            torch.testing.assert_close(p.grad, gi + 2.0 * hi)
        _grads(model, g)
        win.apply()
        recent = seq[max(0, t - 2) : t + 1]
        for i, (p, gi) in enumerate(zip(model.parameters(), g)):
            mean = torch.stack([r[i] for r in recent]).mean(0)
            torch.testing.assert_close(p.grad, gi + 2.0 * mean)


# -- configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, overrides, match",
    [
        ("no-such-preset", [], "unknown config"),
        ("composition-tiny", ["train.lr=-1"], "train.lr"),
        ("composition-tiny", ["train.nope=1"], "train.nope"),
        ("composition-tiny", ["lr=1"], "must start with data., model. or train."),
        ("composition-tiny", ["train.answer_only_unembed=true", "train.loss_on_eos=true"], "train.answer_only_unembed"),
        ("composition-tiny", ["train.precision=fp16", "train.device=cpu"], "train.precision"),
        ("composition-tiny", ["train.optimizer=sgd"], "train.optimizer"),
        ("composition-tiny", ["train.muon_ns_steps=0"], "train.muon_ns_steps"),
        ("composition-tiny", ["train.muon_momentum=1"], "train.muon_momentum"),
        ("composition-tiny", ["train.label_smoothing=1"], "train.label_smoothing"),
        ("composition-tiny", ["train.grok_splits=test_id,tset_ood"], "train.grok_splits[1]"),
        ("composition-tiny", ["train.grok_splits="], "train.grok_splits is empty"),
        ("composition-tiny", ["train.atomic_fraction=1"], "train.atomic_fraction"),
        ("composition-tiny", ["train.atomic_fraction=0.001"], "asks for 0 atomic facts per batch of 256"),
        ("composition-tiny", ["train.atomic_fraction=0.99", "train.batch_size=2000"], "asks for 1980 atomic facts"),
    ],
)
def test_bad_run_config_is_one_line(name, overrides, match, tmp_path):
    with pytest.raises(ConfigError) as err:
        cfg = load_run_config(name, overrides)
        Trainer(cfg, tmp_path)
    assert "\n" not in str(err.value)
    if match:
        assert match in str(err.value)


def test_yaml_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: mine\ndata: composition-tiny\nmodel: {n_layers: 2, d_model: 32, n_heads: 2}\ntrain: {lr: 0.002}\n")
    cfg = load_run_config(path, ["train.max_steps=7"])
    assert (cfg.name, cfg.model.n_layers, cfg.train.lr, cfg.train.max_steps) == ("mine", 2, 0.002, 7)
    path.write_text("train: {lr: [unclosed\n")
    with pytest.raises(ConfigError, match="run.yaml:"):
        load_run_config(path)


def test_train_or_resume_trains_then_continues_and_refuses_another_config(tmp_path, one_line):
    from interp.train import train_or_resume

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
    from interp.train import train_or_resume

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
    assert {k: v for k, v in again.metrics.items() if k != "seconds"} == {k: v for k, v in whole.metrics.items() if k != "seconds"}
