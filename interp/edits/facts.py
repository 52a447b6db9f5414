"""Which facts an edit should change: the edited atomic fact and the two-hop facts built on it.

Changing one atomic fact ``(h, r) -> t`` to ``t'`` changes, by the graph, every inferred fact
whose chain uses it: as the first hop, ``(h, r, r2)`` now answers ``tail(t', r2)``
instead of ``tail(t, r2)``; as the second hop, ``(h0, r1, r)`` with ``tail(h0, r1) = h``
now answers ``t'`` instead of ``t``. :func:`dependent_facts` lists them from the dataset's
:class:`~interp.data.graphs.CompositionGraph` (the relations of ``t`` and ``t'``, and the
heads that reach ``h``), not by enumerating the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interp.data import KGDataset
from interp.data.graphs import CompositionGraph
from interp.errors import GrokscopeError

Hop = Literal["first", "second", "both"]


class EditError(GrokscopeError, ValueError):
    """An edit that cannot be made: a fact or entity the graph does not have, or a task without facts to edit."""


@dataclass(frozen=True)
class FactEdit:
    """The atomic fact ``(head, relation) -> old`` rewritten to ``-> new``."""

    head: str
    relation: str
    old: str
    new: str

    @property
    def prompt(self) -> tuple[str, str]:
        """The fact's prompt tokens: ``(head, relation)``."""
        return (self.head, self.relation)


@dataclass(frozen=True)
class DependentFact:
    """A two-hop fact whose chain uses the edited fact: the prompt, its answer before and after.

    ``new`` is None when the edited chain breaks (``t'`` has no relation ``r2``); ``hop`` says
    where the edited fact sits in the chain; ``in_distribution`` is whether every other hop is ID.
    """

    prompt: tuple[str, str, str]
    old: str
    new: str | None
    hop: Hop
    in_distribution: bool

    @property
    def changes(self) -> bool:
        """Does the graph's answer change (and stay defined)."""
        return self.new is not None and self.new != self.old


def composition_graph(dataset: KGDataset) -> CompositionGraph:
    """The dataset's composition graph; an :class:`EditError` for a task without atomic ``(h, r) -> t`` facts."""
    kg = dataset.kg
    if not isinstance(kg, CompositionGraph):
        raise EditError(
            f"knowledge edits need a composition dataset with atomic (h, r) -> t facts; this one is {dataset.schema.name}"
        )
    return kg


def make_edit(dataset: KGDataset, head: str, relation: str, new: str) -> FactEdit:
    """The edit of the existing fact ``(head, relation)`` to the existing entity ``new`` (one-line errors)."""
    kg = composition_graph(dataset)
    old = kg.tail(head, relation)
    if old is None:
        raise EditError(
            f"no atomic fact ({head}, {relation}, ?) to edit; pick a head and one of its relations "
            f"({', '.join(kg.relations_of(head)[:5]) or 'the head has none'} ...)"
        )
    if new not in _entities(kg):
        raise EditError(f"the new target {new!r} is not an entity of the graph; pick one such as {old}")
    if new == old:
        raise EditError(f"({head}, {relation}) already answers {new}; pick a different target entity")
    return FactEdit(head, relation, old, new)


def _entities(kg: CompositionGraph) -> set[str]:
    ents = {h for h, _ in kg.facts}
    ents.update(t for t, _ in kg.facts.values())
    return ents


def _follow(kg: CompositionGraph, edit: FactEdit | None, h: str, rels: tuple[str, ...]) -> str | None:
    e = h
    for r in rels:
        if edit is not None and (e, r) == edit.prompt:
            e = edit.new
            continue
        fact = kg.facts.get((e, r))
        if fact is None:
            return None
        e = fact[0]
    return e


def dependent_facts(dataset: KGDataset, edit: FactEdit) -> list[DependentFact]:
    """Every two-hop fact ``(h0, r1, r2)`` whose chain (before the edit) uses the edited fact, in graph order."""
    kg = composition_graph(dataset)
    prompts: dict[tuple[str, str, str], Hop] = {}
    for r2 in kg.relations_of(edit.old):  # the edited fact as the first hop
        prompts[(edit.head, edit.relation, r2)] = "first"
    for (h0, r1), (t, _) in kg.facts.items():  # ... as the second hop
        if t == edit.head:
            key = (h0, r1, edit.relation)
            prompts[key] = "both" if key in prompts else "second"
    out = []
    for prompt, hop in prompts.items():
        h0, r1, r2 = prompt
        old = _follow(kg, None, h0, (r1, r2))
        assert old is not None  # the chain exists before the edit by construction
        mid = kg.facts[(h0, r1)][0]
        ood = kg.facts[(h0, r1)][1] or kg.facts[(mid, r2)][1]
        out.append(DependentFact(prompt, old, _follow(kg, edit, h0, (r1, r2)), hop, not ood))
    return out


def control_facts(dataset: KGDataset, edit: FactEdit) -> list[tuple[tuple[str, str, str], str]]:
    """``(prompt, answer)`` of the ID two-hop facts ``(h0, r1, r)`` that end in the edited relation but do not use the edit.

    Their bridge ``tail(h0, r1)`` is not the edited head and their answer is not the new target,
    so no edit of ``(head, r)`` should turn them into the new target: the control for second-hop
    propagation (a model that answers the new target more often everywhere also "propagates").
    """
    kg = composition_graph(dataset)
    out = []
    for (h0, r1), (b, ood1) in kg.facts.items():
        if ood1 or b == edit.head or (h0, r1) == edit.prompt:
            continue
        second = kg.facts.get((b, edit.relation))
        if second is None or second[1] or second[0] == edit.new:
            continue
        out.append(((h0, r1, edit.relation), second[0]))
    return out


def independent_facts(dataset: KGDataset, edit: FactEdit, split: str) -> list[tuple[tuple[str, ...], str]]:
    """``(prompt, answer)`` of a split's examples that do not use the edited fact (atomic or two-hop)."""
    kg = composition_graph(dataset)
    out = []
    for ex in dataset.examples(split):
        prompt = ex.input_tokens
        if prompt[:2] == edit.prompt:
            continue
        if len(prompt) == 3 and (kg.tail(prompt[0], prompt[1]), prompt[2]) == edit.prompt:
            continue
        out.append((prompt, ex.answer))
    return out


__all__ = [
    "DependentFact",
    "EditError",
    "FactEdit",
    "composition_graph",
    "control_facts",
    "dependent_facts",
    "independent_facts",
    "make_edit",
]
