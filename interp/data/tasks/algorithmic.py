"""The algorithmic schema: ``<a><b><op>`` -> ``a o b``, a binary operation's table.

Positions ``a b op`` (the operator token is Nanda's ``=``: the answer is read there). A
counterfactual swaps ``a`` (or ``b``) for another element whose result differs; with
``id_only`` the new pair is a training pair. Lens targets: the ``answer`` and the operands.
Circuit formation follows the state at ``op`` (the answer, changed by swapping ``a``).
There are no atomic facts and no intermediate variable: the algorithm is read with the
Fourier tools of :mod:`interp.progress` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interp.data.operations import OPERATIONS, OperationTable, element, operator_token
from interp.data.records import ANSWER_CLOSE, Example
from interp.data.tasks.base import Candidate, KeyState, TaskSchema, TaskSchemaError
from interp.data.vocab import Vocab, token_role


class AlgorithmicSchema(TaskSchema):
    """A binary operation ``a o b`` (modular arithmetic, S5 composition)."""

    name = "algorithmic"
    task = "algorithmic"
    graph_type = OperationTable

    positions = ("a", "b", "op")
    swaps = ("a", "b")
    lens_targets = ("answer", "a", "b")
    report_targets = ("answer",)
    key_states = {"op": KeyState(2, "answer", "a")}

    def is_atomic(self, example: Example) -> bool:
        """No record of an operation table is an atomic fact."""
        return False

    def rebuild_graph(self, vocab: Vocab, atomic: Sequence[tuple[Example, str]]) -> dict[str, Any]:
        """Refused: the training pairs are only known from ``graph.json``."""
        raise TaskSchemaError("an algorithmic dataset needs its graph.json (the operation and its training pairs)")

    def provenance(self, kg: OperationTable, example: Example) -> dict[str, Any] | None:
        """``{"operands": [a, b]}``."""
        return {"operands": [element(example.input_tokens[0]), element(example.input_tokens[1])]}

    def _target_token(self, example: Example, which: str) -> str | None:
        return {"a": example.input_tokens[0], "b": example.input_tokens[1]}.get(which)

    def candidates(self, kg: OperationTable, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[Candidate]:
        """Prompts with operand ``swap`` replaced by every other element that changes the result."""
        position = self.swap_position(swap)
        a, b = element(prompt[0]), element(prompt[1])
        answer = kg.answer(a, b)
        out: list[Candidate] = []
        for x in range(kg.n):
            pair = (x, b) if position == 0 else (a, x)
            result = kg.answer(*pair)
            if result is None or result == answer or (id_only and pair not in kg.train_pairs):
                continue
            new = list(prompt)
            new[position] = f"<{x}>"
            out.append((tuple(new), f"<{result}>"))
        return out

    # -- the loader's checks ------------------------------------------------------------
    @staticmethod
    def record_problem(example: Example) -> str | None:
        """What makes ``example`` no record of an operation table; None if it is one."""
        prompt, target = example.input_tokens, example.target_tokens
        roles = [token_role(t) for t in prompt]
        if roles != ["value", "value", "operator"]:
            return f"{example.input_text} is not an algorithmic prompt (<a><b><op_NAME>, a and b element tokens <N>)"
        if len(target) != 2 or token_role(target[0]) != "value" or target[1] != ANSWER_CLOSE:
            return f"target_text must be input_text, one element token <N>, then {ANSWER_CLOSE}; got {example.target_text!r}"
        return None

    @staticmethod
    def graph_problem(graph: Any, vocab: Vocab) -> str | None:
        """What makes ``graph`` no graph of an algorithmic dataset; None if it is one."""
        if not isinstance(graph, Mapping):
            return "expected a JSON object"
        operation, modulus, pairs = graph.get("operation"), graph.get("modulus"), graph.get("train_pairs")
        if operation not in OPERATIONS:
            return f"operation must be one of {', '.join(OPERATIONS)}; got {operation!r}"
        if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
            return f"modulus must be an integer >= 2; got {modulus!r}"
        if operator_token(operation) not in vocab:
            return f"vocab.json has no {operator_token(operation)} token for operation {operation}"
        n = OperationTable(operation, modulus, []).n
        ok = isinstance(pairs, list) and all(
            isinstance(p, list) and len(p) == 2 and all(type(x) is int and 0 <= x < n for x in p) for p in pairs
        )
        return None if ok else f"train_pairs must be a list of [a, b] with 0 <= a, b < {n}"


__all__ = ["AlgorithmicSchema"]
