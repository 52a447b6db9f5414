"""The complex-reasoning schema: ``<attr><q><e1><mask><e2></q><a>`` -> ``<attr_j_k>`` (paper appendix F).

The comparison table and labels in the notebook's format: queries wrapped in ``<q>..</q>``
and closed by ``<a>`` (atomic facts read ``<q><e><attr><mask></q><a>``). Positions
``attr q e1 mask e2 end_q a``; lens targets as for comparison. Its OOD test (the *hard*
queries) is answered by chaining comparisons, so the schema defines no counterfactual
swaps, key states or intermediate to localise: those analyses refuse complex datasets.

Query types (scored separately during training, metrics keys ``split/type``): the trained
comparisons split into ``id_id`` and ``id_ood`` pairs, and the held-out ID test and the hard
OOD test by label (``lt``, ``eq``, ``gt``: v1 <, =, > v2), as the paper reports its
hard queries per answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp.data.graphs import AttributeGraph
from interp.data.records import Example
from interp.data.tasks.base import TaskSchemaError
from interp.data.tasks.comparison import ComparisonSchema

LABEL_NAMES = ("lt", "eq", "gt")
"""Query-type names of the labels 0, 1, 2 (v1 <, =, > v2)."""


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

    def query_types(self, kg: AttributeGraph, split: str, examples: Sequence[Example]) -> dict[str, list[int]]:
        """``train_inferred``: ``id_id`` / ``id_ood`` pairs; ``test_id`` and ``test_ood``: by label."""
        if split == "train_inferred":
            kinds = [self._pair_kind(kg, ex) for ex in examples]
            return {k: [i for i, x in enumerate(kinds) if x == k] for k in ("id_id", "id_ood", "ood_ood") if k in kinds}
        if split in ("test_id", "test_ood"):
            labels = [int(ex.answer.strip("<>").rsplit("_", 1)[1]) for ex in examples]
            return {name: [i for i, x in enumerate(labels) if x == k] for k, name in enumerate(LABEL_NAMES)}
        return {}

    def _pair_kind(self, kg: AttributeGraph, example: Example) -> str:
        if not self.is_prompt(example):
            raise TaskSchemaError(f"{example.input_tokens} is not a complex-reasoning query")
        attr, e1, e2 = (example.input_tokens[self.position(p)] for p in ("attr", "e1", "e2"))
        n_ood = kg.is_ood(e1, attr) + kg.is_ood(e2, attr)
        return ("id_id", "id_ood", "ood_ood")[n_ood]


__all__ = ["ComplexSchema"]
