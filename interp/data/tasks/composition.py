"""The composition schema: ``<h><r1><r2>`` -> ``t``, two hops through the bridge entity ``b = r1(h)``.

Positions ``h r1 r2``. A counterfactual swaps ``h`` for another head with relation ``r1``,
or ``r1`` (``r2``) for another relation of ``h`` (of the bridge), so that the chain's tail
changes. Lens targets: the prompt tokens, the ``answer`` and the ``bridge`` entity (from
the example's provenance). Circuit formation follows ``S[l, r1]`` (the bridge, set by
``h``) and ``S[l, r2]`` (``r2`` itself); the intermediate to localise is the bridge at
``r1``. The same rules serve k hops (:mod:`interp.data.tasks.khop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interp.data.graphs import CompositionGraph
from interp.data.records import Example
from interp.data.tasks.base import Candidate, Intermediate, KeyState, TaskSchema, TaskSchemaError
from interp.data.vocab import Vocab


def n_hops_of(config: Any, splits: Mapping[str, Sequence[Example]]) -> int:
    """Hops of a composition dataset: its config's ``n_hops``, else the relations of its prompts (2 if none)."""
    if config is not None:  # the depth of the test prompts (deeper than training for depth extrapolation)
        return int(getattr(config, "probe_hops", config.n_hops))
    for name in ("train_inferred", "test_id", "test_ood", "train"):
        for ex in splits.get(name, ()):
            n_rel = sum(t.startswith("<r_") for t in ex.input_tokens)
            if n_rel > 1:
                return n_rel
    return 2


class CompositionSchema(TaskSchema):
    """Two-hop composition (``n_hops`` relations after the head; :class:`KHopSchema` for more)."""

    name = "composition"
    task = "composition"
    graph_type = CompositionGraph

    def __init__(self, n_hops: int = 2):
        if isinstance(n_hops, bool) or not isinstance(n_hops, int) or n_hops < 2:
            raise TaskSchemaError(f"n_hops = {n_hops!r} is out of range; allowed: an integer >= 2")
        self.n_hops = n_hops
        relations = tuple(f"r{i}" for i in range(1, n_hops + 1))
        bridges = ("bridge",) + tuple(f"bridge{i}" for i in range(2, n_hops))
        self.positions = ("h", *relations)
        self.swaps = self.positions
        self.lens_targets = ("answer", *bridges, "h", *relations)
        self.report_targets = ("bridge", "r2", "answer")
        self.key_states = {"r1": KeyState(1, "bridge", "h"), "r2": KeyState(2, "r2", "r2")}
        self.intermediates = {"bridge": Intermediate(1, ("h", "r1"))}

    @classmethod
    def fit(cls, config: Any, splits: Mapping[str, Sequence[Example]]) -> TaskSchema | None:
        """The two-hop schema, for a dataset whose inferred prompts have two relations; None otherwise."""
        return cls() if n_hops_of(config, splits) == 2 else None

    # -- records and the graph --------------------------------------------------------
    def is_atomic(self, example: Example) -> bool:
        """A composition record is atomic when it has one relation (``<e_N><r_N>``)."""
        return sum(t.startswith("<r_") for t in example.input_tokens) == 1

    def rebuild_graph(self, vocab: Vocab, atomic: Sequence[tuple[Example, str]]) -> dict[str, Any]:
        """Facts from the atomic records; a fact is OOD if it appears as an ``ood_atomic`` probe.

        A record that is not ``<h><r>`` -> ``t``, or two records giving ``(h, r)`` two tails,
        is a :class:`TaskSchemaError`.
        """
        facts: dict[tuple[str, str], list] = {}
        for ex, kind in atomic:
            if len(ex.input_tokens) != 2:
                raise TaskSchemaError(f"{ex.input_text} is no atomic fact <h><r> of a {self.label} dataset")
            h, r = ex.input_tokens
            fact = facts.setdefault((h, r), [h, r, ex.answer, False])
            if fact[2] != ex.answer:
                raise TaskSchemaError(f"two atomic facts disagree: {h}{r} -> {fact[2]} and -> {ex.answer}")
            fact[3] = fact[3] or kind == "ood_atomic"
        return {"atomic": list(facts.values())}

    def provenance(self, kg: CompositionGraph, example: Example) -> dict[str, Any] | None:
        """``{"bridges": [b1, ...], "atomic": [[h, r, t] per hop]}`` when the chain is in the graph."""
        e, hops = example.input_tokens[0], []
        for r in example.input_tokens[1:]:
            t = kg.tail(e, r)
            if t is None:
                return None
            hops.append([e, r, t])
            e = t
        if e != example.answer:
            return None
        return {"bridges": [f[2] for f in hops[:-1]], "atomic": hops}

    # -- lens targets -----------------------------------------------------------------
    def _target_token(self, example: Example, which: str) -> str | None:
        prompt = example.input_tokens
        if which in self.positions:
            i = self.positions.index(which)
            if i >= len(prompt):
                raise TaskSchemaError(f"{example.input_text} has no {which}; pass inferred facts")
            return prompt[i]
        if which in self.lens_targets and which.startswith("bridge"):
            k = int(which[6:] or 1) - 1
            bridges = (example.provenance or {}).get("bridges")
            if not bridges or k >= len(bridges):
                raise TaskSchemaError(f"{example.input_text} has no {which} in its provenance; pass inferred facts")
            return bridges[k]
        return None

    # -- counterfactuals and interchange sources ---------------------------------------
    def candidates(self, kg: CompositionGraph, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[Candidate]:
        """``h``: other heads with relation ``r1``; ``rI``: the other relations of the entity before hop I."""
        i = self.swap_position(swap)
        h, rels = prompt[0], prompt[1:]
        answer = kg.follow(h, rels)
        out: list[Candidate] = []
        if i == 0:
            for h2 in kg.heads_with(rels[0]):
                t = kg.follow(h2, rels, id_only=id_only)
                if h2 != h and t is not None and t != answer:
                    out.append(((h2, *rels), t))
            return out
        start = kg.follow(h, rels[: i - 1])
        for r in [] if start is None else kg.relations_of(start):
            if r == rels[i - 1]:
                continue
            new = rels[: i - 1] + (r,) + rels[i:]
            t = kg.follow(h, new, id_only=id_only)
            if t is not None and t != answer:
                out.append(((h, *new), t))
        return out

    def interchange_sources(self, kg: CompositionGraph, example: Example, target: str) -> list[Candidate]:
        """``bridge``: for ``<h><r1><r2>..`` (bridge ``b``, answer ``t``), every ``<h'><r1'><r2>..`` from ID
        facts whose bridge ``b' != b`` leads by ``r2..`` to ``t' != t``."""
        self.intermediate(target)
        h, r1, rest = example.input_tokens[0], example.input_tokens[1], example.input_tokens[2:]
        b, t = kg.tail(h, r1), example.answer
        found: list[Candidate] = []
        for h2, r1b, b2 in kg.id_facts:
            if b2 == b or (h2, r1b) == (h, r1):
                continue
            t2 = kg.follow(b2, rest, id_only=True)
            if t2 is not None and t2 != t:
                found.append(((h2, r1b, *rest), t2))
        return found


__all__ = ["CompositionSchema", "n_hops_of"]
