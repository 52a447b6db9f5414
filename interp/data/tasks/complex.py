"""The complex-reasoning schema: ``<attr><q><e1><mask><e2></q><a>`` -> ``<attr_j_k>`` (paper appendix F).

The comparison table and labels in the notebook's format: queries wrapped in ``<q>..</q>``
and closed by ``<a>`` (atomic facts read ``<q><e><attr><mask></q><a>``). Positions
``attr q e1 mask e2 end_q a``; lens targets as for comparison. Its OOD test (the *hard*
queries) is answered by chaining comparisons, so the schema defines no counterfactual
swaps, key states or intermediate to localise: those analyses refuse complex datasets.
"""

from __future__ import annotations

from typing import Any

from interp.data.graphs import AttributeGraph
from interp.data.records import Example
from interp.data.tasks.comparison import ComparisonSchema


class ComplexSchema(ComparisonSchema):
    """Complex reasoning over the comparison table."""

    name = "complex"
    task = "complex"
    positions = ("attr", "q", "e1", "mask", "e2", "end_q", "a")
    swaps = ()
    key_states = {}
    intermediates = {}

    def provenance(self, kg: AttributeGraph, example: Example) -> dict[str, Any] | None:
        """As for comparison, except for the hard queries (their provenance is the chain of comparisons)."""
        if example.type == "test_hard":
            return None
        return super().provenance(kg, example)


__all__ = ["ComplexSchema"]
