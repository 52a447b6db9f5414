"""Depth training: which rows each step trains, with how many loops, at which positions.

The trainer asks a :class:`StepSchedule` for every step's batch. Like the batch order
(:mod:`interp.train.order`) everything it returns is a function of the seed, the step and
the curriculum stage, so a resumed run sees the very batches, loop counts and shifts of an
uninterrupted one; the stage is the only state, saved in the checkpoint.

* Loops per row (looped models): ``train.loop_sampling = "poisson"`` draws one count per
  batch, ``clip(Poisson(loop_mean), loop_min, model.loops)``, raised for each row to its
  number of hops (a chain of ``k`` hops gets at least ``k`` iterations); otherwise every row
  runs all of ``model.loops``. ``train.atomic_loops`` runs the atomic facts with that many
  loops instead, in either case.
* Depth curriculum (``train.curriculum``, k-hop data with ``data.min_hops``): the batches
  draw from the atomic facts and the chains of at most the stage depth, which starts at
  ``data.min_hops`` and rises by one at the first evaluation where the held-out chains of
  that depth (``held_d{D}``) reach ``train.curriculum_threshold``.
* Position shift (``train.position_shift``): each batch's position ids start at a random
  offset in ``0 .. position_shift``, so that a learned position table is trained at every
  position a deeper prompt will use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import CompositionConfig, KGDataset
from interp.errors import CheckpointError, ConfigError
from interp.train.config import RunConfig
from interp.train.order import BatchOrder


def row_hops(dataset: KGDataset) -> Int[Tensor, " rows"]:
    """Hops of every training row: its relation tokens (1 for an atomic fact, ``k`` for a k-hop chain)."""
    return torch.tensor([len(ex.input_tokens) - 1 for ex in dataset.examples("train")], dtype=torch.long)


@dataclass
class Stage:
    """The curriculum's state: the deepest chains trained, and the step from which they are."""

    depth: int
    since: int = 0

    def to_dict(self) -> dict[str, int]:
        """The stage as checkpoint state."""
        return {"depth": self.depth, "since": self.since}


class StepSchedule:
    """Each step's training rows, loops per row and position shift (module docstring)."""

    def __init__(self, config: RunConfig, dataset: KGDataset, n_ctx: int, device: torch.device):
        self.config = config
        tc = config.train
        self.device = device
        self.built_loops = config.model.n_loops
        self.hops = row_hops(dataset).to(device)
        self.atomic = (
            torch.tensor([dataset.schema.is_atomic(ex) for ex in dataset.examples("train")], device=device)
            if tc.atomic_fraction is not None or tc.atomic_loops is not None
            else None
        )
        if tc.position_shift:
            room = (config.model.n_ctx or n_ctx) - n_ctx
            if tc.position_shift > room:
                raise ConfigError(
                    f"train.position_shift = {tc.position_shift} moves {n_ctx}-token prompts past model.n_ctx = "
                    f"{config.model.n_ctx}; set model.n_ctx >= {n_ctx + tc.position_shift} or lower the shift"
                )
        data = config.data
        self.stage = Stage(data.min_hops) if tc.curriculum and isinstance(data, CompositionConfig) else None
        self._build_order()

    def _build_order(self) -> None:
        tc = self.config.train
        if self.stage is None:
            self.rows = torch.arange(len(self.hops), device=self.device)
        else:
            self.rows = torch.nonzero(self.hops <= self.stage.depth).flatten()
        self.order = BatchOrder(
            len(self.rows),
            tc.batch_size,
            tc.seed,
            device=self.device,
            atomic=None if self.atomic is None else self.atomic[self.rows],
            atomic_fraction=tc.atomic_fraction,
        )

    @property
    def batch_size(self) -> int:
        """Rows per batch (the training rows of the current stage, where fewer than ``train.batch_size``)."""
        return self.order.batch_size

    def indices(self, step: int) -> Int[Tensor, " batch"]:
        """The training rows of 0-based ``step``'s batch."""
        since = 0 if self.stage is None else self.stage.since
        return self.rows[self.order.indices(step - since)]

    def loops(self, step: int, rows: Int[Tensor, " batch"]) -> Int[Tensor, " batch"] | None:
        """Loops per row of ``step``'s batch, or None where every row runs all of ``model.loops``."""
        tc = self.config.train
        if tc.loop_sampling == "fixed":
            loops = None if tc.atomic_loops is None else torch.full_like(rows, self.built_loops)
        else:
            rng = np.random.default_rng([tc.seed, step, 17])
            drawn = int(np.clip(rng.poisson(tc.loop_mean), tc.loop_min, self.built_loops))
            loops = torch.clamp(self.hops[rows], min=drawn, max=self.built_loops)
        return loops if tc.atomic_loops is None else torch.where(self.atomic[rows], tc.atomic_loops, loops)

    def shift(self, step: int) -> int:
        """The position offset of ``step``'s batch (0 without ``train.position_shift``)."""
        shift = self.config.train.position_shift
        return int(np.random.default_rng([self.config.train.seed, step, 29]).integers(0, shift + 1)) if shift else 0

    def after_evaluation(self, step: int, scores: dict[str, float]) -> bool:
        """Raise the curriculum's depth if the held-out chains of the current one pass; True if it rose."""
        if self.stage is None or self.stage.depth >= self.config.data.n_hops:
            return False
        if scores.get(f"held_d{self.stage.depth}", 0.0) < self.config.train.curriculum_threshold:
            return False
        self.stage = Stage(self.stage.depth + 1, step)
        self._build_order()
        return True

    def state(self) -> dict[str, Any]:
        """Checkpoint state: the curriculum's stage (empty without a curriculum)."""
        return {} if self.stage is None else {"curriculum": self.stage.to_dict()}

    def load_state(self, state: dict[str, Any], where: str) -> None:
        """Restore :meth:`state`; a checkpoint of a curriculum run without its stage is a CheckpointError."""
        if self.stage is None:
            return
        stage = state.get("curriculum")
        if not isinstance(stage, dict) or not {"depth", "since"} <= set(stage):
            raise CheckpointError(f"{where}: the checkpoint has no curriculum stage; it is not from this run")
        self.stage = Stage(int(stage["depth"]), int(stage["since"]))
        self._build_order()


__all__ = ["Stage", "StepSchedule", "row_hops"]
