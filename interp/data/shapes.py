"""What a record and a graph of each task look like in the paper's layout, and what breaks the rule.

A record's prompt must have its task's shape, token by token (the roles come from the token
names, :func:`~interp.data.vocab.token_role`); its answer must have the role the shape gives
it; its ``type``, where it is one of the layout's (:data:`SPLIT_OF_TYPE`, ``atomic``,
``inferred``), must agree with the shape (atomic fact or inferred query); and its
``provenance``, where present, must hold what the task's provenance holds.
:func:`record_problem` and :func:`graph_problem` say, in one line, what is wrong, or None;
:func:`interp.data.paper.load_dataset` turns that line into an error at ``path:line``.
"""

from __future__ import annotations

from typing import Any

from interp.data.records import ANSWER_CLOSE, Example
from interp.data.tasks import SCHEMAS, TaskSchema
from interp.data.vocab import TOKEN_NAMES, Vocab, token_role

SPLIT_OF_TYPE = {
    "id_atomic": "id_atomic",
    "ood_atomic": "ood_atomic",
    "train_inferred": "train_inferred",
    "train_inferred_topleft": "train_inferred",  # complex task, paper's names
    "train_inferred_cross": "train_inferred",
    "test_inferred_iid": "test_id",
    "test_inferred_ood": "test_ood",
    "test_hard": "test_ood",  # complex task: its OOD test is the hard queries
}
"""Where a ``test.json`` record goes, by its ``type``."""

_SHAPES: dict[str, tuple[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]]] = {
    # task: ((atomic prompt, answer role), (inferred prompt, answer role)); "+" repeats the last role
    "composition": ((("entity", "relation"), "entity"), (("entity", "relation", "+"), "entity")),
    "comparison": ((("entity", "attribute"), "value"), (("attribute", "<q>", "entity", "<mask>", "entity"), "label")),
    "complex": (
        (("<q>", "entity", "attribute", "<mask>", "</q>", "<a>"), "value"),
        (("attribute", "<q>", "entity", "<mask>", "entity", "</q>", "<a>"), "label"),
    ),
}
_WRITTEN = {
    "entity": "<e_N>",
    "relation": "<r_N>",
    "attribute": "<attr_J>",
    "value": "<V>",
    "label": "<attr_J_K>",
    "+": "..",
}
_ATOMIC_TYPES = {"atomic", "id_atomic", "ood_atomic"}
_KNOWN_TYPES = _ATOMIC_TYPES | set(SPLIT_OF_TYPE) | {"inferred"}


def _matches(tokens: tuple[str, ...], shape: tuple[str, ...]) -> bool:
    if shape[-1] == "+":
        return (
            len(tokens) >= len(shape) - 1
            and _matches(tokens[: len(shape) - 1], shape[:-1])
            and all(token_role(t) == shape[-2] for t in tokens[len(shape) - 1 :])
        )
    return len(tokens) == len(shape) and all(
        t == want if want.startswith("<") else token_role(t) == want for t, want in zip(tokens, shape)
    )


def _schema_class(task: str) -> type[TaskSchema]:
    return next(cls for cls in SCHEMAS.values() if cls.task == task)


def record_problem(task: str, example: Example) -> str | None:
    """What makes ``example`` no record of ``task`` (its shape, its answer, its type); None if it is one."""
    if task not in _SHAPES:  # a task whose schema checks its own records
        return _schema_class(task).record_problem(example)
    if len(example.target_tokens) != 2:
        return f"target_text must be input_text, one answer token, then {ANSWER_CLOSE}; got {example.target_text!r}"
    (atomic, a_role), (inferred, i_role) = _SHAPES[task]
    prompt = example.input_tokens
    is_atomic = _matches(prompt, atomic)
    if not is_atomic and not _matches(prompt, inferred):
        shapes = " or ".join("".join(t if t.startswith("<") else _WRITTEN[t] for t in s) for s in (atomic, inferred))
        return f"{example.input_text} is not a {task} prompt ({shapes}; token names: {TOKEN_NAMES})"
    want = a_role if is_atomic else i_role
    if token_role(example.answer) != want:
        return f"the answer {example.answer} of {example.input_text} is not {'an' if want[0] in 'aeiou' else 'a'} {want} token ({_WRITTEN[want]})"
    if want == "label":
        attribute = next(t for t in prompt if token_role(t) == "attribute")
        if example.answer.rsplit("_", 1)[0] != attribute[:-1]:
            return f"the label {example.answer} of {example.input_text} is not one of {attribute}"
    if example.type in _KNOWN_TYPES and (example.type in _ATOMIC_TYPES) != is_atomic:
        kind = "an atomic fact" if is_atomic else "an inferred query"
        return f"type {example.type!r} does not fit {example.input_text}, which is {kind}"
    prov = example.provenance
    if prov is not None and not is_atomic:
        key, n, role = ("bridges", len(prompt) - 2, "entity") if task == "composition" else ("values", 2, None)
        got = prov.get(key)
        ok = (
            isinstance(got, list)
            and len(got) == n
            and all(token_role(x) == role if role else isinstance(x, int) and not isinstance(x, bool) for x in got)
        )
        if key in prov and not ok:
            what = f"{n} {_WRITTEN[role]} tokens" if role else f"{n} integers"
            return f"provenance {key} of {example.input_text} must be a list of {what}; got {got!r}"
    return None


def _is_str_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(t, str) for t in x)


def graph_problem(task: str, graph: Any, vocab: Vocab) -> str | None:
    """What makes ``graph`` (a ``graph.json``) no graph of ``task``; None if it is one."""
    if not isinstance(graph, dict):
        return "expected a JSON object"
    if task not in _SHAPES:
        return _schema_class(task).graph_problem(graph, vocab)
    if task == "composition":
        facts = graph.get("atomic")
        if not isinstance(facts, list):
            return 'a composition graph needs "atomic": [[h, r, t, is_ood], ...]'
        for i, f in enumerate(facts):
            ok = isinstance(f, list) and len(f) == 4 and _is_str_list(f[:3]) and isinstance(f[3], bool)
            if (
                not ok
                or [token_role(t) for t in f[:3]] != ["entity", "relation", "entity"]
                or any(t not in vocab for t in f[:3])
            ):
                return f"atomic fact {i} = {f!r} is not [<e_N>, <r_N>, <e_N>, true/false] of vocab.json"
        return None
    ents, attrs, values, ood = (graph.get(k) for k in ("entities", "attributes", "values", "ood_entities"))
    if not (_is_str_list(ents) and _is_str_list(attrs) and isinstance(values, list) and isinstance(ood, dict)):
        return f'a {task} graph needs "entities", "attributes" (lists of tokens), "values" and "ood_entities"'
    for what, toks, role in (("entities", ents, "entity"), ("attributes", attrs, "attribute")):
        bad = [t for t in toks if token_role(t) != role or t not in vocab]
        if bad or len(set(toks)) != len(toks):
            return f"{what} must be distinct {_WRITTEN[role]} tokens of vocab.json; got {(bad or toks)[0]!r}"
    if len(values) != len(ents) or any(not isinstance(row, list) or len(row) != len(attrs) for row in values):
        return f"values must be {len(ents)} rows (entities) of {len(attrs)} values (attributes)"
    if any(
        v is not None and (isinstance(v, bool) or not isinstance(v, int) or f"<{v}>" not in vocab)
        for row in values
        for v in row
    ):
        return "every value must be null or an integer whose <V> token is in vocab.json"
    for a, es in ood.items():
        if a not in attrs or not _is_str_list(es) or any(e not in ents for e in es):
            return f"ood_entities must map attributes to lists of the graph's entities; got {a!r}: {es!r}"
    return None


__all__ = ["SPLIT_OF_TYPE", "graph_problem", "record_problem"]
