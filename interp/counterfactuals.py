"""Counterfactual prompts from the knowledge graph: change one token so that the answer changes.

Causal analyses compare a *clean* prompt with a *counterfactual* one that differs in a
single token of the same type and has a different answer. The graph says what the answer
of any prompt is, so such pairs can be built exactly:

* composition ``<h><r1><r2>`` -> ``t``: replace ``h`` by ``h'`` (which also has relation
  ``r1``, whose bridge has ``r2``), ``r1`` by ``r1'`` (another relation of ``h``, whose
  bridge has ``r2``) or ``r2`` by ``r2'`` (another relation of the bridge), each chosen
  so the chain's tail differs from ``t``; k-hop prompts swap ``h``, ``r1`` ... ``rk``;
* comparison ``<attr><q><e1><mask><e2>`` -> ``<attr_j_k>``: replace ``e1``, ``e2`` or the
  attribute so that the comparison ``k`` of the two values flips.

With ``id_only`` (default) every atomic fact the counterfactual uses is in-distribution,
so a model that generalises in-distribution knows its answer too. Choices are uniform
over the valid candidates and reproducible from ``seed``.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import Example, KGDataset, compare
from interp.errors import GrokscopeError

COMPOSITION_SWAPS = ("h", "r1", "r2")
COMPARISON_SWAPS = ("e1", "e2", "attr")
_COMPARISON_POS = {"attr": 0, "e1": 2, "e2": 4}


class CounterfactualError(GrokscopeError, ValueError):
    """No counterfactual can be built as asked."""


@dataclass
class CounterfactualBatch:
    """Clean prompts and their counterfactuals, which differ in one token at ``position``."""

    swap: str
    position: int
    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    clean_answer: Int[Tensor, "batch"]
    corrupt_answer: Int[Tensor, "batch"]
    examples: list[Example]
    counterfactuals: list[Example]
    index: list[int]
    """Indices into the examples given of those that got a counterfactual (others are dropped)."""

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def answer_pos(self) -> Int[Tensor, "batch"]:
        return torch.full((len(self),), self.clean.shape[1] - 1, dtype=torch.long, device=self.clean.device)

    def to(self, device: torch.device | str | None) -> CounterfactualBatch:
        moved = {f: getattr(self, f).to(device) for f in ("clean", "corrupt", "clean_answer", "corrupt_answer")}
        return dataclasses.replace(self, **moved)


# ------------------------------------------------------------------------ composition
class _Composition:
    """Lookups over the composition graph for counterfactual search."""

    def __init__(self, dataset: KGDataset):
        self.ds = dataset
        self.facts = {(h, r): (t, bool(o)) for h, r, t, o in dataset.graph["atomic"]}
        self.heads_with: dict[str, list[str]] = {}
        for h, r in self.facts:
            self.heads_with.setdefault(r, []).append(h)

    def follow(self, h: str, rels: Sequence[str], id_only: bool) -> str | None:
        """The tail of the chain h -r1-> ... -rk->, or None if a hop is missing (or OOD with id_only)."""
        e = h
        for r in rels:
            fact = self.facts.get((e, r))
            if fact is None or (id_only and fact[1]):
                return None
            e = fact[0]
        return e

    def candidates(self, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[tuple[tuple[str, ...], str]]:
        h, rels = prompt[0], prompt[1:]
        answer = self.follow(h, rels, id_only=False)
        out = []
        if swap == "h":
            for h2 in self.heads_with.get(rels[0], []):
                t = self.follow(h2, rels, id_only)
                if h2 != h and t is not None and t != answer:
                    out.append(((h2, *rels), t))
            return out
        i = int(swap[1:]) - 1  # relation index
        start = self.follow(h, rels[:i], id_only=False)
        for r in self.ds.relations_of(start):
            if r == rels[i]:
                continue
            new = rels[:i] + (r,) + rels[i + 1 :]
            t = self.follow(h, new, id_only)
            if t is not None and t != answer:
                out.append(((h, *new), t))
        return out


# ------------------------------------------------------------------------- comparison
class _Comparison:
    def __init__(self, dataset: KGDataset):
        g = dataset.graph
        self.entities = list(g["entities"])
        self.attributes = list(g["attributes"])
        self.values = {
            (e, a): row[j] for e, row in zip(g["entities"], g["values"]) for j, a in enumerate(g["attributes"])
        }
        self.ood = {a: set(es) for a, es in g["ood_entities"].items()}

    def label(self, a: str, e1: str, e2: str) -> int | None:
        v1, v2 = self.values.get((e1, a)), self.values.get((e2, a))
        return None if v1 is None or v2 is None else compare(v1, v2)

    def candidates(self, prompt: tuple[str, ...], swap: str, id_only: bool) -> list[tuple[tuple[str, ...], str]]:
        a, q, e1, mask, e2 = prompt
        k = self.label(a, e1, e2)
        out = []

        def add(a2: str, x: str, y: str) -> None:
            if id_only and (x in self.ood[a2] or y in self.ood[a2]):
                return
            k2 = self.label(a2, x, y)
            if k2 is not None and k2 != k:
                out.append(((a2, q, x, mask, y), f"<{a2[1:-1]}_{k2}>"))

        if swap == "e1":
            for x in self.entities:
                if x not in (e1, e2):
                    add(a, x, e2)
        elif swap == "e2":
            for y in self.entities:
                if y not in (e1, e2):
                    add(a, e1, y)
        else:
            for a2 in self.attributes:
                if a2 != a:
                    add(a2, e1, e2)
        return out


def swap_position(dataset: KGDataset, swap: str) -> int:
    """The prompt position of the token ``swap`` names (``h`` 0, ``r1`` 1 ...; ``attr`` 0, ``e1`` 2, ``e2`` 4)."""
    if dataset.task == "composition":
        n_hops = getattr(dataset.config, "n_hops", 2) if dataset.config is not None else 2
        names = ("h",) + tuple(f"r{i}" for i in range(1, n_hops + 1))
        if swap not in names:
            choices = ", ".join(names)
            raise CounterfactualError(f"unknown swap {swap!r} for a {n_hops}-hop composition; choose one of {choices}")
        return names.index(swap)
    if dataset.task == "comparison":
        if swap not in _COMPARISON_POS:
            choices = ", ".join(COMPARISON_SWAPS)
            raise CounterfactualError(f"unknown swap {swap!r} for comparison; choose one of {choices}")
        return _COMPARISON_POS[swap]
    raise CounterfactualError(
        f"counterfactuals are built for composition and comparison datasets; this one is {dataset.task}"
    )


_SEARCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _searcher(dataset: KGDataset) -> _Composition | _Comparison:
    """The graph index of ``dataset``, built once per dataset."""
    if dataset not in _SEARCHERS:
        _SEARCHERS[dataset] = _Composition(dataset) if dataset.task == "composition" else _Comparison(dataset)
    return _SEARCHERS[dataset]


def counterfactual(
    dataset: KGDataset,
    example: Example,
    swap: str,
    *,
    rng: np.random.Generator | int = 0,
    id_only: bool = True,
) -> Example | None:
    """A counterfactual of ``example`` with token ``swap`` replaced and a different answer (None if none exists)."""
    position = swap_position(dataset, swap)
    expected = position + 1 if dataset.task == "composition" else 5
    if len(example.input_tokens) < expected or (dataset.task == "comparison" and len(example.input_tokens) != 5):
        raise CounterfactualError(
            f"{example.input_text} is not a prompt with a {swap} token to swap; "
            "pass inferred facts (e.g. split train_inferred)"
        )
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    found = _searcher(dataset).candidates(tuple(example.input_tokens), swap, id_only)
    if not found:
        return None
    prompt, answer = found[int(rng.integers(len(found)))]
    return Example(prompt, (answer,) + tuple(example.target_tokens[1:]), f"counterfactual_{swap}", None)


def counterfactual_batch(
    dataset: KGDataset,
    examples: Sequence[Example] | str,
    swap: str,
    *,
    n: int | None = None,
    seed: int = 0,
    id_only: bool = True,
    device: torch.device | str | None = None,
) -> CounterfactualBatch:
    """Counterfactuals for ``examples`` (or the first ``n`` of a split), as paired token tensors.

    Examples with no valid counterfactual are dropped; :attr:`CounterfactualBatch.index`
    says which were kept.
    """
    position = swap_position(dataset, swap)
    if isinstance(examples, str):
        examples = dataset.examples(examples)
    examples = list(examples)[:n] if n is not None else list(examples)
    rng = np.random.default_rng(seed)
    kept, clean, cf = [], [], []
    if len({len(ex.input_tokens) for ex in examples}) > 1:
        raise CounterfactualError(
            "the examples have prompts of different lengths; pass one kind of fact (e.g. split train_inferred)"
        )
    for i, ex in enumerate(examples):
        other = counterfactual(dataset, ex, swap, rng=rng, id_only=id_only)
        if other is not None:
            kept.append(i)
            clean.append(ex)
            cf.append(other)
    if not kept:
        raise CounterfactualError(
            f"no example has a counterfactual for swap {swap!r}; pass more examples or id_only=False"
        )
    vocab = dataset.vocab
    clean_t = torch.tensor([vocab.encode(ex.input_tokens) for ex in clean], dtype=torch.long)
    cf_t = torch.tensor([vocab.encode(ex.input_tokens) for ex in cf], dtype=torch.long)
    batch = CounterfactualBatch(
        swap=swap,
        position=position,
        clean=clean_t,
        corrupt=cf_t,
        clean_answer=torch.tensor([vocab.id(ex.answer) for ex in clean], dtype=torch.long),
        corrupt_answer=torch.tensor([vocab.id(ex.answer) for ex in cf], dtype=torch.long),
        examples=clean,
        counterfactuals=cf,
        index=kept,
    )
    return batch.to(device) if device is not None else batch
