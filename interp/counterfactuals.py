"""Counterfactual prompts from the knowledge graph: change one token so that the answer changes.

Causal analyses compare a *clean* prompt with a *counterfactual* one that differs in a
single token of the same type and has a different answer. The graph says what the answer
of any prompt is, so such pairs can be built exactly. Which tokens can be swapped and how
the new answer follows are the task schema's (:mod:`interp.data.tasks`):

* composition ``<h><r1><r2>`` -> ``t``: replace ``h`` by ``h'`` (which also has relation
  ``r1``, whose bridge has ``r2``), ``r1`` by ``r1'`` (another relation of ``h``, whose
  bridge has ``r2``) or ``r2`` by ``r2'`` (another relation of the bridge), each chosen
  so the chain's tail differs from ``t``; k-hop prompts swap ``h``, ``r1`` ... ``rk``;
* comparison ``<attr><q><e1><mask><e2>`` -> ``<attr_j_k>``: replace ``e1``, ``e2`` or the
  attribute so that the comparison ``k`` of the two values flips.

With ``id_only`` (default) every atomic fact the counterfactual uses is in-distribution,
so a model that generalises in-distribution knows its answer too. Choices are uniform
over the valid candidates (in the graph's order) and reproducible from ``seed``. A batch
of them is a :class:`~interp.pairs.PromptPairs` (``CounterfactualBatch`` is its old name).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp.data import Example, KGDataset, TaskSchema, TaskSchemaError
from interp.errors import GrokscopeError
from interp.pairs import PromptPairs

COMPOSITION_SWAPS = ("h", "r1", "r2")
COMPARISON_SWAPS = ("e1", "e2", "attr")
"""The two-hop and comparison schemas' swaps (``task_schema(dataset).swaps`` for any dataset)."""

CounterfactualBatch = PromptPairs
"""A batch of counterfactuals is a :class:`PromptPairs` with ``swaps``, ``counterfactuals`` and ``index`` set."""


class CounterfactualError(GrokscopeError, ValueError):
    """No counterfactual can be built as asked."""


def _schema(dataset: KGDataset) -> TaskSchema:
    try:
        return dataset.schema
    except TaskSchemaError as err:
        raise CounterfactualError(str(err)) from None


def swap_position(dataset: KGDataset, swap: str) -> int:
    """The prompt position of the token ``swap`` names (``h`` 0, ``r1`` 1 ...; ``attr`` 0, ``e1`` 2, ``e2`` 4)."""
    try:
        return _schema(dataset).swap_position(swap)
    except TaskSchemaError as err:
        raise CounterfactualError(str(err)) from None


def counterfactual(
    dataset: KGDataset,
    example: Example,
    swap: str,
    *,
    rng: np.random.Generator | int = 0,
    id_only: bool = True,
) -> Example | None:
    """A counterfactual of ``example`` with token ``swap`` replaced and a different answer (None if none exists)."""
    schema = _schema(dataset)
    swap_position(dataset, swap)
    if len(example.input_tokens) != schema.n_pos:
        raise CounterfactualError(
            f"{example.input_text} is not a prompt with a {swap} token to swap; "
            "pass inferred facts (e.g. split train_inferred)"
        )
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    found = schema.candidates(dataset.kg, tuple(example.input_tokens), swap, id_only)
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
) -> PromptPairs:
    """Counterfactuals for ``examples`` (or the first ``n`` of a split), as paired token tensors.

    Examples with no valid counterfactual are dropped; :attr:`PromptPairs.index` says which
    were kept; ``swap`` and ``position`` name the swapped token and its position.
    """
    schema = _schema(dataset)
    swap_position(dataset, swap)
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
    batch = PromptPairs(
        name=f"{dataset.task} ({swap} swapped)",
        clean=torch.tensor([vocab.encode(ex.input_tokens) for ex in clean], dtype=torch.long),
        corrupt=torch.tensor([vocab.encode(ex.input_tokens) for ex in cf], dtype=torch.long),
        clean_answer=torch.tensor([vocab.id(ex.answer) for ex in clean], dtype=torch.long),
        corrupt_answer=torch.tensor([vocab.id(ex.answer) for ex in cf], dtype=torch.long),
        positions=list(schema.positions),
        vocab=vocab,
        examples=clean,
        swaps=[swap] * len(clean),
        counterfactuals=cf,
        index=kept,
    )
    return batch.to(device) if device is not None else batch


__all__ = [
    "COMPARISON_SWAPS",
    "COMPOSITION_SWAPS",
    "CounterfactualBatch",
    "CounterfactualError",
    "counterfactual",
    "counterfactual_batch",
    "swap_position",
]
