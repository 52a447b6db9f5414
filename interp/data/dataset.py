"""Examples, the dataset container, token batches, and the paper's JSON layout.

A dataset directory holds what the paper's notebooks write (``train.json``, ``valid.json``,
``test.json``, ``vocab.json``; records ``{"input_text", "target_text", "type"}`` with
``target_text = input_text + answer + "</a>"``) plus ours: ``config.json``, ``graph.json``
and a ``provenance`` key on records where it is known (the paper's loader ignores it).
``test.json`` holds the probe splits, told apart by each record's ``type``.

Every JSON list is written one record per line, so ``path:line`` in an error message
points at the record; every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.configs import to_dict
from interp.data.config import DataConfig, config_from_dict
from interp.data.vocab import PAD, Vocab, split_tokens
from interp.errors import ConfigError, DatasetFormatError, GrokscopeError
from interp.io import atomic_write_text

SPLITS = ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")
"""Split names, in order; the trainer uses them as metric keys."""

PROBE_SPLITS = SPLITS[1:]

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

class UnknownSplitError(GrokscopeError, KeyError):
    """A split name that the dataset does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


ANSWER_OPEN = "<a>"
ANSWER_CLOSE = "</a>"


@dataclass(frozen=True)
class Example:
    """One record: a prompt and its target (the answer token, then ``</a>``).

    The complex task's prompts end in ``<a>`` (the paper writes ``...</q><a><label></a>``);
    in files ``<a>`` opens ``target_text`` as in the paper, in memory it closes the prompt,
    so the first target token is always the answer.
    """

    input_tokens: tuple[str, ...]
    target_tokens: tuple[str, ...]
    type: str
    provenance: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def answer(self) -> str:
        return self.target_tokens[0]

    @property
    def input_text(self) -> str:
        return "".join(self.input_tokens)

    @property
    def target_text(self) -> str:
        return "".join(self.input_tokens + self.target_tokens)

    def to_record(self) -> dict[str, Any]:
        """The paper's record (``input_text``, ``target_text``, ``type``) plus ``provenance``."""
        prompt = self.input_tokens
        if prompt and prompt[-1] == ANSWER_OPEN:
            prompt = prompt[:-1]
        record: dict[str, Any] = {
            "input_text": "".join(prompt),
            "target_text": self.target_text,
            "type": self.type,
        }
        if self.provenance is not None:
            record["provenance"] = self.provenance
        return record


@dataclass
class TokenBatch:
    """Right-padded token ids of a split, with where the prompt ends and where the loss applies.

    ``loss_mask[b, p]`` is True where the prediction at ``p`` (of ``tokens[b, p + 1]``) is a
    target token; the answer is predicted at ``answer_pos = prompt_len - 1``.
    """

    tokens: Int[Tensor, "batch pos"]
    prompt_len: Int[Tensor, "batch"]
    answer: Int[Tensor, "batch"]
    loss_mask: Bool[Tensor, "batch pos"]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def answer_pos(self) -> Int[Tensor, "batch"]:
        return self.prompt_len - 1

    def to(self, device: torch.device | str | None) -> TokenBatch:
        return TokenBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))

    def __getitem__(self, index: int | slice | list[int] | Tensor) -> TokenBatch:
        """Rows ``index`` (a slice, index tensor or list; an int gives a batch of one)."""
        if isinstance(index, int):
            index = [index]
        return TokenBatch(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def make_batch(examples: list[Example], vocab: Vocab, device: torch.device | str | None = None) -> TokenBatch:
    """Encode ``examples`` into a :class:`TokenBatch` padded to the longest one."""
    rows = [vocab.encode(ex.input_tokens + ex.target_tokens) for ex in examples]
    n_prompt = [len(ex.input_tokens) for ex in examples]
    n_target = [len(ex.target_tokens) for ex in examples]
    width = max(map(len, rows), default=0)
    pad = vocab.pad_id
    tokens = np.array([r + [pad] * (width - len(r)) for r in rows], dtype=np.int64).reshape(len(rows), width)
    prompt_len = np.array(n_prompt, dtype=np.int64)
    target_len = np.array(n_target, dtype=np.int64)
    pos = np.arange(width)[None, :]
    loss_mask = (pos >= prompt_len[:, None] - 1) & (pos <= (prompt_len + target_len - 2)[:, None])
    answer = tokens[np.arange(len(rows)), prompt_len] if rows else np.zeros(0, dtype=np.int64)
    batch = TokenBatch(
        tokens=torch.from_numpy(tokens),
        prompt_len=torch.from_numpy(prompt_len),
        answer=torch.from_numpy(np.ascontiguousarray(answer)),
        loss_mask=torch.from_numpy(loss_mask),
    )
    return batch if device is None else batch.to(device)


class KGDataset:
    """A generated (or loaded) knowledge-graph dataset: splits of examples, vocab and graph.

    ``graph`` holds the full knowledge graph as plain JSON data: for composition
    ``{"atomic": [[h, r, t, is_ood], ...]}``; for comparison and complex
    ``{"entities", "attributes", "values": [[value per attribute] per entity],
    "ood_entities": {attribute: [entity, ...]}}`` (a value is None where unknown).
    """

    def __init__(
        self,
        task: str,
        config: DataConfig | None,
        vocab: Vocab,
        splits: dict[str, list[Example]],
        graph: dict[str, Any],
    ):
        if sorted(splits) != sorted(SPLITS):
            raise DatasetFormatError(f"a dataset needs exactly the splits {', '.join(SPLITS)}; got {', '.join(splits)}")
        self.task = task
        self.config = config
        self.vocab = vocab
        self.splits = {name: splits[name] for name in SPLITS}
        self.graph = graph
        self._facts: dict[tuple[str, str], tuple[str, bool]] | None = None
        self._relations: dict[str, list[str]] | None = None
        self._values: dict[tuple[str, str], int | None] | None = None
        self._ood: dict[str, set[str]] | None = None

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"KGDataset(task={self.task!r}, vocab={len(self.vocab)}, {sizes})"

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(examples) for name, examples in self.splits.items()}

    def examples(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise UnknownSplitError(f"unknown split {split!r}; splits: {', '.join(self.splits)}")
        return self.splits[split]

    def batch(self, split: str, device: torch.device | str | None = None) -> TokenBatch:
        """All of ``split`` as one :class:`TokenBatch`."""
        return make_batch(self.examples(split), self.vocab, device)

    # -- lookups in the knowledge graph -------------------------------------------------
    def _composition_facts(self) -> dict[tuple[str, str], tuple[str, bool]]:
        if self.task != "composition":
            raise GrokscopeError(f"this lookup is for composition datasets; this one is {self.task}")
        if self._facts is None:
            self._facts = {(h, r): (t, bool(o)) for h, r, t, o in self.graph["atomic"]}
        return self._facts

    def _attribute_values(self) -> dict[tuple[str, str], int | None]:
        if self.task not in ("comparison", "complex"):
            raise GrokscopeError(f"this lookup is for comparison/complex datasets; this one is {self.task}")
        if self._values is None:
            g = self.graph
            self._values = {
                (e, a): row[j] for e, row in zip(g["entities"], g["values"]) for j, a in enumerate(g["attributes"])
            }
            self._ood = {a: set(es) for a, es in g["ood_entities"].items()}
        return self._values

    def tail(self, h: str, r: str) -> str | None:
        """Composition: the tail t of the atomic fact (h, r, t), or None if h has no relation r."""
        fact = self._composition_facts().get((h, r))
        return None if fact is None else fact[0]

    def relations_of(self, h: str) -> list[str]:
        """Composition: the relations going out of entity ``h`` (in the graph's order)."""
        if self._relations is None:
            self._relations = {}
            for e, r in self._composition_facts():
                self._relations.setdefault(e, []).append(r)
        return list(self._relations.get(h, []))

    def value(self, entity: str, attribute: str) -> int:
        """Comparison/complex: the value of ``attribute`` for ``entity``."""
        v = self._attribute_values().get((entity, attribute))
        if v is None:
            raise GrokscopeError(f"no known value of {attribute} for {entity}")
        return v

    def is_ood(self, a: str, b: str) -> bool:
        """Composition ``is_ood(h, r)``: is fact (h, r, .) OOD. Comparison ``is_ood(entity, attribute)``."""
        if self.task == "composition":
            fact = self._composition_facts().get((a, b))
            if fact is None:
                raise GrokscopeError(f"no atomic fact ({a}, {b}, ?) in the graph")
            return fact[1]
        self._attribute_values()
        assert self._ood is not None
        return a in self._ood.get(b, set())

    # -- files ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the dataset to ``directory`` (paper layout plus config.json and graph.json)."""
        directory = Path(directory)
        probes = [ex for name in PROBE_SPLITS for ex in self.splits[name]]
        texts = {
            "config.json": json.dumps(
                {"task": self.task, "config": None if self.config is None else to_dict(self.config)}, indent=1
            ),
            "vocab.json": _json_lines(self.vocab.tokens),
            "train.json": _json_lines([ex.to_record() for ex in self.splits["train"]]),
            "valid.json": _json_lines([ex.to_record() for ex in self.splits["test_ood"]]),
            "test.json": _json_lines([ex.to_record() for ex in probes]),
            "graph.json": _json_lines(self.graph),
        }
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            atomic_write_text(directory / name, text + "\n")
        return directory


def _json_lines(obj: Any) -> str:
    """JSON with every list of a top-level list or mapping on one line per item."""
    dump = lambda x: json.dumps(x, ensure_ascii=False)  # noqa: E731
    if isinstance(obj, list):
        return "[\n" + ",\n".join(map(dump, obj)) + "\n]" if obj else "[]"
    if isinstance(obj, dict):
        items = [f"{dump(k)}: {_json_lines(v) if isinstance(v, (list, dict)) else dump(v)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n}"
    return dump(obj)


# ---------------------------------------------------------------------------- loading
_WS = re.compile(r"\s*")


def read_json_list(path: Path) -> list[tuple[int, Any]]:
    """Parse a JSON list, returning ``(line, item)`` pairs; errors name ``path:line``."""
    text = _read_text(path)
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


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DatasetFormatError(f"{path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno})"
        raise DatasetFormatError(msg) from None


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
        tokens.append(tok)
    try:
        vocab = Vocab(tokens)
    except DatasetFormatError as err:
        raise DatasetFormatError(f"{vocab_path}: {err}") from None

    train = _read_examples(directory / "train.json", vocab, need_type=False)
    test = _read_examples(directory / "test.json", vocab, need_type=True)
    if (directory / "valid.json").exists():
        _read_examples(directory / "valid.json", vocab, need_type=False)  # checked, not kept: it repeats test_ood

    config: DataConfig | None = None
    config_path = directory / "config.json"
    if config_path.exists():
        meta = _read_json(config_path)
        if not isinstance(meta, dict) or meta.get("task") not in ("composition", "comparison", "complex"):
            raise DatasetFormatError(f"{config_path}: needs a task of composition, comparison or complex")
        task = meta["task"]
        if meta.get("config") is not None:
            try:
                config = config_from_dict(meta["config"])
            except ConfigError as err:
                raise DatasetFormatError(f"{config_path}: {err}") from None
    else:
        task = _infer_task(vocab, [ex for _, ex in train + test])

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
    original_types = [ex.type for _, ex in train]
    splits["train"] = [_train_example(ex, task) for _, ex in train]

    graph_path = directory / "graph.json"
    if graph_path.exists():
        graph = _read_json(graph_path)
        if not isinstance(graph, dict):
            raise DatasetFormatError(f"{graph_path}: expected a JSON object")
        return KGDataset(task, config, vocab, splits, graph)
    graph = _rebuild_graph(task, vocab, splits, original_types)
    dataset = KGDataset(task, config, vocab, splits, graph)
    for name in SPLITS:
        dataset.splits[name] = [_with_provenance(dataset, ex) for ex in dataset.splits[name]]
    return dataset


def _is_atomic(ex: Example, task: str) -> bool:
    if task == "composition":
        return sum(t.startswith("<r_") for t in ex.input_tokens) == 1
    return sum(t.startswith("<e_") for t in ex.input_tokens) == 1


def _train_example(ex: Example, task: str) -> Example:
    """Train records are typed ``atomic`` / ``inferred`` (the paper leaves them untyped or uses probe names)."""
    if ex.type in ("atomic", "inferred"):
        return ex
    return dataclasses.replace(ex, type="atomic" if _is_atomic(ex, task) else "inferred")


def _infer_task(vocab: Vocab, examples: list[Example]) -> str:
    if any(t.startswith("<r_") for t in vocab.tokens):
        return "composition"
    if any(t.startswith("<attr_") for t in vocab.tokens):
        if any(ex.input_tokens[0] == "<q>" or ex.type == "test_hard" for ex in examples):
            return "complex"
        return "comparison"
    raise DatasetFormatError("cannot tell the task from vocab.json: no <r_*> relation or <attr_*> attribute tokens")


def _rebuild_graph(task: str, vocab: Vocab, splits: dict[str, list[Example]], train_types: list[str]) -> dict:
    """The graph as far as the atomic facts in the files tell it."""
    records = [(ex, t) for ex, t in zip(splits["train"], train_types)]
    records += [(ex, ex.type) for name in PROBE_SPLITS for ex in splits[name]]
    atomic = [(ex, t) for ex, t in records if _is_atomic(ex, task)]
    if task == "composition":
        facts: dict[tuple[str, str], list] = {}
        for ex, t in atomic:
            h, r = ex.input_tokens
            fact = facts.setdefault((h, r), [h, r, ex.answer, False])
            fact[3] = fact[3] or t == "ood_atomic"
        return {"atomic": list(facts.values())}
    entities = [t for t in vocab.tokens if re.fullmatch(r"<e_\d+>", t)]
    attributes = [t for t in vocab.tokens if re.fullmatch(r"<attr_\d+>", t)]
    e_index = {e: i for i, e in enumerate(entities)}
    a_index = {a: j for j, a in enumerate(attributes)}
    values: list[list[int | None]] = [[None] * len(attributes) for _ in entities]
    ood: dict[str, list[str]] = {a: [] for a in attributes}
    for ex, t in atomic:
        (e,) = [tok for tok in ex.input_tokens if tok in e_index]
        (a,) = [tok for tok in ex.input_tokens if tok in a_index]
        values[e_index[e]][a_index[a]] = int(ex.answer.strip("<>"))
        if t == "ood_atomic" and e not in ood[a]:
            ood[a].append(e)
    ood = {a: sorted(es, key=e_index.__getitem__) for a, es in ood.items()}
    return {"entities": entities, "attributes": attributes, "values": values, "ood_entities": ood}


def _with_provenance(ds: KGDataset, ex: Example) -> Example:
    """Fill in the provenance of an inferred fact from the rebuilt graph, where the graph has every fact it needs."""
    if ex.provenance is not None or _is_atomic(ex, ds.task) or ex.type == "test_hard":
        return ex
    if ds.task == "composition":
        e, hops = ex.input_tokens[0], []
        for r in ex.input_tokens[1:]:
            t = ds.tail(e, r)
            if t is None:
                return ex
            hops.append([e, r, t])
            e = t
        if e != ex.answer:
            return ex
        return dataclasses.replace(ex, provenance={"bridges": [f[2] for f in hops[:-1]], "atomic": hops})
    attr, _, e1, _, e2 = ex.input_tokens[:5]
    values = ds._attribute_values()
    v1, v2 = values.get((e1, attr)), values.get((e2, attr))
    if v1 is None or v2 is None:
        return ex
    prov = {"values": [v1, v2], "atomic": [[e1, attr, f"<{v1}>"], [e2, attr, f"<{v2}>"]]}
    return dataclasses.replace(ex, provenance=prov)


def choose(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Indices of ``size`` of ``n`` items drawn without replacement (all of them, in order, if size >= n)."""
    if size >= n:
        return np.arange(n)
    return rng.choice(n, size, replace=False)


__all__ = [
    "PAD",
    "SPLITS",
    "Example",
    "KGDataset",
    "TokenBatch",
    "UnknownSplitError",
    "choose",
    "load_dataset",
    "make_batch",
    "read_json_list",
]
