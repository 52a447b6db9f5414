"""What an experiment is: a grid of trials on a base run preset per scale, and the finding it tests.

A :class:`Trial` is a name and ``section.key=value`` overrides; a :class:`Scale` the base preset,
the overrides every trial shares and the trials; an :class:`Experiment` its scales, the swept
config fields, the summary plot (:class:`SummaryPlot`) and an optional analysis run on each
trial's folder. The named experiments are :mod:`experiments.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a name (its folder under ``OUT/trials/``) and its overrides."""

    name: str
    overrides: tuple[str, ...] = ()
    preset: str | None = None  # None: the scale's base preset


@dataclass(frozen=True)
class Scale:
    """An experiment at one size: the base preset, overrides shared by all trials, the grid."""

    preset: str
    overrides: tuple[str, ...]
    trials: tuple[Trial, ...]
    minutes: float  # rough wall time on 2 CPU cores, for the listing


@dataclass(frozen=True)
class SummaryPlot:
    """The summary figure: ``line`` plots columns ``ys`` against column ``x``; ``bar`` per trial."""

    kind: Literal["line", "bar"]
    ys: tuple[str, ...]
    x: str | None = None
    logx: bool = False
    title: str = ""


@dataclass(frozen=True)
class Experiment:
    """A named experiment: what it tests, the swept config fields, the plot, its scales."""

    name: str
    description: str
    finding: str  # the paper's result this experiment tests
    columns: tuple[str, ...]  # dotted RunConfig paths of the swept values (data.phi, ...)
    summary: SummaryPlot
    scales: dict[str, Scale] = field(default_factory=dict)
    # run on each trial's folder after training; its numbers join the trial's row
    analysis: Callable[[Path], dict[str, Any]] | None = None


__all__ = ["Experiment", "Scale", "SummaryPlot", "Trial"]
