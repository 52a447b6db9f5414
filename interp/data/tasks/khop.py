"""The k-hop composition schema: ``<h><r1>...<rk>`` -> ``t`` through bridges ``b1 .. b(k-1)``.

A composition dataset whose config has ``n_hops > 2`` (or whose prompts have more than two
relations). Positions ``h r1 .. rk``; any of them can be swapped (a relation for another
relation of the entity before its hop); lens targets add ``bridge2 ..`` (the later bridge
entities) and ``r3 ..``. Circuit formation and localisation follow the first hop, as for
two hops: the first bridge at ``r1`` and ``r2`` at ``r2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interp.data.records import Example
from interp.data.tasks.base import TaskSchema, TaskSchemaError
from interp.data.tasks.composition import CompositionSchema, n_hops_of


class KHopSchema(CompositionSchema):
    """Composition over ``n_hops >= 3`` hops."""

    name = "khop"

    def __init__(self, n_hops: int = 3):
        if isinstance(n_hops, bool) or not isinstance(n_hops, int) or n_hops < 3:
            raise TaskSchemaError(f"n_hops = {n_hops!r} is out of range for k-hop composition; allowed: >= 3")
        super().__init__(n_hops)

    @classmethod
    def fit(cls, config: Any, splits: Mapping[str, Sequence[Example]]) -> TaskSchema | None:
        """The k-hop schema, for a dataset whose inferred prompts have more than two relations; None otherwise."""
        n_hops = n_hops_of(config, splits)
        return cls(n_hops) if n_hops > 2 else None

    @property
    def label(self) -> str:
        """``K-hop composition``: the task as errors and titles name it."""
        return f"{self.n_hops}-hop composition"


__all__ = ["KHopSchema"]
