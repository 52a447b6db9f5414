"""Typed views of a dataset's knowledge graph, indexed once and asked many times.

``KGDataset.graph`` is the graph as plain JSON data (what ``graph.json`` holds); analyses
ask it questions: what is the tail of ``(h, r)``, which heads have relation ``r``, what
is the value of attribute ``a`` for entity ``e``, is that fact OOD. The classes here
answer them from dictionaries built once per dataset (``KGDataset.kg`` caches the view its
task schema builds), always in the graph's own order, so that every search over the
graph (counterfactuals, interchange sources) draws its candidates in a reproducible order.

* :class:`CompositionGraph`: atomic facts ``(h, r, t, is_ood)`` of the composition tasks;
* :class:`AttributeGraph`: a value per (entity, attribute) and the OOD entities per
  attribute, for comparison and complex reasoning;
* :class:`~interp.data.operations.OperationTable`: an operation and its training pairs, for
  the algorithmic tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interp.data.operations import OperationTable
from interp.errors import GrokscopeError


def compare(v1: int, v2: int) -> int:
    """The label index: 0 if v1 < v2, 1 if equal, 2 if v1 > v2."""
    return 0 if v1 < v2 else 1 if v1 == v2 else 2


class CompositionGraph:
    """Atomic facts ``h -r-> t``, each in- or out-of-distribution, in the graph's order."""

    def __init__(self, atomic: Sequence[Sequence[Any]]):
        self.facts: dict[tuple[str, str], tuple[str, bool]] = {(h, r): (t, bool(o)) for h, r, t, o in atomic}
        self._relations: dict[str, list[str]] = {}
        self._heads: dict[str, list[str]] = {}
        for h, r in self.facts:
            self._relations.setdefault(h, []).append(r)
            self._heads.setdefault(r, []).append(h)
        self.id_facts: list[tuple[str, str, str]] = [(h, r, t) for (h, r), (t, o) in self.facts.items() if not o]
        """The in-distribution facts ``(h, r, t)``, in the graph's order."""

    @classmethod
    def from_json(cls, graph: Mapping[str, Any]) -> CompositionGraph:
        """From ``{"atomic": [[h, r, t, is_ood], ...]}``."""
        return cls(graph["atomic"])

    def __repr__(self) -> str:
        return f"CompositionGraph({len(self.facts)} atomic facts)"

    def tail(self, h: str, r: str) -> str | None:
        """The tail t of the atomic fact (h, r, t), or None if h has no relation r."""
        fact = self.facts.get((h, r))
        return None if fact is None else fact[0]

    def relations_of(self, h: str) -> list[str]:
        """The relations going out of entity ``h``."""
        return list(self._relations.get(h, []))

    def heads_with(self, r: str) -> list[str]:
        """The entities that have relation ``r``."""
        return list(self._heads.get(r, []))

    def is_ood(self, h: str, r: str) -> bool:
        """Is the fact (h, r, .) out of distribution."""
        fact = self.facts.get((h, r))
        if fact is None:
            raise GrokscopeError(f"no atomic fact ({h}, {r}, ?) in the graph")
        return fact[1]

    def follow(self, h: str, relations: Sequence[str], *, id_only: bool = False) -> str | None:
        """The tail of the chain ``h -r1-> ... -rk->``; None if a hop is missing (or OOD, with ``id_only``)."""
        e = h
        for r in relations:
            fact = self.facts.get((e, r))
            if fact is None or (id_only and fact[1]):
                return None
            e = fact[0]
        return e


class AttributeGraph:
    """A value per (entity, attribute) (None where unknown) and, per attribute, its OOD entities."""

    def __init__(
        self,
        entities: Sequence[str],
        attributes: Sequence[str],
        values: Sequence[Sequence[int | None]],
        ood_entities: Mapping[str, Sequence[str]],
    ):
        self.entities: list[str] = list(entities)
        self.attributes: list[str] = list(attributes)
        self.values: dict[tuple[str, str], int | None] = {
            (e, a): row[j] for e, row in zip(entities, values) for j, a in enumerate(attributes)
        }
        self.ood: dict[str, set[str]] = {a: set(es) for a, es in ood_entities.items()}

    @classmethod
    def from_json(cls, graph: Mapping[str, Any]) -> AttributeGraph:
        """From ``{"entities", "attributes", "values", "ood_entities"}``."""
        return cls(graph["entities"], graph["attributes"], graph["values"], graph["ood_entities"])

    def __repr__(self) -> str:
        return f"AttributeGraph({len(self.entities)} entities x {len(self.attributes)} attributes)"

    def known_value(self, entity: str, attribute: str) -> int | None:
        """The value of ``attribute`` for ``entity``, or None where the graph does not know it."""
        return self.values.get((entity, attribute))

    def value(self, entity: str, attribute: str) -> int:
        """The value of ``attribute`` for ``entity``."""
        v = self.values.get((entity, attribute))
        if v is None:
            raise GrokscopeError(f"no known value of {attribute} for {entity}")
        return v

    def label(self, attribute: str, e1: str, e2: str) -> int | None:
        """The comparison label of ``e1`` against ``e2`` under ``attribute`` (None if a value is unknown)."""
        v1, v2 = self.values.get((e1, attribute)), self.values.get((e2, attribute))
        return None if v1 is None or v2 is None else compare(v1, v2)

    def is_ood(self, entity: str, attribute: str) -> bool:
        """Is ``entity`` one of the OOD entities of ``attribute``."""
        return entity in self.ood.get(attribute, set())


KnowledgeGraph = CompositionGraph | AttributeGraph | OperationTable

__all__ = ["AttributeGraph", "CompositionGraph", "KnowledgeGraph", "compare"]
