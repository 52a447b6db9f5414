"""Named, configured experiments that test the paper's findings, each one command.

    grokscope experiments                                  # list them
    grokscope experiment phi-sweep                         # tiny scale, local Ray, results/phi-sweep-tiny
    grokscope experiment weight-decay --scale small --address 10.0.0.5:6379 --set train.max_steps=12000

An experiment (``spec.py``; the named ones in ``registry.py``) is a base run preset plus a grid
of trials, each a name and ``section.key=value`` overrides; every trial is validated before
anything starts (``plan.py``). The runner (``runner.py``) trains each trial as one Ray task
into ``OUT/trials/TRIAL/`` and gathers one row per trial; ``results.py`` writes ``OUT/results.csv``, ``OUT/results.md``
and ``OUT/figures/`` (accuracy curves of every trial, and the experiment's summary plot).
"""

from experiments.plan import RUNNER_DEFAULTS, Plan, PlannedTrial, plan_experiment
from experiments.registry import EXPERIMENTS, SCALES, get_experiment
from experiments.runner import ExperimentError, SweepResult, run_experiment
from experiments.spec import Experiment, Scale, SummaryPlot, Trial

__all__ = [
    "EXPERIMENTS",
    "RUNNER_DEFAULTS",
    "SCALES",
    "Experiment",
    "ExperimentError",
    "Plan",
    "PlannedTrial",
    "Scale",
    "SummaryPlot",
    "SweepResult",
    "Trial",
    "get_experiment",
    "plan_experiment",
    "run_experiment",
]
