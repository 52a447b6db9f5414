"""Data configs: one dataclass per task, named presets, and dispatch on ``task``.

The paper presets reproduce Wang et al. (NeurIPS 2024) exactly; the ``-small`` presets
are laptop-sized graphs with the same recipe. ``__post_init__`` only validates: every
impossible setting fails at construction with a one-line :class:`ConfigError` naming the
field and its allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from interp.configs import apply_overrides, check_range, from_dict
from interp.data.operations import is_prime
from interp.errors import ConfigError

MAX_CHAINS = 20_000_000
"""Largest number of candidate chains (n_entities * out_degree**n_hops) we enumerate."""


def _check_sizes(cfg: Any, names: tuple[str, ...]) -> None:
    for name in names:
        check_range(name, getattr(cfg, name), low=1)


def _check_fraction(name: str, value: float) -> None:
    check_range(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


@dataclass
class CompositionConfig:
    """Two-hop (or k-hop) composition over a random knowledge graph of (h, r, t) facts.

    ``min_hops`` (None: ``n_hops`` only) trains on every depth ``min_hops .. n_hops``;
    ``test_hops`` (None: ``n_hops``) is the depth of the ``test_id`` / ``test_ood`` chains,
    deeper than training for depth extrapolation.
    """

    n_entities: int = 2000
    n_relations: int = 200
    out_degree: int = 20
    n_hops: int = 2
    ood_fraction: float = 0.05
    phi: float = 7.2
    test_id_fraction: float = 0.005
    probe_size: int = 3000
    seed: int = 0
    min_hops: int | None = None
    test_hops: int | None = None
    task: Literal["composition"] = "composition"

    @property
    def n_atomic(self) -> int:
        """Atomic facts in the graph: ``n_entities * out_degree``."""
        return self.n_entities * self.out_degree

    @property
    def n_ood_atomic(self) -> int:
        """Atomic facts made OOD: ``round(ood_fraction * n_atomic)``."""
        return round(self.ood_fraction * self.n_atomic)

    @property
    def n_id_atomic(self) -> int:
        """Atomic facts left in distribution: ``n_atomic - n_ood_atomic``."""
        return self.n_atomic - self.n_ood_atomic

    @property
    def n_inferred(self) -> int:
        """How many ID inferred facts go into training: round(phi * #ID atomic)."""
        return round(self.phi * self.n_id_atomic)

    def __post_init__(self) -> None:
        _check_sizes(self, ("n_entities", "n_relations", "out_degree", "probe_size"))
        check_range("n_hops", self.n_hops, low=2)
        check_range("out_degree", self.out_degree, low=1, high=self.n_relations)
        check_range("seed", self.seed, low=0)
        _check_fraction("ood_fraction", self.ood_fraction)
        _check_fraction("test_id_fraction", self.test_id_fraction)
        check_range("phi", self.phi, low=0.0, low_open=True)
        n_chains = self.n_entities * self.out_degree**self.n_hops
        if n_chains > MAX_CHAINS:
            raise ConfigError(
                f"n_entities*out_degree**n_hops = {n_chains:,} candidate chains is out of range; "
                f"allowed: at most {MAX_CHAINS:,} (lower n_entities, out_degree or n_hops)"
            )
        self._check_depths()
        if not 0 < self.n_ood_atomic < self.n_atomic:
            lo, hi = 1 / self.n_atomic, 1 - 1 / self.n_atomic
            raise ConfigError(
                f"ood_fraction = {self.ood_fraction!r} is out of range for this graph; allowed: [{lo:.3g}, {hi:.3g}] "
                f"(it makes {self.n_ood_atomic} of {self.n_atomic} atomic facts OOD; ID and OOD must be non-empty)"
            )
        expected = n_chains * (1 - self.ood_fraction) ** self.n_hops * (1 - self.test_id_fraction)
        if self.n_inferred > expected:
            phi_max = math.floor(10 * expected / self.n_id_atomic) / 10
            raise ConfigError(
                f"phi = {self.phi!r} is out of range for this graph; allowed: (0, {phi_max}] "
                f"(each entity has out_degree**n_hops = {self.out_degree**self.n_hops} {self.n_hops}-hop chains)"
            )
        for depth in range(self.min_hops or self.n_hops, self.n_hops):
            expected = self.n_entities * (self.out_degree * (1 - self.ood_fraction)) ** depth
            if self.n_inferred > expected:
                raise ConfigError(
                    f"min_hops = {self.min_hops} is out of range for phi = {self.phi!r}: {depth}-hop training needs "
                    f"{self.n_inferred} ID chains, the graph has about {int(expected)}; raise min_hops or lower phi"
                )

    def _check_depths(self) -> None:
        if self.min_hops is not None:
            check_range("min_hops", self.min_hops, low=2, high=self.n_hops)
        if self.test_hops is not None:
            check_range("test_hops", self.test_hops, low=self.n_hops)
            if self.n_entities * self.out_degree**self.test_hops >= 2**62:
                raise ConfigError(
                    f"test_hops = {self.test_hops} is more hops than this graph allows "
                    f"(n_entities*out_degree**test_hops must stay below 2**62); lower test_hops"
                )

    @property
    def probe_hops(self) -> int:
        """Depth of the test prompts (``test_hops``, else ``n_hops``)."""
        return self.test_hops or self.n_hops


@dataclass
class ComparisonConfig:
    """Attribute comparison: per attribute a random value per entity, compare two entities."""

    n_entities: int = 1000
    n_attributes: int = 20
    n_values: int = 20
    ood_fraction: float = 0.1
    phi: float = 7.2
    test_id_fraction: float = 0.1
    probe_size: int = 3000
    seed: int = 0
    task: Literal["comparison"] = "comparison"

    @property
    def n_ood_entities(self) -> int:
        """OOD entities per attribute: round(ood_fraction * n_entities)."""
        return round(self.ood_fraction * self.n_entities)

    @property
    def n_id_atomic(self) -> int:
        """Atomic facts of the ID entities: ``(n_entities - n_ood_entities) * n_attributes``."""
        return (self.n_entities - self.n_ood_entities) * self.n_attributes

    @property
    def n_inferred(self) -> int:
        """How many ID comparisons go into training: ``round(phi * n_id_atomic)``."""
        return round(self.phi * self.n_id_atomic)

    def __post_init__(self) -> None:
        _check_sizes(self, ("n_entities", "n_attributes", "n_values", "probe_size"))
        check_range("seed", self.seed, low=0)
        _check_fraction("ood_fraction", self.ood_fraction)
        _check_fraction("test_id_fraction", self.test_id_fraction)
        check_range("phi", self.phi, low=0.0, low_open=True)
        _check_entity_split(self)
        n_id = self.n_entities - self.n_ood_entities
        expected = self.n_attributes * n_id * (n_id - 1) * (1 - self.test_id_fraction)
        if self.n_inferred > expected:
            phi_max = math.floor(10 * expected / self.n_id_atomic) / 10
            raise ConfigError(
                f"phi = {self.phi!r} is out of range for this graph; allowed: (0, {phi_max}] "
                f"(each ID entity can be compared with {n_id - 1} other ID entities per attribute)"
            )


def _check_entity_split(cfg: ComparisonConfig | ComplexConfig) -> None:
    n_ood, n = cfg.n_ood_entities, cfg.n_entities
    if n_ood < 2 or n - n_ood < 2:
        raise ConfigError(
            f"ood_fraction = {cfg.ood_fraction!r} is out of range for n_entities = {n}; "
            f"allowed: [{2 / n:.3g}, {1 - 2 / n:.3g}] (it gives {n_ood} OOD and {n - n_ood} ID entities per "
            "attribute; each side needs at least 2)"
        )


@dataclass
class ComplexConfig:
    """Complex reasoning (appendix F): OOD-OOD comparisons derivable only through ID chains.

    ``test_id_fraction`` (ID-ID pairs held out as the ID test) is not in the paper's text but
    is what its notebook does (10%).
    """

    n_entities: int = 1000
    n_attributes: int = 20
    n_values: int = 20
    ood_fraction: float = 0.1
    train_id_id_fraction: float = 0.03
    train_id_ood_fraction: float = 0.03
    n_hard_per_label: int = 50
    probe_size: int = 3000
    seed: int = 0
    test_id_fraction: float = 0.1
    task: Literal["complex"] = "complex"

    @property
    def n_ood_entities(self) -> int:
        """OOD entities per attribute: ``round(ood_fraction * n_entities)``."""
        return round(self.ood_fraction * self.n_entities)

    def __post_init__(self) -> None:
        _check_sizes(self, ("n_entities", "n_attributes", "n_values", "n_hard_per_label", "probe_size"))
        check_range("seed", self.seed, low=0)
        for name in ("ood_fraction", "test_id_fraction"):
            _check_fraction(name, getattr(self, name))
        for name in ("train_id_id_fraction", "train_id_ood_fraction"):
            check_range(name, getattr(self, name), low=0.0, high=1.0, low_open=True)
        _check_entity_split(self)


@dataclass
class AlgorithmicConfig:
    """A binary operation table ``a o b = c`` (Power et al. 2022; Nanda et al. 2023), split at random.

    ``operation`` is one of :data:`interp.data.operations.OPERATIONS` (modular ``add``, ``sub``,
    ``mul``, ``div``, ``x2y2`` = a^2 + b^2 over Z_``modulus``; ``s5``: composition in the
    permutation group S5, which ignores ``modulus``). A fraction ``train_fraction`` of the
    defined pairs trains; the rest is the ``test_id`` split (all of it: grokking is measured
    on every held-out pair), and ``train_inferred`` is a probe of ``probe_size`` training pairs.
    """

    operation: Literal["add", "sub", "mul", "div", "x2y2", "s5"] = "add"
    modulus: int = 113
    train_fraction: float = 0.3
    probe_size: int = 3000
    seed: int = 0
    task: Literal["algorithmic"] = "algorithmic"

    def __post_init__(self) -> None:
        check_range("modulus", self.modulus, low=2)
        if self.operation == "div" and not is_prime(self.modulus):
            raise ConfigError(f"modulus = {self.modulus} must be a prime for operation = div (every b != 0 invertible)")
        _check_fraction("train_fraction", self.train_fraction)
        _check_sizes(self, ("probe_size",))
        check_range("seed", self.seed, low=0)


DataConfig = CompositionConfig | ComparisonConfig | ComplexConfig | AlgorithmicConfig

CONFIG_CLASSES: dict[str, type] = {
    "composition": CompositionConfig,
    "comparison": ComparisonConfig,
    "complex": ComplexConfig,
    "algorithmic": AlgorithmicConfig,
}

DATA_PRESETS: dict[str, DataConfig] = {
    "composition": CompositionConfig(),
    "comparison": ComparisonConfig(),
    "complex": ComplexConfig(),
    # The laptop default: 200 entities, 2,000 atomic facts, ~600 held-out ID inferred facts.
    "composition-small": CompositionConfig(
        n_entities=200,
        n_relations=20,
        out_degree=10,
        ood_fraction=0.05,
        phi=8.0,
        test_id_fraction=0.035,
        probe_size=1000,
    ),
    # For tests and quick demos: groks in about a minute on a laptop CPU.
    "composition-tiny": CompositionConfig(
        n_entities=100,
        n_relations=16,
        out_degree=8,
        ood_fraction=0.05,
        phi=7.0,
        test_id_fraction=0.05,
        probe_size=500,
    ),
    # Depth extrapolation: the composition-tiny graph, trained on 2- and 3-hop chains, tested
    # on 4-hop chains (deeper than any training prompt); 10% OOD facts for enough OOD chains.
    "khop-depth-tiny": CompositionConfig(
        n_entities=100,
        n_relations=16,
        out_degree=8,
        n_hops=3,
        min_hops=2,
        test_hops=4,
        ood_fraction=0.1,
        phi=5.0,
        test_id_fraction=0.05,
        probe_size=500,
    ),
    # Depth extrapolation in looped models: the same graph, trained on 2- to 4-hop chains,
    # test-ID / test-OOD on 6-hop chains (depth_test reaches 8 hops and more on it).
    "khop-depth8": CompositionConfig(
        n_entities=100,
        n_relations=16,
        out_degree=8,
        n_hops=4,
        min_hops=2,
        test_hops=6,
        ood_fraction=0.1,
        phi=5.0,
        test_id_fraction=0.05,
        probe_size=500,
    ),
    "comparison-small": ComparisonConfig(n_entities=200, n_attributes=5, n_values=20, phi=7.2, probe_size=1000),
    # For tests and notebooks: a comparison graph that groks in-distribution within minutes.
    "comparison-tiny": ComparisonConfig(n_entities=100, n_attributes=4, n_values=10, phi=18.0, probe_size=1000),
    "complex-small": ComplexConfig(n_entities=250, n_attributes=20, n_values=20, n_hard_per_label=50, probe_size=1000),
    # Nanda et al. 2023: a + b mod 113, 30% of the 12,769 pairs train.
    "modular-addition": AlgorithmicConfig(operation="add", modulus=113, train_fraction=0.3),
    # Power et al. 2022 / Grokfast (Lee et al. 2024): a * b mod 97, half of the pairs train.
    "modular-multiplication": AlgorithmicConfig(operation="mul", modulus=97, train_fraction=0.5),
    "s5": AlgorithmicConfig(operation="s5", train_fraction=0.5),
}
"""Named data configs: the paper's three settings, laptop-sized versions and the algorithmic tasks."""


def data_config(name_or_task: str, overrides: list[str] | tuple[str, ...] = ()) -> DataConfig:
    """The preset ``name_or_task`` (a task name gives the paper preset) with ``key=value`` overrides."""
    if name_or_task not in DATA_PRESETS:
        raise ConfigError(f"unknown data preset {name_or_task!r}; known: {', '.join(DATA_PRESETS)}")
    return apply_overrides(dataclasses.replace(DATA_PRESETS[name_or_task]), list(overrides))


def config_from_dict(d: dict[str, Any]) -> DataConfig:
    """Build the data config a mapping describes, dispatching on its ``task`` field."""
    if not isinstance(d, dict):
        raise ConfigError(f"a data config must be a mapping; got {type(d).__name__}")
    task = d.get("task")
    if not isinstance(task, str) or task not in CONFIG_CLASSES:  # (a list is unhashable)
        raise ConfigError(f"data config task = {task!r} is not allowed; choose one of {list(CONFIG_CLASSES)}")
    return from_dict(CONFIG_CLASSES[task], d)
