"""The trainer: it really groks, its losses, batch order, grokking criterion, filters and configs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from interp.data import generate, load_dataset
from interp.errors import ConfigError
from interp.models import build_model
from interp.runs import latest_checkpoint, load_checkpoint, read_metrics
from interp.train import RunConfig, Trainer, answer_logits, batch_loss, load_run_config
from interp.train.grokfast import GradientFilter

from ..tiny import quick_config

SPLITS = ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")


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
    assert out.stdout.split() == ["interp.train.checkpoint", "interp.train.config", "interp.train.presets"]
    import interp.runs
    import interp.train

    for name in ("LoadedRun", "load_checkpoint", "iter_checkpoints", "read_metrics", "stored_config"):
        assert getattr(interp.train, name) is getattr(interp.runs, name)


def test_grokking_needs_every_grok_split(tmp_path, monkeypatch):
    """With grok_splits (test_id, test_ood) the grokking step is the first evaluation where both pass."""
    trainer = Trainer(quick_config("train.grok_splits=test_id,test_ood", "train.tensorboard=false"), tmp_path)
    assert trainer.config.train.grok_splits == ("test_id", "test_ood")
    scores = iter(
        [
            {"test_id": 0.995, "test_ood": 0.40},  # test-ID grokked, OOD not: not yet
            {"test_id": 0.999, "test_ood": 0.985},  # OOD just under the 0.99 threshold
            {"test_id": 0.992, "test_ood": 0.991},  # both: the grokking step
            {"test_id": 0.500, "test_ood": 0.500},  # a later drop does not undo it
        ]
    )
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
    path.write_text(
        "name: mine\ndata: composition-tiny\nmodel: {n_layers: 2, d_model: 32, n_heads: 2}\ntrain: {lr: 0.002}\n"
    )
    cfg = load_run_config(path, ["train.max_steps=7"])
    assert (cfg.name, cfg.model.n_layers, cfg.train.lr, cfg.train.max_steps) == ("mine", 2, 0.002, 7)
    path.write_text("train: {lr: [unclosed\n")
    with pytest.raises(ConfigError, match="run.yaml:"):
        load_run_config(path)
