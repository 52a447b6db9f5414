"""Depth training: random loop counts per batch, the depth curriculum, position shifts and the
depth scores of every evaluation (interp.train.depth, interp.train.depth_eval)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp.errors import ConfigError
from interp.models import loop_accuracy, with_loops
from interp.train import load_run_config
from interp.train.checkpoint import list_checkpoints, load_tensors, read_state
from interp.train.start import resume
from interp.train.trainer import Trainer

SMALL = [
    "model.n_layers=4",
    "model.loops=4",
    "model.d_model=32",
    "model.n_heads=2",
    "train.batch_size=64",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.checkpoint_dense_until=100",
    "train.stop_after_grok=false",
    "train.progress=false",
    "train.tensorboard=false",
    "train.threads=1",
    "train.warmup_steps=2",
    "data.probe_size=100",
]


def depth_config(*extra: str):
    """The looped depth preset, shrunk: a 1-block stack of width 32 built for 4 loops, trained on 2-4 hops,
    every row at its Poisson loop count (the preset's atomic facts at one loop set apart)."""
    return load_run_config("khop-depth8-looped", [*SMALL, "train.atomic_loops=none", *extra])


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """A depth-curriculum trainer (stage 2 at the start)."""
    return Trainer(depth_config("train.max_steps=4", "train.curriculum=true"), tmp_path_factory.mktemp("depth") / "run")


def test_atomic_loops_keep_the_atomic_facts_at_their_count_beside_poisson_loops(tmp_path):
    trainer = Trainer(depth_config("train.atomic_loops=1", "train.max_steps=1"), tmp_path / "run")
    hops = trainer.schedule.hops
    for step in range(50):
        rows = trainer.batch_indices(step)
        loops = trainer.schedule.loops(step, rows)
        assert bool((loops[hops[rows] == 1] == 1).all()) and bool(
            (loops[hops[rows] > 1] >= hops[rows][hops[rows] > 1]).all()
        )


def test_each_row_runs_at_least_its_hops_and_the_batch_count_is_a_clipped_poisson(trainer):
    hops, counts = trainer.schedule.hops, []
    for step in range(400):
        rows = trainer.batch_indices(step)
        loops = trainer.schedule.loops(step, rows)
        assert bool((loops >= hops[rows]).all()) and bool((loops >= 2).all()) and bool((loops <= 4).all())
        assert torch.equal(loops, trainer.schedule.loops(step, rows))  # a function of the step
        drawn = loops[hops[rows] == 1]  # the atomic facts run exactly the batch's count
        assert len(set(drawn.tolist())) == 1
        counts.append(int(drawn[0]))
    poisson = np.random.default_rng(0).poisson(4.0, 200_000).clip(2, 4)
    for value in (2, 3, 4):
        assert abs(counts.count(value) / len(counts) - float((poisson == value).mean())) < 0.08


def test_the_loss_is_the_mean_over_rows_each_at_its_own_loops(tmp_path):
    trainer = Trainer(depth_config("train.max_steps=1"), tmp_path / "run")
    step = next(s for s in range(100) if len(set(trainer.batch_for(s)[1].tolist())) > 2)
    batch, loops, shift = trainer.batch_for(step)
    assert shift == 0
    total = torch.zeros(())
    with torch.no_grad():
        models = {t: with_loops(trainer.model, t).eval() for t in set(loops.tolist())}
        for i in range(len(batch)):  # row by row, each through a copy built for its loop count
            logits = models[int(loops[i])](input_ids=batch.tokens[i : i + 1]).logits[0, batch.answer_pos[i]]
            total += F.cross_entropy(logits[None], batch.answer[i : i + 1], reduction="sum")
    trainer.model.train()
    torch.testing.assert_close(trainer._loss(batch, loops), total / len(batch), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="loops="):
        trainer._loss(batch, None)


def test_the_curriculum_trains_only_its_depths(trainer):
    assert trainer.schedule.stage.depth == 2
    for step in range(20):
        assert int(trainer.schedule.hops[trainer.batch_indices(step)].max()) <= 2
    assert {1, 2} <= set(trainer.schedule.hops[trainer.schedule.rows].tolist()) and len(trainer.schedule.rows) < len(
        trainer.schedule.hops
    )


def test_every_evaluation_scores_each_depth_other_loops_and_halting(trainer):
    scores = trainer.evaluate()
    for key in ("held_d2", "held_d4", "id_d8", "test_id_halt", "test_id_halt_iter", "id_d8_halt", "held_d3_halt"):
        assert key in scores
    assert 2 <= scores["test_id_halt_iter"] <= 16
    cfg = depth_config("train.eval_loops=3,6")
    scored = Trainer(cfg, trainer.run_dir.parent / "loops", dataset=trainer.dataset, model=trainer.model).evaluate()
    ds = trainer.dataset
    expected = loop_accuracy(trainer.model, ds.examples("test_id"), ds.vocab, [3, 6])
    assert scored["test_id_T3"] == pytest.approx(expected[3]) and scored["test_id_T6"] == pytest.approx(expected[6])
    assert scored["test_id"] == pytest.approx(loop_accuracy(trainer.model, ds.examples("test_id"), ds.vocab, [4])[4])


def test_the_curriculum_climbs_and_a_resumed_run_is_bit_exact(tmp_path):
    config = depth_config(
        "train.max_steps=8", "train.curriculum=true", "train.curriculum_threshold=0.001", "train.eval_halting=false"
    )
    straight = Trainer(config, tmp_path / "straight").run()
    rows = metrics(tmp_path / "straight")
    depths = [r["curriculum_depth"] for r in rows]
    held = [r["held_d2"] for r in rows]
    assert held[0] < 0.001 <= held[1] and depths[:2] == [2, 3] and depths == sorted(depths)  # it rose at step 4
    Trainer(config, tmp_path / "cut").run(max_steps=4)  # stopped right after the rise
    assert [int(p.name.split("_")[-1]) for p in list_checkpoints(tmp_path / "cut")][-1] == 4
    resumed = resume(tmp_path / "cut")
    assert resumed.step == straight.step == 8
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "straight")
    last = [list_checkpoints(tmp_path / run)[-1] for run in ("cut", "straight")]
    final = [load_tensors(path, "model.safetensors", read_state(path)) for path in last]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[1])


def metrics(run_dir) -> list[dict]:
    """A run's metrics rows without their wall times."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_position_shift_moves_the_positions_of_a_batch(tmp_path):
    config = load_run_config(
        "khop-depth-tiny",
        [*SMALL[2:], "model.n_layers=2", "model.loops=1", "train.position_shift=4", "train.max_steps=1"],
    )
    trainer = Trainer(config, tmp_path / "run")
    shifts = {trainer.schedule.shift(step) for step in range(200)}
    assert shifts == set(range(5))
    batch, loops, _ = trainer.batch_for(0)
    assert loops is None
    with torch.no_grad():
        width = batch.tokens.shape[1]
        position_ids = torch.arange(3, 3 + width)[None].expand_as(batch.tokens)
        logits = trainer.model.eval()(input_ids=batch.tokens, position_ids=position_ids).logits
        expected = F.cross_entropy(logits[torch.arange(len(batch)), batch.answer_pos], batch.answer)
        trainer.model.train()
        torch.testing.assert_close(trainer._loss(batch, None, 3), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(trainer._loss(batch, None, 0), expected)


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("khop-depth8-standard", ["train.loop_sampling=poisson"], "needs a looped model"),
        ("khop-depth8-looped", ["model.loops=2", "model.n_layers=2"], "set model.loops >= 4"),
        ("khop-depth8-looped", ["train.loop_min=9"], "more than model.loops"),
        ("composition-tiny", ["train.curriculum=true"], "needs k-hop composition data"),
        ("khop-depth8-looped", ["train.eval_depths=9"], "model.n_ctx >= 12"),
        ("khop-depth8-looped", ["train.eval_depths=3"], "train.eval_depths"),
        ("khop-depth8-looped", ["train.halt_kl=0"], "train.halt_kl"),
    ],
)
def test_depth_settings_the_run_cannot_carry_are_one_line_errors(preset, overrides, message, one_line):
    with pytest.raises(ConfigError) as err:
        load_run_config(preset, overrides)
    assert message in one_line(err.value)


def test_a_shift_past_the_positions_is_a_one_line_error(tmp_path, one_line):
    config = load_run_config(
        "khop-depth-tiny", [*SMALL[2:], "model.n_layers=2", "model.loops=1", "train.position_shift=9"]
    )
    with pytest.raises(ConfigError) as err:
        Trainer(config, tmp_path / "run")
    assert "set model.n_ctx >= 15" in one_line(err.value)
