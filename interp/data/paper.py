"""Reading a dataset directory: ours (``KGDataset.save``) or the one the paper's notebooks write.

The paper's layout is ``train.json``, ``valid.json`` (repeats the OOD test), ``test.json``
(the probe splits, told apart by each record's ``type``) and ``vocab.json``; records are
``{"input_text", "target_text", "type"}`` with ``target_text = input_text + answer +
"</a>"``. Ours adds ``config.json`` (task and data config), ``graph.json`` (the full
knowledge graph) and a ``provenance`` key on records. Without our files the task is told
from the tokens, the graph is rebuilt from the atomic facts in the files and the
provenance of inferred facts is filled in from it; what is atomic, how the graph is
rebuilt and what a provenance holds are the task schema's (:mod:`interp.data.tasks`).

Token names follow the paper (:func:`~interp.data.vocab.token_role`): ``<e_N>`` entities,
``<r_N>`` relations, ``<attr_N>`` attributes, ``<attr_N_K>`` labels (``K`` 0, 1 or 2),
``<N>`` values and the specials (``<mask> <sep> <a> </a> <q> </q> <pad>``); the roles of a
record's tokens come from their names, so every record must have its task's shape
(:mod:`interp.data.shapes`):

* composition: ``<e_N><r_N>`` -> ``<e_N>`` (atomic), ``<e_N><r_N>..<r_N>`` -> ``<e_N>`` with
  the same number of relations in every inferred record;
* comparison: ``<e_N><attr_J>`` -> ``<V>``, ``<attr_J><q><e_N><mask><e_M>`` -> ``<attr_J_K>``;
* complex: ``<q><e_N><attr_J><mask></q>`` -> ``<a><V>``,
  ``<attr_J><q><e_N><mask><e_M></q>`` -> ``<a><attr_J_K>``;

and a record's ``type`` must agree with its shape (``id_atomic`` / ``ood_atomic`` /
``atomic`` are atomic facts, every other type an inferred one). A dataset outside these
rules is refused, never half read: every error is one line naming ``path:line`` of the
record (or the file) at fault.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from interp.data.config import DataConfig, config_from_dict
from interp.data.dataset import PROBE_SPLITS, SPLITS, KGDataset
from interp.data.graphs import KnowledgeGraph
from interp.data.records import ANSWER_CLOSE, ANSWER_OPEN, Example
from interp.data.shapes import SPLIT_OF_TYPE, graph_problem, record_problem
from interp.data.tasks import TaskSchema, TaskSchemaError, known_tasks, schema_for
from interp.data.vocab import TOKEN_NAMES, Vocab, split_tokens, token_role
from interp.errors import ConfigError, DatasetFormatError
from interp.io import read_json, read_text

_WS = re.compile(r"\s*")


def read_json_list(path: Path) -> list[tuple[int, Any]]:
    """Parse a JSON list, returning ``(line, item)`` pairs; errors name ``path:line``."""
    text = read_text(path, DatasetFormatError)
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    line, seen = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, seen
        line += text.count("\n", seen, pos)
        seen = pos
        return line

    i = _WS.match(text, 0).end()
    if not text.startswith("[", i):
        raise DatasetFormatError(f"{path}:{line_at(i)}: expected a JSON list of records")
    i = _WS.match(text, i + 1).end()
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            try:
                item, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError as err:
                msg = f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno})"
                raise DatasetFormatError(msg) from None
            except RecursionError:
                raise DatasetFormatError(f"{path}:{line_at(i)}: nested too deeply to be a record") from None
            items.append((line_at(i), item))
            i = _WS.match(text, end).end()
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()
                continue
            if text.startswith("]", i):
                i += 1
                break
            raise DatasetFormatError(f"{path}:{line_at(i)}: not valid JSON (expected ',' or ']' after a record)")
    if _WS.match(text, i).end() != len(text):
        raise DatasetFormatError(f"{path}:{line_at(i)}: not valid JSON (extra data after the list)")
    return items


def _parse_record(path: Path, line: int, k: int, rec: Any, vocab: Vocab, need_type: bool) -> Example:
    where = f"{path}:{line}: record {k}"
    if not isinstance(rec, dict):
        raise DatasetFormatError(f"{where}: expected an object with input_text and target_text")
    for key in ("input_text", "target_text"):
        if key not in rec:
            raise DatasetFormatError(f"{where}: missing {key}")
        if not isinstance(rec[key], str):
            raise DatasetFormatError(f"{where}: {key} must be a string")
    inp, tgt = rec["input_text"], rec["target_text"]
    if not inp:
        raise DatasetFormatError(f"{where}: input_text is empty")
    if not tgt.startswith(inp):
        raise DatasetFormatError(f"{where}: target_text does not start with input_text")
    if not tgt.endswith(ANSWER_CLOSE):
        raise DatasetFormatError(f"{where}: target_text does not end with {ANSWER_CLOSE}")
    try:
        prompt = split_tokens(inp)
        target = split_tokens(tgt[len(inp) :])
    except DatasetFormatError as err:
        raise DatasetFormatError(f"{where}: {err}") from None
    if target and target[0] == ANSWER_OPEN:  # complex task: <a> closes the prompt in memory
        prompt, target = prompt + [ANSWER_OPEN], target[1:]
    if len(target) < 2:
        raise DatasetFormatError(f"{where}: target_text has no answer between input_text and {ANSWER_CLOSE}")
    for tok in prompt + target:
        if tok not in vocab:
            raise DatasetFormatError(f"{where}: unknown token {tok!r} (not in vocab.json, {len(vocab)} tokens)")
    rtype = rec.get("type")
    if rtype is None and need_type:
        raise DatasetFormatError(f"{where}: missing type (one of {', '.join(SPLIT_OF_TYPE)})")
    if rtype is not None and not isinstance(rtype, str):
        raise DatasetFormatError(f"{where}: type must be a string")
    prov = rec.get("provenance")
    if prov is not None and not isinstance(prov, dict):
        raise DatasetFormatError(f"{where}: provenance must be an object or null")
    return Example(tuple(prompt), tuple(target), rtype or "", prov)


def _read_examples(path: Path, vocab: Vocab, need_type: bool) -> list[tuple[int, Example]]:
    return [
        (line, _parse_record(path, line, k, rec, vocab, need_type))
        for k, (line, rec) in enumerate(read_json_list(path))
    ]


def load_dataset(directory: str | Path) -> KGDataset:
    """Read a dataset directory written by :meth:`KGDataset.save` or by the paper's notebooks.

    Without ``config.json`` the task is inferred from the tokens (``<r_*>``: composition;
    ``<attr_*>``: comparison, or complex when prompts use ``<q>...</q>``) and ``config`` is
    None; without ``graph.json`` the graph is rebuilt from the atomic facts present (train
    and probes; a composition fact is OOD if it appears as an ``ood_atomic`` probe). For
    the complex task, ``test_hard`` records form ``test_ood`` and the paper's other
    ``test_inferred_ood`` probes are dropped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetFormatError(f"dataset directory {directory} does not exist")
    vocab_path = directory / "vocab.json"
    tokens = []
    for line, tok in read_json_list(vocab_path):
        if not isinstance(tok, str):
            raise DatasetFormatError(f"{vocab_path}:{line}: vocab entries must be strings; got {tok!r}")
        tokens.append((line, tok))
    try:
        vocab = Vocab(tok for _, tok in tokens)
    except DatasetFormatError as err:
        raise DatasetFormatError(f"{vocab_path}: {err}") from None
    for line, tok in tokens:
        if token_role(tok) is None:
            raise DatasetFormatError(
                f"{vocab_path}:{line}: token {tok!r} has no name grokscope reads; use {TOKEN_NAMES}"
            )

    train = _read_examples(directory / "train.json", vocab, need_type=False)
    test = _read_examples(directory / "test.json", vocab, need_type=True)
    files = {"train.json": train, "test.json": test}
    if (directory / "valid.json").exists():  # checked, not kept: it repeats test_ood
        files["valid.json"] = _read_examples(directory / "valid.json", vocab, need_type=False)

    config: DataConfig | None = None
    config_path = directory / "config.json"
    if config_path.exists():
        meta = read_json(config_path, DatasetFormatError, what="dataset config")
        if not isinstance(meta, dict) or meta.get("task") not in known_tasks():
            raise DatasetFormatError(f"{config_path}: needs a task of {', '.join(known_tasks())}")
        task = meta["task"]
        if meta.get("config") is not None:
            if not isinstance(meta["config"], dict):
                raise DatasetFormatError(f'{config_path}: "config" must be a mapping of data fields or null')
            try:
                config = config_from_dict(meta["config"])
            except ConfigError as err:
                raise DatasetFormatError(f"{config_path}: {err}") from None
    else:
        task = _infer_task(vocab_path, vocab, [ex for _, ex in train + test])
        if task not in known_tasks():
            raise DatasetFormatError(
                f"{vocab_path}: the tokens name a {task} dataset, which no registered schema reads"
            )
    for name, records in files.items():
        for line, ex in records:
            problem = record_problem(task, ex)
            if problem is not None:
                raise DatasetFormatError(f"{directory / name}:{line}: {problem}")

    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    has_hard = any(ex.type == "test_hard" for _, ex in test)
    for line, ex in test:
        if ex.type not in SPLIT_OF_TYPE:
            raise DatasetFormatError(
                f"{directory / 'test.json'}:{line}: unknown type {ex.type!r}; known: {', '.join(SPLIT_OF_TYPE)}"
            )
        if has_hard and ex.type == "test_inferred_ood":
            continue
        splits[SPLIT_OF_TYPE[ex.type]].append(ex)
    splits["train"] = [ex for _, ex in train]
    try:
        schema = schema_for(task, config, splits)
    except TaskSchemaError as err:
        raise DatasetFormatError(f"{directory}: {err}") from None
    n_prompt = schema.n_pos  # every inferred prompt has the schema's positions (k-hop: the same k)
    # ... or, with depth extrapolation (min_hops), 1 + each trained depth min_hops .. n_hops
    lengths = {n_prompt} | {
        1 + d for d in range(getattr(config, "min_hops", None) or 0, getattr(config, "n_hops", 0) + 1)
    }
    for name, records in files.items():
        for line, ex in records:
            if not schema.is_atomic(ex) and len(ex.input_tokens) not in lengths:
                raise DatasetFormatError(
                    f"{directory / name}:{line}: {ex.input_text} has {len(ex.input_tokens)} tokens; "
                    f"every inferred prompt of this {schema.label} dataset has {n_prompt} ({' '.join(schema.positions)})"
                )
    original_types = [ex.type for _, ex in train]
    splits["train"] = [_train_example(ex, schema) for ex in splits["train"]]

    graph_path = directory / "graph.json"
    if graph_path.exists():
        graph = read_json(graph_path, DatasetFormatError, what="graph")
        problem = graph_problem(task, graph, vocab)
        if problem is not None:
            raise DatasetFormatError(f"{graph_path}: {problem}")
        return KGDataset(task, config, vocab, splits, graph)
    records = list(zip(splits["train"], original_types))
    records += [(ex, ex.type) for name in PROBE_SPLITS for ex in splits[name]]
    try:
        graph = schema.rebuild_graph(vocab, [(ex, kind) for ex, kind in records if schema.is_atomic(ex)])
    except TaskSchemaError as err:
        raise DatasetFormatError(f"{directory}: {err}") from None
    dataset = KGDataset(task, config, vocab, splits, graph)
    for name in SPLITS:
        dataset.splits[name] = [with_provenance(schema, dataset.kg, ex) for ex in dataset.splits[name]]
    return dataset


def _train_example(ex: Example, schema: TaskSchema) -> Example:
    """Train records are typed ``atomic`` / ``inferred`` (the paper leaves them untyped or uses probe names)."""
    if ex.type in ("atomic", "inferred"):
        return ex
    return dataclasses.replace(ex, type="atomic" if schema.is_atomic(ex) else "inferred")


def _infer_task(vocab_path: Path, vocab: Vocab, examples: list[Example]) -> str:
    if any(t.startswith("<op_") for t in vocab.tokens):
        return "algorithmic"
    if any(t.startswith("<r_") for t in vocab.tokens):
        return "composition"
    if any(t.startswith("<attr_") for t in vocab.tokens):
        if any(ex.input_tokens[0] == "<q>" or ex.type == "test_hard" for ex in examples):
            return "complex"
        return "comparison"
    raise DatasetFormatError(
        f"{vocab_path}: cannot tell the task: no <r_N> relation, <attr_N> attribute or <op_NAME> operator tokens"
    )


def with_provenance(schema: TaskSchema, kg: KnowledgeGraph, example: Example) -> Example:
    """``example`` with its provenance filled in from the graph, where it has none and the graph has every fact
    it needs."""
    if example.provenance is not None or schema.is_atomic(example):
        return example
    prov = schema.provenance(kg, example)
    return example if prov is None else dataclasses.replace(example, provenance=prov)


__all__ = ["load_dataset", "read_json_list", "with_provenance"]
