"""Micro experiments for the runner tests: trials that train for seconds, one made to fail."""

from __future__ import annotations

import pytest

from experiments import EXPERIMENTS, Experiment, Scale, SummaryPlot, Trial

# a 20-entity graph and a 2-layer, 32-wide model: 40 steps take well under a second
MICRO = (
    "data.n_entities=20",
    "data.phi=2",
    "data.probe_size=100",
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=2",
    "train.max_steps=40",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "train.batch_size=64",
    "train.warmup_steps=5",
)


def micro_experiment(*, failing: bool = True) -> Experiment:
    """Two good trials (weight decay 0.1 and 1.0) and, if ``failing``, two more that can fail.

    ``broken`` has a valid config (``train.device`` is only resolved when training starts),
    but no machine has a 100th CUDA device, so its task raises. ``dying`` is a good trial
    that a test's task body kills (``os._exit``) to check that a dead worker loses nothing else.
    """
    trials = [Trial("wd-0.1", ("train.weight_decay=0.1",)), Trial("wd-1.0", ("train.weight_decay=1.0",))]
    if failing:
        trials.append(Trial("broken", ("train.weight_decay=0.5", "train.device=cuda:99")))
        trials.append(Trial("dying", ("train.weight_decay=0.3",)))
    return Experiment(
        name="micro",
        description="40-step trials on a 20-entity graph (and trials made to fail)",
        finding="none: a test of the runner",
        columns=("train.weight_decay",),
        summary=SummaryPlot("line", ("grokked_step", "memorized_step"), x="train.weight_decay", logx=True),
        scales={"tiny": Scale("composition-tiny", MICRO, tuple(trials), minutes=0.1)},
    )


@pytest.fixture
def micro(monkeypatch):
    """The micro experiment, registered as ``micro`` for the command line while the test runs."""
    exp = micro_experiment()
    monkeypatch.setitem(EXPERIMENTS, "micro", exp)
    return exp
