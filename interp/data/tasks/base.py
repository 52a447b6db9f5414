"""Task schemas: what a task's prompts are, said once, read by every analysis.

A synthetic reasoning task is more than its generator. Every analysis needs to know the
same things about its prompts: what each position holds (``h r1 r2``; ``attr q e1 mask
e2``), which input tokens can be swapped for another of the same type and what the
answer then becomes (counterfactuals, causal tracing, circuit tasks), which token of an
example a logit lens should look for (``bridge``, ``v1``), which residual states carry
the intermediate (circuit formation, localisation), and how to ask the knowledge graph.
A :class:`TaskSchema` says all of it for one task, so that analyses read the schema
instead of branching on the task's name; adding a task is one module that subclasses it
plus one :func:`~interp.data.tasks.register` call.

The schema is about a task's *inferred* prompts (the queries the circuits answer); atomic
facts are recognised by :meth:`TaskSchema.is_atomic`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from interp.data.graphs import AttributeGraph, CompositionGraph, KnowledgeGraph
from interp.data.operations import OperationTable
from interp.data.records import Example
from interp.data.vocab import Vocab
from interp.errors import GrokscopeError

Candidate = tuple[tuple[str, ...], str]
"""A prompt (its tokens) and the token the graph says it answers."""


class TaskSchemaError(GrokscopeError, ValueError):
    """A request a task's schema cannot serve: an unknown task, position, swap, lens target or intermediate."""


class KeyState(NamedTuple):
    """A residual state followed over training: its position, what it holds, the swap that must change it."""

    position: int
    target: str
    swap: str


class Intermediate(NamedTuple):
    """An intermediate variable to localise: the position that holds it, the swaps that set it."""

    position: int
    swaps: tuple[str, ...]


def choices(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


class TaskSchema(ABC):
    """What a task's prompts are: positions, swaps, lens targets, key states, graph look-ups."""

    name: ClassVar[str]
    """Registry key (``composition``, ``khop``, ``comparison``, ``complex``, ``algorithmic``)."""
    task: ClassVar[str]
    """The ``KGDataset.task`` this schema describes."""
    graph_type: ClassVar[type[CompositionGraph] | type[AttributeGraph] | type[OperationTable]]

    positions: tuple[str, ...]
    """Names of the positions of an inferred prompt, in order."""
    swaps: tuple[str, ...] = ()
    """Tokens a counterfactual may swap (each a position name), in the default tracing order."""
    lens_targets: tuple[str, ...] = ("answer",)
    """Names :meth:`target_token` understands."""
    report_targets: tuple[str, ...] = ("answer",)
    """The lens targets a run's report shows."""
    key_states: Mapping[str, KeyState] = {}
    """Position name -> the state circuit formation follows there."""
    intermediates: Mapping[str, Intermediate] = {}
    """Intermediate variables to localise, by lens-target name."""

    @classmethod
    def fit(cls, config: Any, splits: Mapping[str, Sequence[Example]]) -> TaskSchema | None:
        """This schema for a dataset of task :attr:`task` with ``config`` and ``splits``; None if another fits."""
        return cls()

    @property
    def label(self) -> str:
        """The task as errors and titles name it."""
        return self.task

    def __repr__(self) -> str:
        return f"{type(self).__name__}({' '.join(self.positions)})"

    # -- positions ------------------------------------------------------------------
    @property
    def n_pos(self) -> int:
        """The number of prompt positions."""
        return len(self.positions)

    def position(self, name: str) -> int:
        """The index of the position ``name``."""
        if name not in self.positions:
            known = choices(self.positions)
            raise TaskSchemaError(f"unknown position {name!r} for a {self.label} prompt; choose one of {known}")
        return self.positions.index(name)

    def swap_position(self, swap: str) -> int:
        """The position of the token ``swap`` names."""
        if not self.swaps:
            raise TaskSchemaError(f"no token of a {self.label} prompt can be swapped (no counterfactual rules)")
        if swap not in self.swaps:
            known = choices(self.swaps)
            raise TaskSchemaError(f"unknown swap {swap!r} for a {self.label} dataset; choose one of {known}")
        return self.positions.index(swap)

    def is_prompt(self, example: Example) -> bool:
        """Is ``example`` an inferred prompt of this schema's shape."""
        return len(example.input_tokens) == self.n_pos and not self.is_atomic(example)

    def key_state(self, name: str) -> KeyState:
        """The key state called ``name``; a one-line ``TaskSchemaError`` listing the known ones otherwise."""
        if name not in self.key_states:
            known = choices(list(self.key_states))
            raise TaskSchemaError(f"unknown key state {name!r} for a {self.label} dataset; choose one of {known}")
        return self.key_states[name]

    def intermediate(self, name: str) -> Intermediate:
        """The intermediate called ``name``; a one-line ``TaskSchemaError`` listing the known ones otherwise."""
        if name not in self.intermediates:
            known = choices(list(self.intermediates))
            raise TaskSchemaError(f"unknown intermediate {name!r} for a {self.label} dataset; choose one of {known}")
        return self.intermediates[name]

    # -- records and the graph --------------------------------------------------------
    @abstractmethod
    def is_atomic(self, example: Example) -> bool:
        """Is ``example`` an atomic fact (rather than an inferred one)."""

    def build_graph(self, graph: Mapping[str, Any]) -> KnowledgeGraph:
        """The typed view of a dataset's JSON graph."""
        return self.graph_type.from_json(graph)

    @abstractmethod
    def rebuild_graph(self, vocab: Vocab, atomic: Sequence[tuple[Example, str]]) -> dict[str, Any]:
        """The JSON graph as far as atomic records ``(example, type)`` tell it (the paper's files have none)."""

    @abstractmethod
    def provenance(self, kg: KnowledgeGraph, example: Example) -> dict[str, Any] | None:
        """The provenance of an inferred fact by the graph; None where the graph lacks a fact it needs."""

    def query_types(self, kg: KnowledgeGraph, split: str, examples: Sequence[Example]) -> dict[str, list[int]]:
        """Named query types within a split, scored on their own (metrics key ``split/type``); none by default."""
        return {}

    # -- lens targets -----------------------------------------------------------------
    def target_token(self, example: Example, which: str) -> str:
        """The token of ``example`` that the lens target ``which`` names."""
        if which == "answer":
            return example.answer
        token = self._target_token(example, which)
        if token is None:
            raise TaskSchemaError(
                f"unknown lens target {which!r} for a {self.label} dataset; choose from {choices(self.lens_targets)}"
            )
        return token

    def _target_token(self, example: Example, which: str) -> str | None:
        """The token of a task-specific target; None if ``which`` is not one."""
        return None

    # -- counterfactuals and interchange sources ---------------------------------------
    def candidates(self, kg: KnowledgeGraph, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[Candidate]:
        """Every prompt with token ``swap`` replaced whose answer by the graph differs, in the graph's order.

        With ``id_only``, every atomic fact the new prompt uses is in-distribution.
        """
        self.swap_position(swap)
        return []

    def interchange_sources(self, kg: KnowledgeGraph, example: Example, target: str) -> list[Candidate]:
        """Prompts whose intermediate ``target`` differs from ``example``'s, with the answer that intermediate
        implies (every fact they use in-distribution)."""
        self.intermediate(target)
        return []


__all__ = ["Candidate", "Intermediate", "KeyState", "TaskSchema", "TaskSchemaError"]
