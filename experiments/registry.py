"""The named experiments: a base run preset per scale, a grid of trials, the finding tested.

An experiment is a list of trials, each a name and ``section.key=value`` overrides on a
base run preset (``composition-tiny`` ...). :func:`plan_experiment` resolves every trial
into a validated :class:`~interp.train.RunConfig` before anything runs, so a typo fails at
once with one line naming the trial and the field.

A trial's config is built in this order, later items winning:

1. the scale's base preset (or the trial's own preset, for experiments across tasks);
2. the scale's experiment-wide overrides (the fixed ``train.max_steps`` of a sweep: with
   the cosine schedule the grokking step depends on it, so it never varies within a sweep);
3. the runner's defaults (``train.threads=1``, no progress bar, no TensorBoard);
4. the user's ``--set`` overrides (which may not touch a swept field);
5. the trial's own overrides, and its name ``EXPERIMENT-TRIAL``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from experiments.analyses import edit_propagation
from experiments.depth import loop_depth
from interp.errors import ConfigError
from interp.train import RunConfig, load_run_config

SCALES = ("tiny", "small")

# Every trial trains on one CPU thread (Ray gives each task one CPU), quietly: the driver
# shows the progress of the sweep instead of one bar per trial.
RUNNER_DEFAULTS = ("train.threads=1", "train.progress=false", "train.tensorboard=false")


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


# ----------------------------------------------------------------------------------------
# the registry
# ----------------------------------------------------------------------------------------
def _grid(key: str, values: list[Any], prefix: str) -> tuple[Trial, ...]:
    return tuple(Trial(f"{prefix}-{v}".lower(), (f"{key}={v}",)) for v in values)


def _depth_width(layers: list[int], widths: list[int]) -> tuple[Trial, ...]:
    return tuple(
        # the MLP scales with the width (4 x d_model), whatever the base preset's d_mlp
        Trial(f"L{n}-d{d}", (f"model.n_layers={n}", f"model.d_model={d}", "model.d_mlp=none"))
        for n in layers for d in widths
    )


_SHARING = (
    Trial("unshared", ("model.share_layers=false",)),
    Trial("shared", ("model.share_layers=true",)),
)

# equal compute (4 applied blocks) and equal parameters (4 distinct blocks) against the standard model
_LOOPED = (
    Trial("standard", ("model.n_layers=4", "model.loops=1", "model.share_layers=false", "train.atomic_loops=none")),
    Trial("shared", ("model.n_layers=4", "model.loops=1", "model.share_layers=true", "train.atomic_loops=none")),
    Trial("looped-1x4", ("model.n_layers=4", "model.loops=4", "model.share_layers=false", "train.atomic_loops=none")),
    Trial("looped-4x4", ("model.n_layers=16", "model.loops=4", "model.share_layers=false", "train.atomic_loops=none")),
)
_LOOPED_ATOMIC = Trial("looped-1x4-atomic1", ("model.n_layers=4", "model.loops=4", "model.share_layers=false",
                                               "train.atomic_loops=1"))
_LOOPED_TINY = (*_LOOPED[:3], _LOOPED_ATOMIC)
_DEPTH_MODELS = (
    Trial("standard", ("model.n_layers=4", "model.loops=1", "train.atomic_loops=none")),
    Trial("looped-1x4", ("model.n_layers=4", "model.loops=4", "train.atomic_loops=none")),
    Trial("looped-2x4", ("model.n_layers=8", "model.loops=4", "train.atomic_loops=none")),
    Trial("looped-1x4-atomic1", ("model.n_layers=4", "model.loops=4", "train.atomic_loops=1")),
)

EXPERIMENTS: dict[str, Experiment] = {
    "phi-sweep": Experiment(
        name="phi-sweep",
        description="Composition at several inferred/atomic ratios phi, training budget fixed.",
        finding="Larger phi (inferred/atomic ratio) groks faster; phi, not the data size, sets the speed.",
        columns=("data.phi",),
        summary=SummaryPlot("line", ("grokked_step", "memorized_step"), x="data.phi", title="steps to grok vs phi"),
        scales={
            # composition-tiny allows phi up to 7.2 (64 two-hop chains per entity)
            "tiny": Scale("composition-tiny", ("train.max_steps=3000",),
                          _grid("data.phi", [3.6, 5.4, 7.2], "phi"), minutes=8),
            "small": Scale("composition-small", ("train.max_steps=8000",),
                           _grid("data.phi", [3.6, 5.4, 7.2, 9.0], "phi"), minutes=40),
        },
    ),
    "comparison": Experiment(
        name="comparison",
        description="Composition and comparison, each with its task's default preset, trained until it groks (the comparison preset until ID and OOD both do); ID and OOD test accuracy.",
        finding="Comparison generalizes both ID and OOD through grokking; composition groks ID but OOD stays near 0.",
        columns=("data.task", "data.phi"),
        summary=SummaryPlot("bar", ("test_id", "test_ood", "best_test_ood"), title="final ID / OOD accuracy per task"),
        scales={
            "tiny": Scale("composition-tiny", (), (
                Trial("composition", (), preset="composition-tiny"),
                Trial("comparison", (), preset="comparison-tiny"),  # trains until OOD groks too
            ), minutes=35),
            "small": Scale("composition-small", (), (
                Trial("composition", (), preset="composition-small"),
                Trial("comparison", (), preset="comparison-small"),
            ), minutes=40),
        },
    ),
    "sharing": Experiment(
        name="sharing",
        description="Composition with and without cross-layer parameter sharing (first half of the blocks "
                    "applied twice), trained to the full budget, not stopped at grokking.",
        finding="Cross-layer sharing unlocks OOD composition, but only after very long training "
                "(paper: phi 12.6, weight decay 0.3, far beyond grokking); unshared OOD stays near 0.",
        columns=("model.share_layers", "model.n_layers"),
        summary=SummaryPlot("bar", ("test_id", "test_ood", "best_test_ood"), title="ID / OOD composition with sharing"),
        scales={
            "tiny": Scale("composition-tiny",
                          ("data.phi=7.2", "train.max_steps=3000", "train.stop_after_grok=false"),
                          _SHARING, minutes=5),
            # the paper's shape: 8 applied layers, the first 4 tied to the last 4; weight decay 0.3
            "small": Scale("composition-small",
                           ("data.phi=9.0", "model.n_layers=8", "train.weight_decay=0.3",
                            "train.max_steps=20000", "train.stop_after_grok=false"),
                           _SHARING, minutes=120),
        },
    ),
    "depth-width": Experiment(
        name="depth-width",
        description="Composition with models of several depths and widths, same data and budget.",
        finding="Larger models converge in fewer steps without changing the picture (ID groks, OOD does not).",
        columns=("model.n_layers", "model.d_model"),
        summary=SummaryPlot("bar", ("grokked_step", "memorized_step"), title="steps to memorize / grok per model"),
        scales={
            "tiny": Scale("composition-tiny", ("train.max_steps=3000",), _depth_width([2, 4], [64, 128]), minutes=8),
            "small": Scale("composition-small", ("train.max_steps=8000",), _depth_width([4, 8], [128, 256]), minutes=90),
        },
    ),
    "weight-decay": Experiment(
        name="weight-decay",
        description="Composition at several weight decays, same data and budget.",
        finding="Larger weight decay groks faster (it favours the efficient generalizing circuit).",
        columns=("train.weight_decay",),
        summary=SummaryPlot("line", ("grokked_step", "memorized_step"), x="train.weight_decay", logx=True,
                            title="steps to grok vs weight decay"),
        scales={
            "tiny": Scale("composition-tiny", ("train.max_steps=3000",),
                          _grid("train.weight_decay", [0.1, 0.3, 1.0], "wd"), minutes=8),
            "small": Scale("composition-small", ("train.max_steps=8000",),
                           _grid("train.weight_decay", [0.1, 0.3, 1.0], "wd"), minutes=30),
        },
    ),
    "complex": Experiment(
        name="complex",
        description="Complex reasoning (paper appendix F): OOD atomic facts untrained, 3% of ID-ID and ID-OOD "
                    "comparisons trained; accuracy per query type (trained ID-ID / ID-OOD comparisons, held-out "
                    "ID-ID and the 150 hard OOD-OOD queries, each by label: lt, eq, gt).",
        finding="A grokked transformer answers the hard OOD-OOD queries near-perfectly (99.3%), where "
                "GPT-4-Turbo (31.3-33.3%) and Gemini-1.5-Pro (11.3-37.3%) stay near chance (33.3%).",
        columns=("data.seed",),  # two graphs drawn with different seeds
        summary=SummaryPlot("bar", ("test_id", "test_ood/lt", "test_ood/eq", "test_ood/gt", "test_ood"),
                            title="ID test and hard OOD queries per label"),
        scales={
            "tiny": Scale("complex-tiny", (), _grid("data.seed", [0, 1], "seed"), minutes=35),
            "small": Scale("complex-small", (), _grid("data.seed", [0, 1], "seed"), minutes=480),
        },
    ),
    "edit-propagation": Experiment(
        name="edit-propagation",
        description="Composition models (standard, cross-layer shared, looped) trained to the full budget, then "
                    "10 ID atomic facts edited each by fine-tuning (without / with a retain KL term) and by a "
                    "ROME rank-one MLP edit: edit accuracy, propagation to the two-hop facts built on the "
                    "edited fact (as first / second hop), locality on unrelated atomic and two-hop facts.",
        finding="Models that re-read a shared memory propagate one edited fact through two-hop compositions "
                "0.71-0.96 of the time; ordinary transformers at most 0.03.",
        columns=("model.share_layers", "model.loops"),
        summary=SummaryPlot("bar", ("finetune_propagation", "finetune_spurious_second", "rome_propagation",
                                    "rome_spurious_second", "rome_locality_atomic"),
                            title="propagation of one edited fact, and its control, per model"),
        scales={
            "tiny": Scale("composition-tiny", ("train.max_steps=3000", "train.stop_after_grok=false"), (
                Trial("standard", ("model.share_layers=false", "model.loops=1")),
                Trial("shared", ("model.share_layers=true", "model.loops=1")),
                Trial("looped", ("model.share_layers=false", "model.loops=4")),
            ), minutes=30),
            "small": Scale("composition-small", ("model.n_layers=4", "train.max_steps=4000",
                                                 "train.stop_after_grok=false"), (
                Trial("standard", ("model.share_layers=false", "model.loops=1")),
                Trial("shared", ("model.share_layers=true", "model.loops=1")),
                Trial("looped", ("model.share_layers=false", "model.loops=4")),
            ), minutes=90),
        },
        analysis=edit_propagation,
    ),
    "looped": Experiment(
        name="looped",
        description="Two-hop composition on one graph (10% OOD facts) with a standard model, cross-layer sharing "
                    "and looped models at equal compute (4 applied blocks: 4 distinct / 2 x 2 / 1 x 4), the looped "
                    "one also with its atomic facts trained at one loop (train.atomic_loops=1); the small scale "
                    "adds equal parameters (4 distinct blocks looped 4 times). Trained past grokking; test-ID and "
                    "test-OOD curves, and the test splits with twice the training loops.",
        finding="Open question (paper section 5): a grokked transformer composes ID but not OOD; cross-layer "
                "sharing lifts OOD only after very long training; looped transformers are reported (2026) to "
                "reach OOD composition through a three-stage grokking.",
        columns=("model.n_layers", "model.loops", "model.share_layers", "train.atomic_loops"),
        summary=SummaryPlot("bar", ("test_id", "test_ood", "best_test_ood", "test_ood_T8"),
                            title="ID / OOD two-hop composition per architecture"),
        scales={
            "tiny": Scale("composition-tiny",
                          ("data.ood_fraction=0.1", "data.phi=6.5", "train.max_steps=15000", "train.eval_every=500",
                           "train.stop_after_grok=false"), _LOOPED_TINY, minutes=50),
            "small": Scale("composition-small",
                           ("train.max_steps=8000", "train.stop_after_grok=false"), (*_LOOPED, _LOOPED_ATOMIC),
                           minutes=360),
        },
        analysis=loop_depth,
    ),
    "k-hop-depth": Experiment(
        name="k-hop-depth",
        description="Composition trained on 2- and 3-hop chains, tested on 4-hop chains (test_id / test_ood) "
                    "and scored on held-out 2- and 3-hop chains (held_d2, held_d3) and 5..7-hop chains (id_d5 ..), "
                    "standard vs looped models (one also with its atomic facts at one loop), looped ones also "
                    "with twice the training loops at inference (.._T8).",
        finding="Looped transformers are reported (2026) to extrapolate from <= 5-hop training to 10 hops by "
                "adding loops at inference; standard transformers do not extrapolate in depth.",
        columns=("model.n_layers", "model.loops", "train.atomic_loops"),
        summary=SummaryPlot("bar", ("held_d3", "test_id", "id_d5", "test_id_T8", "id_d5_T8"),
                            title="ID accuracy at a trained depth (held_d3) and deeper"),
        scales={
            "tiny": Scale("khop-depth-tiny", ("train.stop_after_grok=false",), _DEPTH_MODELS, minutes=60),
            "small": Scale("khop-depth-tiny",
                           ("data.n_entities=200", "data.n_relations=20", "data.out_degree=10",
                            "train.max_steps=8000", "train.stop_after_grok=false"), _DEPTH_MODELS, minutes=240),
        },
        analysis=loop_depth,
    ),
    "double-descent": Experiment(
        name="double-descent",
        description="Composition on one graph with models of widths 16 .. 256 (4 layers, same budget, trained "
                    "past grokking): test accuracy against width (summary) and against training steps (curves).",
        finding="Test error falls, rises near the width that just fits the training set, and falls again "
                "(model-wise double descent); against steps, grokking is epoch-wise late generalisation.",
        columns=("model.d_model",),
        summary=SummaryPlot("line", ("train", "test_id", "test_ood"), x="model.d_model", logx=True,
                            title="final accuracy vs width (test error = 1 - accuracy)"),
        scales={
            "tiny": Scale("composition-tiny", ("train.max_steps=3000", "train.stop_after_grok=false", "model.d_mlp=none"),
                          _grid("model.d_model", [16, 32, 64, 128, 256], "d"), minutes=45),
            "small": Scale("composition-small", ("train.max_steps=6000", "train.stop_after_grok=false", "model.d_mlp=none"),
                           _grid("model.d_model", [32, 64, 128, 256, 512], "d"), minutes=240),
        },
    ),
}
"""The named experiments; ``grokscope experiment NAME`` runs one."""


def get_experiment(name: str) -> Experiment:
    """The named experiment; an unknown ``name`` is a one-line ``ConfigError`` listing the known ones."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)} (list them: grokscope experiments)")
    return EXPERIMENTS[name]


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
        raise ConfigError(f"--set {clash[0]} changes what experiment {exp.name} sweeps; drop it or define a new experiment")
    names = [t.name for t in sc.trials]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"experiment {exp.name} at scale {scale} needs at least one trial and distinct trial names")
    planned = []
    for trial in sc.trials:
        try:
            cfg = load_run_config(trial.preset or sc.preset, [
                *sc.overrides, *RUNNER_DEFAULTS, *overrides, *trial.overrides, f"name={exp.name}-{trial.name}",
            ])
            values = {column_name(c): config_value(cfg, c) for c in exp.columns}
        except ConfigError as err:
            raise ConfigError(f"experiment {exp.name}, trial {trial.name}: {err}") from None
        planned.append(PlannedTrial(trial.name, cfg, values))
    return Plan(exp, scale, tuple(planned))
