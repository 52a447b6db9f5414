"""Examples, the dataset container and token batches; saving in the paper's JSON layout.

A :class:`KGDataset` holds six splits of :class:`Example` s, the vocabulary and the full
knowledge graph (plain JSON data). What its task *is* (prompt positions, swappable tokens,
lens targets, graph look-ups) is its :attr:`KGDataset.schema`
(:mod:`interp.data.tasks`); :attr:`KGDataset.kg` is the typed view of the graph, built
once. :meth:`KGDataset.save` writes what the paper's notebooks write (``train.json``,
``valid.json``, ``test.json``, ``vocab.json``; records ``{"input_text", "target_text",
"type"}`` with ``target_text = input_text + answer + "</a>"``) plus ours: ``config.json``,
``graph.json`` and a ``provenance`` key on records where it is known (the paper's loader
ignores it). ``test.json`` holds the probe splits, told apart by each record's ``type``.
Every JSON list is written one record per line, so ``path:line`` in an error message
points at the record (:mod:`interp.data.paper` reads them back); every file is written
atomically.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.configs import to_dict
from interp.data.config import DataConfig
from interp.data.graphs import AttributeGraph, CompositionGraph, KnowledgeGraph
from interp.data.records import ANSWER_CLOSE, ANSWER_OPEN, Example
from interp.data.tasks import TaskSchema, schema_for
from interp.data.vocab import PAD, Vocab
from interp.errors import DatasetFormatError, GrokscopeError
from interp.io import atomic_write_text

SPLITS = ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")
"""Split names, in order; the trainer uses them as metric keys."""

PROBE_SPLITS = SPLITS[1:]


class UnknownSplitError(GrokscopeError, KeyError):
    """A split name that the dataset does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class TokenBatch:
    """Right-padded token ids of a split, with where the prompt ends and where the loss applies.

    ``loss_mask[b, p]`` is True where the prediction at ``p`` (of ``tokens[b, p + 1]``) is a
    target token; the answer is predicted at ``answer_pos = prompt_len - 1``.
    """

    tokens: Int[Tensor, "batch pos"]
    prompt_len: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    loss_mask: Bool[Tensor, "batch pos"]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def answer_pos(self) -> Int[Tensor, " batch"]:
        """The position whose logits predict the answer: ``prompt_len - 1``."""
        return self.prompt_len - 1

    def to(self, device: torch.device | str | None) -> TokenBatch:
        """The batch with every tensor on ``device``."""
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
        self._schema: TaskSchema | None = None
        self._kg: KnowledgeGraph | None = None

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"KGDataset(task={self.task!r}, vocab={len(self.vocab)}, {sizes})"

    @property
    def sizes(self) -> dict[str, int]:
        """The number of records of each split."""
        return {name: len(examples) for name, examples in self.splits.items()}

    def examples(self, split: str) -> list[Example]:
        """The records of ``split``; a one-line ``UnknownSplitError`` naming the splits otherwise."""
        if split not in self.splits:
            raise UnknownSplitError(f"unknown split {split!r}; splits: {', '.join(self.splits)}")
        return self.splits[split]

    def batch(self, split: str, device: torch.device | str | None = None) -> TokenBatch:
        """All of ``split`` as one :class:`TokenBatch`."""
        return make_batch(self.examples(split), self.vocab, device)

    # -- the task and its graph ----------------------------------------------------------
    @property
    def schema(self) -> TaskSchema:
        """What this dataset's task is (:mod:`interp.data.tasks`), chosen once from its task, config and prompts."""
        if self._schema is None:
            self._schema = schema_for(self.task, self.config, self.splits)
        return self._schema

    @property
    def kg(self) -> KnowledgeGraph:
        """The typed view of :attr:`graph` (:class:`CompositionGraph` or :class:`AttributeGraph`), built once."""
        if self._kg is None:
            self._kg = self.schema.build_graph(self.graph)
        return self._kg

    def _graph(self, kind: type, tasks: str) -> Any:
        if not isinstance(self.kg, kind):
            raise GrokscopeError(f"this lookup is for {tasks} datasets; this one is {self.task}")
        return self.kg

    def tail(self, h: str, r: str) -> str | None:
        """Composition: the tail t of the atomic fact (h, r, t), or None if h has no relation r."""
        return self._graph(CompositionGraph, "composition").tail(h, r)

    def relations_of(self, h: str) -> list[str]:
        """Composition: the relations going out of entity ``h`` (in the graph's order)."""
        return self._graph(CompositionGraph, "composition").relations_of(h)

    def value(self, entity: str, attribute: str) -> int:
        """Comparison/complex: the value of ``attribute`` for ``entity``."""
        return self._graph(AttributeGraph, "comparison/complex").value(entity, attribute)

    def is_ood(self, a: str, b: str) -> bool:
        """Composition ``is_ood(h, r)``: is fact (h, r, .) OOD. Comparison ``is_ood(entity, attribute)``."""
        return self.kg.is_ood(a, b)

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


def choose(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Indices of ``size`` of ``n`` items drawn without replacement (all of them, in order, if size >= n)."""
    if size >= n:
        return np.arange(n)
    return rng.choice(n, size, replace=False)


__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "PAD",
    "PROBE_SPLITS",
    "SPLITS",
    "Example",
    "KGDataset",
    "TokenBatch",
    "UnknownSplitError",
    "choose",
    "make_batch",
]
