"""The order of the training rows: each step's batch is a function of the step number alone.

A *stream* is a set of training rows shuffled once per epoch by a permutation seeded by
(seed, epoch, stream); step ``i`` takes the ``i``-th slice of its epoch's shuffle. A batch
draws from one stream, the whole training split (the paper), or with
``train.atomic_fraction`` from two, the atomic facts and the other prompts, each giving a
fixed number of rows to every batch. Because the order depends on nothing but the seed and
the step, a resumed run sees exactly the batches the uninterrupted one would have seen:
there is no data-loader state to checkpoint.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.errors import ConfigError


class BatchOrder:
    """The rows of every step's batch, over ``n_rows`` training rows.

    ``atomic`` marks the rows that are atomic facts; with ``atomic_fraction`` set, each batch
    takes ``round(atomic_fraction * batch_size)`` of its rows from them and the rest from the
    other rows (a one-line ``ConfigError`` when either part would be empty or larger than its
    rows).
    """

    def __init__(
        self,
        n_rows: int,
        batch_size: int,
        seed: int,
        *,
        device: torch.device,
        atomic: Bool[Tensor, " rows"] | None = None,
        atomic_fraction: float | None = None,
    ):
        self.batch_size = min(batch_size, n_rows)
        self.seed = seed
        self.device = device
        self._perms: dict[int, tuple[int, Tensor]] = {}  # stream -> (epoch, its shuffle)
        if atomic_fraction is None:
            self._streams = [(0, torch.arange(n_rows, device=device), self.batch_size)]
            return
        if atomic is None:
            raise ValueError("atomic_fraction needs atomic= (which rows are atomic facts)")
        rows = [torch.nonzero(atomic).flatten(), torch.nonzero(~atomic).flatten()]
        n_atomic = round(atomic_fraction * self.batch_size)
        sizes = [n_atomic, self.batch_size - n_atomic]
        for r, n, what in zip(rows, sizes, ("atomic facts", "other prompts")):
            if n < 1 or n > len(r):
                raise ConfigError(
                    f"train.atomic_fraction = {atomic_fraction} asks for {n} {what} per batch of {self.batch_size}, "
                    f"but the training split has {len(r)}; choose a fraction that gives each part between 1 and its size"
                )
        # (key, rows, rows per batch) of each stream: the atomic facts (1) and the other prompts (2)
        self._streams = [(key, r, n) for key, r, n in zip((1, 2), rows, sizes)]

    def indices(self, step: int) -> Int[Tensor, " batch"]:
        """The training rows of 0-based ``step``'s batch: each stream's slice of its epoch's shuffle, joined."""
        parts = [self._stream(key, rows, step, size) for key, rows, size in self._streams]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _stream(self, key: int, rows: Int[Tensor, " rows"], step: int, size: int) -> Int[Tensor, " size"]:
        """Rows ``size * i .. size * (i + 1)`` of stream ``key``'s shuffle of ``rows`` for its epoch of ``step``."""
        per_epoch = len(rows) // size
        epoch, i = divmod(step, per_epoch)
        if self._perms.get(key, (None,))[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 7_919 * key)
            self._perms[key] = (epoch, rows[torch.randperm(len(rows), generator=gen).to(self.device)])
        return self._perms[key][1][i * size : (i + 1) * size]


def eval_rows(n_rows: int, size: int, seed: int, device: torch.device) -> Int[Tensor, " rows"]:
    """The fixed subset of at most ``size`` of the ``n_rows`` training rows that every evaluation scores."""
    gen = torch.Generator().manual_seed(seed + 7)
    return torch.randperm(n_rows, generator=gen)[: min(n_rows, size)].to(device)


__all__ = ["BatchOrder", "eval_rows"]
