"""The named experiments: a base run preset per scale, a grid of trials, the paper's finding each tests.

:data:`EXPERIMENTS` holds them by name (``grokscope experiments`` lists them);
:func:`get_experiment` looks one up. :func:`experiments.plan.plan_experiment` resolves one
into validated run configs.
"""

from __future__ import annotations

from typing import Any

from experiments.analyses import edit_propagation
from experiments.depth import loop_depth
from experiments.spec import Experiment, Scale, SummaryPlot, Trial
from interp.errors import ConfigError

SCALES = ("tiny", "small")
"""The scales every experiment has: ``tiny`` (minutes on a laptop) and ``small``."""


def _grid(key: str, values: list[Any], prefix: str) -> tuple[Trial, ...]:
    return tuple(Trial(f"{prefix}-{v}".lower(), (f"{key}={v}",)) for v in values)


def _depth_width(layers: list[int], widths: list[int]) -> tuple[Trial, ...]:
    return tuple(
        # the MLP scales with the width (4 x d_model), whatever the base preset's d_mlp
        Trial(f"L{n}-d{d}", (f"model.n_layers={n}", f"model.d_model={d}", "model.d_mlp=none"))
        for n in layers
        for d in widths
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
_LOOPED_ATOMIC = Trial(
    "looped-1x4-atomic1", ("model.n_layers=4", "model.loops=4", "model.share_layers=false", "train.atomic_loops=1")
)
_LOOPED_TINY = (*_LOOPED[:3], _LOOPED_ATOMIC)
_DEPTH_MODELS = (
    Trial("standard", ("model.n_layers=4", "model.loops=1", "train.atomic_loops=none")),
    Trial("looped-1x4", ("model.n_layers=4", "model.loops=4", "train.atomic_loops=none")),
    Trial("looped-2x4", ("model.n_layers=8", "model.loops=4", "train.atomic_loops=none")),
    Trial("looped-1x4-atomic1", ("model.n_layers=4", "model.loops=4", "train.atomic_loops=1")),
)

_DEPTH8 = (
    Trial("looped"),
    Trial("looped-curriculum", ("train.curriculum=true",)),
    Trial("standard", preset="khop-depth8-standard"),
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
            "tiny": Scale(
                "composition-tiny", ("train.max_steps=3000",), _grid("data.phi", [3.6, 5.4, 7.2], "phi"), minutes=8
            ),
            "small": Scale(
                "composition-small",
                ("train.max_steps=8000",),
                _grid("data.phi", [3.6, 5.4, 7.2, 9.0], "phi"),
                minutes=40,
            ),
        },
    ),
    "comparison": Experiment(
        name="comparison",
        description="Composition and comparison, each with its task's default preset, trained until it groks (the comparison preset until ID and OOD both do); ID and OOD test accuracy.",
        finding="Comparison generalizes both ID and OOD through grokking; composition groks ID but OOD stays near 0.",
        columns=("data.task", "data.phi"),
        summary=SummaryPlot("bar", ("test_id", "test_ood", "best_test_ood"), title="final ID / OOD accuracy per task"),
        scales={
            "tiny": Scale(
                "composition-tiny",
                (),
                (
                    Trial("composition", (), preset="composition-tiny"),
                    Trial("comparison", (), preset="comparison-tiny"),  # trains until OOD groks too
                ),
                minutes=35,
            ),
            "small": Scale(
                "composition-small",
                (),
                (
                    Trial("composition", (), preset="composition-small"),
                    Trial("comparison", (), preset="comparison-small"),
                ),
                minutes=40,
            ),
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
            "tiny": Scale(
                "composition-tiny",
                ("data.phi=7.2", "train.max_steps=3000", "train.stop_after_grok=false"),
                _SHARING,
                minutes=5,
            ),
            # the paper's shape: 8 applied layers, the first 4 tied to the last 4; weight decay 0.3
            "small": Scale(
                "composition-small",
                (
                    "data.phi=9.0",
                    "model.n_layers=8",
                    "train.weight_decay=0.3",
                    "train.max_steps=20000",
                    "train.stop_after_grok=false",
                ),
                _SHARING,
                minutes=120,
            ),
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
            "small": Scale(
                "composition-small", ("train.max_steps=8000",), _depth_width([4, 8], [128, 256]), minutes=90
            ),
        },
    ),
    "weight-decay": Experiment(
        name="weight-decay",
        description="Composition at several weight decays, same data and budget.",
        finding="Larger weight decay groks faster (it favours the efficient generalizing circuit).",
        columns=("train.weight_decay",),
        summary=SummaryPlot(
            "line",
            ("grokked_step", "memorized_step"),
            x="train.weight_decay",
            logx=True,
            title="steps to grok vs weight decay",
        ),
        scales={
            "tiny": Scale(
                "composition-tiny",
                ("train.max_steps=3000",),
                _grid("train.weight_decay", [0.1, 0.3, 1.0], "wd"),
                minutes=8,
            ),
            "small": Scale(
                "composition-small",
                ("train.max_steps=8000",),
                _grid("train.weight_decay", [0.1, 0.3, 1.0], "wd"),
                minutes=30,
            ),
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
        summary=SummaryPlot(
            "bar",
            ("test_id", "test_ood/lt", "test_ood/eq", "test_ood/gt", "test_ood"),
            title="ID test and hard OOD queries per label",
        ),
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
        summary=SummaryPlot(
            "bar",
            (
                "finetune_propagation",
                "finetune_spurious_second",
                "rome_propagation",
                "rome_spurious_second",
                "rome_locality_atomic",
            ),
            title="propagation of one edited fact, and its control, per model",
        ),
        scales={
            "tiny": Scale(
                "composition-tiny",
                ("train.max_steps=3000", "train.stop_after_grok=false"),
                (
                    Trial("standard", ("model.share_layers=false", "model.loops=1")),
                    Trial("shared", ("model.share_layers=true", "model.loops=1")),
                    Trial("looped", ("model.share_layers=false", "model.loops=4")),
                ),
                minutes=30,
            ),
            "small": Scale(
                "composition-small",
                ("model.n_layers=4", "train.max_steps=4000", "train.stop_after_grok=false"),
                (
                    Trial("standard", ("model.share_layers=false", "model.loops=1")),
                    Trial("shared", ("model.share_layers=true", "model.loops=1")),
                    Trial("looped", ("model.share_layers=false", "model.loops=4")),
                ),
                minutes=90,
            ),
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
        summary=SummaryPlot(
            "bar",
            ("test_id", "test_ood", "best_test_ood", "test_ood_T8"),
            title="ID / OOD two-hop composition per architecture",
        ),
        scales={
            "tiny": Scale(
                "composition-tiny",
                (
                    "data.ood_fraction=0.1",
                    "data.phi=6.5",
                    "train.max_steps=15000",
                    "train.eval_every=500",
                    "train.stop_after_grok=false",
                ),
                _LOOPED_TINY,
                minutes=50,
            ),
            "small": Scale(
                "composition-small",
                ("train.max_steps=8000", "train.stop_after_grok=false"),
                (*_LOOPED, _LOOPED_ATOMIC),
                minutes=360,
            ),
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
        summary=SummaryPlot(
            "bar",
            ("held_d3", "test_id", "id_d5", "test_id_T8", "id_d5_T8"),
            title="ID accuracy at a trained depth (held_d3) and deeper",
        ),
        scales={
            "tiny": Scale("khop-depth-tiny", ("train.stop_after_grok=false",), _DEPTH_MODELS, minutes=60),
            "small": Scale(
                "khop-depth-tiny",
                (
                    "data.n_entities=200",
                    "data.n_relations=20",
                    "data.out_degree=10",
                    "train.max_steps=8000",
                    "train.stop_after_grok=false",
                ),
                _DEPTH_MODELS,
                minutes=240,
            ),
        },
        analysis=loop_depth,
    ),
    "depth-extrapolation": Experiment(
        name="depth-extrapolation",
        description="Composition trained on 2- to 4-hop chains, tested on 6-hop (test_id / test_ood) and 8-hop (id_d8) "
        "chains: a looped llama block (rotary positions, random loop counts per batch, atomic facts at one loop, "
        "adaptive halting), the same with a depth curriculum (depth k+1 joins when held-out k-hop chains pass 0.95), "
        "and a standard 4-block llama.",
        finding="Looped transformers trained on <= 4-5 hops answer much deeper chains (2026: 10 hops) when given more "
        "loops; standard transformers do not extrapolate in depth.",
        columns=("model.n_layers", "model.loops", "train.loop_sampling", "train.curriculum"),
        summary=SummaryPlot(
            "bar",
            ("held_d4", "test_id", "id_d8", "test_id_halt", "id_d8_halt"),
            title="ID accuracy at the deepest trained depth (held_d4), 6 hops and 8 hops",
        ),
        scales={
            "tiny": Scale(
                "khop-depth8-looped",
                (),
                _DEPTH8,
                minutes=120,
            ),
            "small": Scale(
                "khop-depth8-looped",
                ("data.n_entities=200", "data.n_relations=20", "data.out_degree=10", "train.max_steps=16000"),
                _DEPTH8,
                minutes=480,
            ),
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
        summary=SummaryPlot(
            "line",
            ("train", "test_id", "test_ood"),
            x="model.d_model",
            logx=True,
            title="final accuracy vs width (test error = 1 - accuracy)",
        ),
        scales={
            "tiny": Scale(
                "composition-tiny",
                ("train.max_steps=3000", "train.stop_after_grok=false", "model.d_mlp=none"),
                _grid("model.d_model", [16, 32, 64, 128, 256], "d"),
                minutes=45,
            ),
            "small": Scale(
                "composition-small",
                ("train.max_steps=6000", "train.stop_after_grok=false", "model.d_mlp=none"),
                _grid("model.d_model", [32, 64, 128, 256, 512], "d"),
                minutes=240,
            ),
        },
    ),
}
"""The named experiments; ``grokscope experiment NAME`` runs one."""


def get_experiment(name: str) -> Experiment:
    """The named experiment; an unknown ``name`` is a one-line ``ConfigError`` listing the known ones."""
    if name not in EXPERIMENTS:
        raise ConfigError(
            f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)} (list them: grokscope experiments)"
        )
    return EXPERIMENTS[name]


__all__ = ["EXPERIMENTS", "SCALES", "get_experiment"]
