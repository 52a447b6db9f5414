"""The looped, k-hop-depth and double-descent experiments: the comparisons they claim, and their analysis."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from experiments import EXPERIMENTS, SCALES, plan_experiment
from experiments.depth import loop_depth
from interp.data import depth_test, heldout_chains, make_batch
from interp.models import build_model, with_loops
from interp.runs import load_checkpoint
from interp.train import load_run_config, train
from interp.train.objective import accuracy


def _params(cfg) -> int:
    return sum(p.numel() for p in build_model(cfg.model, 50, 12, device="cpu").parameters())


@pytest.mark.parametrize("scale", SCALES)
def test_looped_compares_equal_compute_and_equal_parameters_on_one_graph(scale):
    plan = {t.name: t.config for t in plan_experiment("looped", scale).trials}
    assert len({repr(c.data) for c in plan.values()}) == 1  # the same graph
    standard, shared, one, atomic = plan["standard"], plan["shared"], plan["looped-1x4"], plan["looped-1x4-atomic1"]
    # equal compute: four applied blocks each
    assert {c.model.n_layers for c in (standard, shared, one, atomic)} == {4}
    assert (standard.model.n_stack, shared.model.n_stack, one.model.n_stack) == (4, 2, 1)
    assert _params(standard) > _params(shared) > _params(one)
    # the atomic-loops trial is the looped one with its atomic facts at one loop, and only there
    assert atomic == dataclasses.replace(one, name=atomic.name, train=dataclasses.replace(one.train, atomic_loops=1))
    assert [n for n, c in plan.items() if c.train.atomic_loops is not None] == ["looped-1x4-atomic1"]
    if scale == "small":  # equal parameters: four distinct blocks, looped four times
        four = plan["looped-4x4"]
        assert four.model.n_stack == 4 and _params(four) == _params(standard)
    assert all(c.train.stop_after_grok is False for c in plan.values())
    # apart from the architecture (and the atomic loops) the trials are the same run
    dicts = [
        dataclasses.replace(
            c,
            name="x",
            model=dataclasses.replace(c.model, n_layers=1, loops=1, share_layers=False),
            train=dataclasses.replace(c.train, atomic_loops=None),
        )
        for c in plan.values()
    ]
    assert all(d == dicts[0] for d in dicts)


@pytest.mark.parametrize("scale", SCALES)
def test_k_hop_depth_trains_shallow_and_tests_deeper(scale):
    plan = plan_experiment("k-hop-depth", scale)
    assert {t.config.model.n_loops for t in plan.trials} >= {1, 4}
    for t in plan.trials:
        data = t.config.data
        assert data.min_hops == 2 and data.test_hops > data.n_hops
        assert t.config.model.n_ctx > data.test_hops + 3  # positions for deeper chains than the test split


def test_depth_extrapolation_sets_a_looped_model_against_a_standard_one_on_the_same_data():
    plan = plan_experiment("depth-extrapolation")
    trials = {t.name: t.config for t in plan.trials}
    looped, standard = trials["looped"], trials["standard"]
    assert looped.data == standard.data and looped.data.n_hops == 4 and looped.data.test_hops == 6
    assert looped.model.n_loops >= 8 > standard.model.n_loops == 1 and looped.model.n_stack == 1
    assert looped.train.loop_sampling == "poisson" and trials["looped-curriculum"].train.curriculum
    assert 8 in looped.train.eval_depths and 8 in standard.train.eval_depths
    assert looped.model.positions == standard.model.positions == "rotary"


def test_double_descent_sweeps_only_the_width():
    plan = plan_experiment("double-descent")
    widths = [t.values["d_model"] for t in plan.trials]
    assert widths == sorted(widths) and len(widths) >= 5 and widths[-1] >= 16 * widths[0]
    cfgs = [
        dataclasses.replace(t.config, name="x", model=dataclasses.replace(t.config.model, d_model=4))
        for t in plan.trials
    ]
    assert all(c == cfgs[0] for c in cfgs) and cfgs[0].model.d_mlp is None  # the MLP scales with the width


def test_new_experiments_are_registered_with_their_analysis():
    for name in ("looped", "k-hop-depth", "depth-extrapolation"):
        assert EXPERIMENTS[name].analysis is loop_depth
    assert EXPERIMENTS["double-descent"].summary.x == "model.d_model"


def test_loop_depth_scores_more_loops_and_deeper_chains(tmp_path):
    """The analysis on a briefly trained looped k-hop model: every depth the model has positions for."""
    threads = torch.get_num_threads()
    try:
        cfg = load_run_config(
            "khop-depth-tiny-looped",
            [
                "data.n_entities=40",
                "data.n_relations=10",
                "data.out_degree=4",
                "data.ood_fraction=0.3",
                "data.phi=2",
                "data.probe_size=60",
                "model.n_ctx=9",
                "model.n_layers=2",
                "model.loops=2",
                "model.d_model=32",
                "model.n_heads=2",
                "train.max_steps=20",
                "train.eval_every=10",
                "train.checkpoint_every=10",
                "train.batch_size=64",
                "train.warmup_steps=5",
                "train.progress=false",
                "train.tensorboard=false",
                "train.threads=1",
            ],
        )
        train(cfg, tmp_path / "run")
        out = loop_depth(tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    # n_ctx 9: chains of up to 6 hops; test_hops 4, so depths 5 and 6, at 2 and 4 loops
    assert set(out) == (
        {"test_id_T4", "test_ood_T4"}
        | {f"held_d{d}{t}" for d in (2, 3) for t in ("", "_T4")}
        | {f"{s}_d{d}{t}" for s in ("id", "ood") for d in (5, 6) for t in ("", "_T4")}
    )
    run = load_checkpoint(tmp_path / "run", device="cpu")
    deeper = with_loops(run.model, 4)
    assert out["test_ood_T4"] == pytest.approx(accuracy(deeper, run.dataset.batch("test_ood")))
    sets = depth_test(run.dataset, 6, seed=cfg.data.seed)
    assert out["id_d6"] == pytest.approx(accuracy(run.model, make_batch(sets["id"], run.dataset.vocab)))
    held = heldout_chains(run.dataset, 3, seed=cfg.data.seed)
    assert out["held_d3"] == pytest.approx(accuracy(run.model, make_batch(held, run.dataset.vocab)))
    assert out["ood_d5_T4"] == pytest.approx(
        accuracy(deeper, make_batch(depth_test(run.dataset, 5)["ood"], run.dataset.vocab))
    )
    assert all(v is None or 0.0 <= v <= 1.0 for v in out.values())


@pytest.mark.parametrize(
    "preset, trial", [("composition-tiny-shared-ood", "shared"), ("composition-tiny-looped-ood", "looped-1x4")]
)
def test_ood_presets_are_the_looped_experiments_trials(preset, trial):
    """The presets RESULTS.md reports are the tiny looped experiment's trials, run on their own."""
    from interp.train.presets import presets

    cfg = presets()[preset]
    planned = {t.name: t.config for t in plan_experiment("looped", "tiny").trials}[trial]
    same_run = dataclasses.replace(
        planned,
        name=cfg.name,
        train=dataclasses.replace(
            planned.train,
            threads=cfg.train.threads,
            progress=cfg.train.progress,
            tensorboard=cfg.train.tensorboard,
            stop_after_grok=cfg.train.stop_after_grok,
            grok_splits=cfg.train.grok_splits,
        ),
    )
    assert cfg.data == planned.data and cfg == same_run
