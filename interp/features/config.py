"""The typed config of a sparse dictionary, and the one-line errors of :mod:`interp.features`.

Field names follow SAELens v6 where it has one (``hook_name``, ``d_in``, ``d_sae``, ``k``,
``architecture``, ``l0_coefficient``, ``jumprelu_bandwidth``, ``jumprelu_init_threshold``,
``normalize_activations``, ``dead_feature_window``, ``lr_warm_up_steps``,
``lr_decay_steps``), so a user moving between the two libraries reads the same words.
``__post_init__`` only validates; every failure is one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from interp.configs import check_range, from_dict, to_dict
from interp.errors import ConfigError, GrokscopeError

Architecture = Literal["topk", "batchtopk", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("topk", "batchtopk", "jumprelu")


# ------------------------------------------------------------------------------ errors
class FeatureError(GrokscopeError, ValueError):
    """A sparse-dictionary request that the model, the data or the dictionary cannot serve."""


class EmptyPromptSetError(FeatureError):
    """The chosen splits and positions select no activation at all."""


class DictionaryFormatError(FeatureError):
    """A dictionary folder whose files are missing or not in the ``cfg.json`` + safetensors schema."""


class DictionaryMismatchError(FeatureError):
    """A dictionary used on a model or hook point other than the one it was trained for."""


# ------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class DictionaryConfig:
    """What to train: where (hook, splits, positions), which dictionary, and how.

    ``d_sae`` is the dictionary's width; when it is None it is ``expansion_factor * d_in``.
    ``d_in`` (the activation width) is read from the activations when None. ``positions``
    are prompt positions, as indices (``0``) or names of the task's prompt positions
    (``"r1"``, see :attr:`interp.data.tasks.TaskSchema.positions`; a name selects the task's
    inferred prompts only); None is every real prompt token. ``splits`` None is every split.
    """

    hook_name: str
    d_in: int | None = None
    d_sae: int | None = None
    expansion_factor: int = 8
    architecture: Architecture = "batchtopk"
    k: int = 16
    """Active features per activation (TopK), or on average over a batch (BatchTopK)."""
    # -- data
    splits: tuple[str, ...] | None = None
    positions: tuple[int | str, ...] | None = None
    # -- optimisation
    lr: float = 4e-3
    steps: int | None = 500
    epochs: float | None = None
    """Passes over the activations; when set it replaces ``steps``."""
    batch_size: int = 2048
    lr_warm_up_steps: int = 0
    lr_decay_steps: int | None = None
    """Linear decay to zero over the last ``lr_decay_steps`` steps (None: the last fifth)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    seed: int = 0
    # -- initialisation and scaling
    b_dec_init: Literal["mean", "geometric_median", "zeros"] = "geometric_median"
    normalize_activations: Literal["none", "expected_average_only_in"] = "expected_average_only_in"
    """``expected_average_only_in``: train on activations scaled to mean norm sqrt(d_in); the
    scale is folded into the biases (and threshold) afterwards, so the saved dictionary reads
    raw activations and keeps unit-norm decoder rows."""
    # -- dead features and the auxiliary loss
    dead_feature_window: int = 200
    """A feature that has not fired for this many steps counts as dead."""
    aux_k: int | None = None
    """Dead features the AuxK loss reconstructs the error with (None: ``d_in // 2``)."""
    aux_k_coefficient: float = 1 / 32
    """Weight of the AuxK loss (TopK / BatchTopK; 0 turns it off; 1/32 as in Gao et al. 2024)."""
    # -- BatchTopK's inference threshold
    topk_threshold_lr: float = 0.01
    """EMA rate of the global threshold BatchTopK uses at inference."""
    # -- JumpReLU
    l0_coefficient: float = 0.3
    """Weight of JumpReLU's L0 penalty (per row, against the squared error summed over ``d_in``)."""
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.3
    """In the training units: activations scaled to mean norm ``sqrt(d_in)`` (see ``normalize_activations``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.hook_name, str) or not self.hook_name:
            raise ConfigError("hook_name must be a TransformerLens hook name such as blocks.1.hook_resid_post")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture = {self.architecture!r} is not allowed; choose one of {list(ARCHITECTURES)}"
            )
        if self.d_in is not None:
            check_range("d_in", self.d_in, low=1)
        if self.d_sae is not None:
            check_range("d_sae", self.d_sae, low=1)
        check_range("expansion_factor", self.expansion_factor, low=1)
        check_range("k", self.k, low=1)
        width = self.width()
        if self.architecture != "jumprelu" and width is not None and self.k > width:
            raise ConfigError(f"k = {self.k} is larger than the dictionary's width d_sae = {width}; choose k <= d_sae")
        check_range("lr", self.lr, low=0, low_open=True)
        if self.steps is None and self.epochs is None:
            raise ConfigError("set steps or epochs (how long to train)")
        if self.steps is not None:
            check_range("steps", self.steps, low=1)
        if self.epochs is not None:
            check_range("epochs", self.epochs, low=0, low_open=True)
        check_range("batch_size", self.batch_size, low=1)
        check_range("lr_warm_up_steps", self.lr_warm_up_steps, low=0)
        if self.lr_decay_steps is not None:
            check_range("lr_decay_steps", self.lr_decay_steps, low=0)
        check_range("adam_beta1", self.adam_beta1, low=0, high=1, high_open=True)
        check_range("adam_beta2", self.adam_beta2, low=0, high=1, high_open=True)
        check_range("dead_feature_window", self.dead_feature_window, low=1)
        if self.aux_k is not None:
            check_range("aux_k", self.aux_k, low=1)
        check_range("aux_k_coefficient", self.aux_k_coefficient, low=0)
        check_range("topk_threshold_lr", self.topk_threshold_lr, low=0, high=1, low_open=True)
        check_range("l0_coefficient", self.l0_coefficient, low=0)
        check_range("jumprelu_bandwidth", self.jumprelu_bandwidth, low=0, low_open=True)
        check_range("jumprelu_init_threshold", self.jumprelu_init_threshold, low=0)
        self._check_data()

    def _check_data(self) -> None:
        from interp.data import SPLITS

        if self.splits is not None:
            if not self.splits:
                raise ConfigError("splits is empty; name at least one split or leave it unset for all of them")
            for s in self.splits:
                if s not in SPLITS:
                    raise ConfigError(f"unknown split {s!r}; choose from {', '.join(SPLITS)}")
        if self.positions is not None:
            if not self.positions:
                raise ConfigError("positions is empty; name at least one prompt position or leave it unset for all")
            for p in self.positions:
                if isinstance(p, bool) or not isinstance(p, (int, str)) or (isinstance(p, int) and p < 0):
                    raise ConfigError(f"position {p!r} must be an index >= 0 or a prompt position name such as 'r1'")
            if len(set(self.positions)) != len(self.positions):
                raise ConfigError(f"positions {list(self.positions)} repeat an entry; name each once")

    # -- derived values -------------------------------------------------------------------
    def width(self) -> int | None:
        """``d_sae``, or ``expansion_factor * d_in`` when only ``d_in`` is known (None: neither)."""
        if self.d_sae is not None:
            return self.d_sae
        return None if self.d_in is None else self.expansion_factor * self.d_in

    def resolved(self, d_in: int) -> DictionaryConfig:
        """This config with ``d_in`` and ``d_sae`` set for activations of width ``d_in``."""
        if self.d_in is not None and self.d_in != d_in:
            raise DictionaryMismatchError(
                f"the config says d_in = {self.d_in} but the activations at {self.hook_name} have width {d_in}"
            )
        return dataclasses.replace(self, d_in=d_in, d_sae=self.d_sae or self.expansion_factor * d_in)

    def n_steps(self, n_rows: int) -> int:
        """Optimiser steps for ``n_rows`` activations: ``steps``, or ``epochs`` passes of ``batch_size``."""
        if self.epochs is not None:
            return max(1, round(self.epochs * n_rows / min(self.batch_size, n_rows)))
        assert self.steps is not None
        return self.steps

    # -- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The config as a plain mapping, as ``cfg.json`` stores it."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DictionaryConfig:
        """Build from a plain mapping (``cfg.json``), with one-line errors on unknown or mistyped fields."""
        return from_dict(cls, data)


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "DictionaryConfig",
    "DictionaryFormatError",
    "DictionaryMismatchError",
    "EmptyPromptSetError",
    "FeatureError",
]
