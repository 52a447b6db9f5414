"""The experiment registry: every named experiment at every scale is a set of valid, distinct trials."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from experiments import EXPERIMENTS, SCALES, plan_experiment
from experiments.cli import app
from interp.errors import ConfigError
from interp.train import RunConfig

runner = CliRunner()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_plans_valid_distinct_trials(name, scale):
    plan = plan_experiment(name, scale)
    exp = EXPERIMENTS[name]
    assert plan.name == name and len(plan.trials) >= 2
    assert len({t.name for t in plan.trials}) == len(plan.trials)
    for t in plan.trials:
        cfg = t.config
        assert isinstance(cfg, RunConfig)
        assert RunConfig.from_dict(cfg.to_dict()) == cfg  # what a checkpoint stores rebuilds it
        assert cfg.name == f"{name}-{t.name}"
        # the runner's defaults: one quiet thread per trial
        assert cfg.train.threads == 1 and cfg.train.progress is False and cfg.train.tensorboard is False
        assert set(t.values) == {c.rsplit(".", 1)[-1] for c in exp.columns}
    # the sweep varies: no two trials have the same swept values
    assert len({tuple(sorted(t.values.items())) for t in plan.trials}) == len(plan.trials)
    # one training budget per task within a sweep (with the cosine schedule it sets the grok step)
    budgets = {}
    for t in plan.trials:
        budgets.setdefault(t.config.data.task, set()).add(t.config.train.max_steps)
    assert all(len(b) == 1 for b in budgets.values()), budgets


def test_grids_sweep_the_quantity_the_paper_varies():
    phis = [t.values["phi"] for t in plan_experiment("phi-sweep").trials]
    assert phis == sorted(phis) and len(set(phis)) >= 3
    wds = [t.config.train.weight_decay for t in plan_experiment("weight-decay").trials]
    assert wds == sorted(wds) and len(set(wds)) >= 3
    shared = {t.name: t.config for t in plan_experiment("sharing").trials}
    assert shared["shared"].model.share_layers and not shared["unshared"].model.share_layers
    # apart from sharing (and the name) the two sharing trials are the same run, trained past grokking
    a, b = shared["shared"].to_dict(), shared["unshared"].to_dict()
    a["model"].pop("share_layers"), b["model"].pop("share_layers"), a.pop("name"), b.pop("name")
    assert a == b and shared["shared"].train.stop_after_grok is False
    tasks = {t.config.data.task for t in plan_experiment("comparison").trials}
    assert tasks == {"composition", "comparison"}
    sizes = {(t.config.model.n_layers, t.config.model.d_model) for t in plan_experiment("depth-width").trials}
    assert len({n for n, _ in sizes}) >= 2 and len({d for _, d in sizes}) >= 2


def test_user_overrides_reach_every_trial():
    plan = plan_experiment("weight-decay", "tiny", ["train.max_steps=1234", "train.seed=7"])
    assert {t.config.train.max_steps for t in plan.trials} == {1234}
    assert {t.config.train.seed for t in plan.trials} == {7}


@pytest.mark.parametrize(
    ("name", "scale", "overrides", "expect"),
    [
        ("no-such-experiment", "tiny", [], "grokscope experiments"),
        ("phi-sweep", "huge", [], "tiny, small"),
        ("phi-sweep", "tiny", ["train.no_such_field=1"], "trial phi-3.6"),
        ("phi-sweep", "tiny", ["train.max_steps=0"], "train.max_steps"),
        ("phi-sweep", "tiny", ["data.phi=5"], "drop it"),  # the swept field
        ("phi-sweep", "tiny", ["train.max_steps"], "section.key=value"),
        ("weight-decay", "tiny", ["lr=1"], "data., model. or train."),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(one_line, name, scale, overrides, expect):
    with pytest.raises(ConfigError) as err:
        plan_experiment(name, scale, overrides)
    assert expect in one_line(err.value)


def test_cli_lists_experiments_and_rejects_unknown_ones(tmp_path):
    out = runner.invoke(app, ["experiments"])
    assert out.exit_code == 0, out.output
    for name, exp in EXPERIMENTS.items():
        assert name in out.output and exp.finding in out.output
    bad = runner.invoke(app, ["experiment", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert (
        bad.output.strip().startswith("error: unknown experiment 'nope'") and len(bad.output.strip().splitlines()) == 1
    )
    assert not (tmp_path / "x").exists()


def test_every_tiny_trial_builds_and_takes_a_training_step(tmp_path):
    """Beyond validation: each trial's data and model build, and one optimiser step gives a finite loss."""
    import torch

    from interp.train.trainer import Trainer

    threads = torch.get_num_threads()  # the trials set one thread; give the session its own back
    seen = set()
    try:
        for name in EXPERIMENTS:
            for t in plan_experiment(name, "tiny").trials:
                key = repr((t.config.data, t.config.model, t.config.train.atomic_loops))
                if key in seen:  # the optimiser settings need no build to be checked
                    continue
                seen.add(key)
                trainer = Trainer(t.config, tmp_path / f"{name}-{t.name}")
                n_params = sum(p.numel() for p in trainer.model.parameters())
                loss = float(trainer.train_step(*trainer.batch_for(0)))
                assert 0 < loss < 100, (name, t.name, loss)
                if t.config.model.share_layers:  # tied blocks: fewer parameters than the unshared twin
                    twin = Trainer(t.config.with_overrides(["model.share_layers=false"]), tmp_path / "twin")
                    assert n_params < sum(p.numel() for p in twin.model.parameters())
    finally:
        torch.set_num_threads(threads)
    assert len(seen) >= 8
