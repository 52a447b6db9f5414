"""Planning an experiment: every trial resolved into a validated run config before anything runs.

:func:`plan_experiment` resolves each trial of an experiment (:mod:`experiments.registry`) at
one scale into a :class:`~interp.train.RunConfig`, so a typo fails at once with one line naming
the trial and the field. A trial's config is built in this order, later items winning:

1. the scale's base preset (or the trial's own preset, for experiments across tasks);
2. the scale's experiment-wide overrides (the fixed ``train.max_steps`` of a sweep: with
   the cosine schedule the grokking step depends on it, so it never varies within a sweep);
3. the runner's defaults (``train.threads=1``, no progress bar, no TensorBoard);
4. the user's ``--set`` overrides (which may not touch a swept field);
5. the trial's own overrides, and its name ``EXPERIMENT-TRIAL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from experiments.registry import get_experiment
from experiments.spec import Experiment
from interp.errors import ConfigError
from interp.train import RunConfig, load_run_config

# Every trial trains on one CPU thread (Ray gives each task one CPU), quietly: the driver
# shows the progress of the sweep instead of one bar per trial.
RUNNER_DEFAULTS = ("train.threads=1", "train.progress=false", "train.tensorboard=false")


@dataclass(frozen=True)
class PlannedTrial:
    """A trial resolved into its full config, with the values of the swept columns."""

    name: str
    config: RunConfig
    values: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """An experiment at one scale, every trial validated."""

    experiment: Experiment
    scale: str
    trials: tuple[PlannedTrial, ...]

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name


def column_name(path: str) -> str:
    """The results-table header of a swept config path: its last part (``data.phi`` -> ``phi``)."""
    return path.rsplit(".", 1)[-1]


def config_value(cfg: RunConfig, path: str) -> Any:
    """The value at a dotted path of a run config (``model.n_layers``)."""
    obj: Any = cfg
    for part in path.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{path!r} is not a run config field (for example data.phi or model.n_layers)")
        obj = getattr(obj, part)
    return obj


def _keys(overrides: tuple[str, ...] | list[str]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides}


def plan_experiment(
    experiment: str | Experiment, scale: str = "tiny", overrides: list[str] | tuple[str, ...] = ()
) -> Plan:
    """Resolve and validate every trial of ``experiment`` at ``scale`` (one-line ConfigError on the first bad one)."""
    exp = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    if scale not in exp.scales:
        raise ConfigError(f"unknown scale {scale!r} for experiment {exp.name}; use one of: {', '.join(exp.scales)}")
    sc = exp.scales[scale]
    overrides = tuple(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like section.key=value (for example train.max_steps=2000)")
    swept = set().union(*(_keys(t.overrides) for t in sc.trials))
    clash = sorted(_keys(overrides) & swept)
    if clash:
        raise ConfigError(
            f"--set {clash[0]} changes what experiment {exp.name} sweeps; drop it or define a new experiment"
        )
    names = [t.name for t in sc.trials]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"experiment {exp.name} at scale {scale} needs at least one trial and distinct trial names")
    planned = []
    for trial in sc.trials:
        try:
            cfg = load_run_config(
                trial.preset or sc.preset,
                [
                    *sc.overrides,
                    *RUNNER_DEFAULTS,
                    *overrides,
                    *trial.overrides,
                    f"name={exp.name}-{trial.name}",
                ],
            )
            values = {column_name(c): config_value(cfg, c) for c in exp.columns}
        except ConfigError as err:
            raise ConfigError(f"experiment {exp.name}, trial {trial.name}: {err}") from None
        planned.append(PlannedTrial(trial.name, cfg, values))
    return Plan(exp, scale, tuple(planned))


__all__ = ["RUNNER_DEFAULTS", "Plan", "PlannedTrial", "column_name", "config_value", "plan_experiment"]
