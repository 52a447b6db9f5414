"""The comparison schema: ``<attr><q><e1><mask><e2>`` -> ``<attr_j_k>``, the order of two attribute values.

Positions ``attr q e1 mask e2``. A counterfactual swaps ``e1``, ``e2`` (for another
entity) or ``attr`` (for another attribute) so that the label ``k`` of ``v1`` against
``v2`` flips. Lens targets: ``attr``, ``e1``, ``e2``, the ``answer`` and the two values
``v1``, ``v2`` (from the example's provenance). Circuit formation follows ``S[l, e1]``
(``v1``) and ``S[l, e2]`` (``v2``); those are the intermediates to localise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from interp.data.graphs import AttributeGraph, compare
from interp.data.records import Example
from interp.data.tasks.base import Candidate, Intermediate, KeyState, TaskSchema, TaskSchemaError
from interp.data.vocab import Vocab


def label_token(attribute: str, k: int) -> str:
    """``<attr_j>`` and label index ``k`` -> ``<attr_j_k>``."""
    return f"<{attribute[1:-1]}_{k}>"


class ComparisonSchema(TaskSchema):
    """Attribute comparison of two entities."""

    name = "comparison"
    task = "comparison"
    graph_type = AttributeGraph
    positions = ("attr", "q", "e1", "mask", "e2")
    swaps = ("e1", "e2", "attr")
    lens_targets = ("answer", "attr", "e1", "e2", "v1", "v2")
    report_targets = ("v1", "v2", "answer")
    key_states = {"e1": KeyState(2, "v1", "e1"), "e2": KeyState(4, "v2", "e2")}
    intermediates = {"v1": Intermediate(2, ("e1",)), "v2": Intermediate(4, ("e2",))}

    # -- records and the graph --------------------------------------------------------
    def is_atomic(self, example: Example) -> bool:
        """A comparison record is atomic when it names one entity (``<e_N><attr_J>``)."""
        return sum(t.startswith("<e_") for t in example.input_tokens) == 1

    def rebuild_graph(self, vocab: Vocab, atomic: Sequence[tuple[Example, str]]) -> dict[str, Any]:
        """Values from the atomic records; an entity is OOD for an attribute if it is an ``ood_atomic`` probe.

        A record without one entity, one attribute and a ``<value>`` answer, or two records giving
        one (entity, attribute) two values, is a :class:`TaskSchemaError`.
        """
        entities = [t for t in vocab.tokens if re.fullmatch(r"<e_\d+>", t)]
        attributes = [t for t in vocab.tokens if re.fullmatch(r"<attr_\d+>", t)]
        e_index = {e: i for i, e in enumerate(entities)}
        a_index = {a: j for j, a in enumerate(attributes)}
        values: list[list[int | None]] = [[None] * len(attributes) for _ in entities]
        ood: dict[str, list[str]] = {a: [] for a in attributes}
        for ex, kind in atomic:
            es = [tok for tok in ex.input_tokens if tok in e_index]
            attrs = [tok for tok in ex.input_tokens if tok in a_index]
            value = ex.answer[1:-1]
            if len(es) != 1 or len(attrs) != 1 or not value.isdecimal() or not value.isascii():
                raise TaskSchemaError(f"{ex.target_text} is no atomic fact (one entity, one attribute, a <value>)")
            (e,), (a,) = es, attrs
            old = values[e_index[e]][a_index[a]]
            if old is not None and old != int(value):
                raise TaskSchemaError(f"two atomic facts disagree: {e}{a} -> <{old}> and -> {ex.answer}")
            values[e_index[e]][a_index[a]] = int(value)
            if kind == "ood_atomic" and e not in ood[a]:
                ood[a].append(e)
        ood = {a: sorted(es, key=e_index.__getitem__) for a, es in ood.items()}
        return {"entities": entities, "attributes": attributes, "values": values, "ood_entities": ood}

    def provenance(self, kg: AttributeGraph, example: Example) -> dict[str, Any] | None:
        """``{"values": [v1, v2], "atomic": [[e1, attr, <v1>], [e2, attr, <v2>]]}`` when both values are known."""
        attr, _, e1, _, e2 = example.input_tokens[:5]
        v1, v2 = kg.known_value(e1, attr), kg.known_value(e2, attr)
        if v1 is None or v2 is None:
            return None
        return {"values": [v1, v2], "atomic": [[e1, attr, f"<{v1}>"], [e2, attr, f"<{v2}>"]]}

    # -- lens targets -----------------------------------------------------------------
    def _target_token(self, example: Example, which: str) -> str | None:
        if which in ("attr", "e1", "e2"):
            return example.input_tokens[self.position(which)]
        if which in ("v1", "v2"):
            values = (example.provenance or {}).get("values")
            if not values:
                raise TaskSchemaError(f"{example.input_text} has no values in its provenance; pass comparison queries")
            return f"<{values[0 if which == 'v1' else 1]}>"
        return None

    # -- counterfactuals and interchange sources ---------------------------------------
    def candidates(self, kg: AttributeGraph, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[Candidate]:
        """``e1`` / ``e2``: every other entity; ``attr``: every other attribute; where the label changes."""
        self.swap_position(swap)
        a, q, e1, mask, e2 = prompt[:5]
        tail = prompt[5:]
        k = kg.label(a, e1, e2)
        out: list[Candidate] = []

        def add(a2: str, x: str, y: str) -> None:
            if id_only and (kg.is_ood(x, a2) or kg.is_ood(y, a2)):
                return
            k2 = kg.label(a2, x, y)
            if k2 is not None and k2 != k:
                out.append(((a2, q, x, mask, y, *tail), label_token(a2, k2)))

        if swap == "e1":
            for x in kg.entities:
                if x not in (e1, e2):
                    add(a, x, e2)
        elif swap == "e2":
            for y in kg.entities:
                if y not in (e1, e2):
                    add(a, e1, y)
        else:
            for a2 in kg.attributes:
                if a2 != a:
                    add(a2, e1, e2)
        return out

    def interchange_sources(self, kg: AttributeGraph, example: Example, target: str) -> list[Candidate]:
        """``v1`` (``v2``): ``e1`` (``e2``) replaced by an ID entity whose value under ``attr`` changes the label."""
        self.intermediate(target)
        a, q, e1, mask, e2 = example.input_tokens[:5]
        tail = example.input_tokens[5:]
        v1, v2 = kg.value(e1, a), kg.value(e2, a)
        k = compare(v1, v2)
        found: list[Candidate] = []
        for e in kg.entities:
            if e in (e1, e2) or kg.is_ood(e, a):
                continue
            v = kg.value(e, a)
            k2 = compare(v, v2) if target == "v1" else compare(v1, v)
            if k2 != k:
                prompt = (a, q, e, mask, e2) if target == "v1" else (a, q, e1, mask, e)
                found.append(((*prompt, *tail), label_token(a, k2)))
        return found


__all__ = ["ComparisonSchema", "label_token"]
