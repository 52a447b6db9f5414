"""Tasks: what a circuit is asked to explain, as paired clean and corrupt prompts.

A circuit is only defined relative to a behaviour and a contrast. A :class:`Task` holds
clean prompts, corrupt prompts paired with them row by row (equal length, differing in
the tokens whose influence the circuit must carry), and both answers. It is the same type
as a counterfactual batch, :class:`interp.pairs.PromptPairs`. The default metric is the
logit difference between the clean and the corrupt answer at the answer position: the
quantity edge attribution patching scores and faithfulness normalises.

:func:`composition_task` and :func:`comparison_task` build tasks from a knowledge graph
with :mod:`interp.counterfactuals` (one token swapped so that the answer changes: ``h``,
``r1`` or ``r2``; ``e1``, ``e2`` or the attribute), mixing the swaps so that the circuit
must carry every input; :func:`dataset_task` does so for any task whose schema
(:mod:`interp.data.tasks`) has swaps; :func:`task_from_tokens` takes any clean/corrupt
dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from circuits.graph import CircuitError
from interp.counterfactuals import COMPARISON_SWAPS, COMPOSITION_SWAPS, counterfactual_batch
from interp.data import Example, KGDataset, TaskSchemaError, Vocab, task_schema
from interp.data.tasks import TaskSchema
from interp.pairs import PromptPairs, concat_pairs

Task = PromptPairs
"""A circuit's task: :class:`interp.pairs.PromptPairs` (clean, corrupt, both answers, position names ...)."""

COMPOSITION_POSITIONS = task_schema("composition").positions
COMPARISON_POSITIONS = task_schema("comparison").positions
"""Position names of the two-hop and comparison prompts (``task_schema(ds).positions`` for any dataset)."""


def task_from_tokens(
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    clean_answer: Int[Tensor, " batch"],
    corrupt_answer: Int[Tensor, " batch"],
    *,
    positions: Sequence[str] | None = None,
    name: str = "task",
    vocab: Vocab | None = None,
) -> Task:
    """A task from any paired clean/corrupt prompts."""
    labels = list(positions) if positions is not None else [str(p) for p in range(clean.shape[1])]
    return Task(name, clean, corrupt, torch.as_tensor(clean_answer), torch.as_tensor(corrupt_answer), labels, vocab)


def task_from_counterfactuals(
    batches: Sequence[PromptPairs], *, positions: Sequence[str], name: str, vocab: Vocab | None = None
) -> Task:
    """One task from several counterfactual batches (one per swapped token), rows concatenated."""
    if not batches:
        raise CircuitError("no counterfactual batches to build a task from")
    return concat_pairs(batches, name=name, positions=positions, vocab=vocab)


def _schema(dataset: KGDataset, caller: str, needs: str | None = None) -> TaskSchema:
    try:
        schema = task_schema(dataset)
    except TaskSchemaError as err:
        raise CircuitError(f"{caller}: {err}") from None
    if needs is not None and schema.task != needs:
        raise CircuitError(f"{caller} needs a {needs} dataset; this one is {dataset.task}")
    return schema


def _kg_task(
    dataset: KGDataset,
    split: str | Sequence[Example],
    swaps: Sequence[str],
    n: int | None,
    seed: int,
    device: torch.device | str | None,
) -> Task:
    positions = task_schema(dataset).positions
    batches = [counterfactual_batch(dataset, split, s, n=n, seed=seed + i) for i, s in enumerate(swaps)]
    name = f"{dataset.task} ({'/'.join(swaps)} swapped)"
    return task_from_counterfactuals(batches, positions=positions, name=name, vocab=dataset.vocab).to(device)


def composition_task(
    dataset: KGDataset,
    split: str | Sequence[Example] = "train_inferred",
    swaps: Sequence[str] = COMPOSITION_SWAPS,
    *,
    n: int | None = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Task:
    """Two-hop prompts ``<h><r1><r2>`` against counterfactuals with ``h``, ``r1`` or ``r2`` swapped.

    ``n`` prompts of the split per swap; rows where no counterfactual exists are dropped.
    (k-hop datasets work too: their prompts have ``h r1 .. rk``.)
    """
    _schema(dataset, "composition_task", needs="composition")
    return _kg_task(dataset, split, swaps, n, seed, device)


def comparison_task(
    dataset: KGDataset,
    split: str | Sequence[Example] = "train_inferred",
    swaps: Sequence[str] = COMPARISON_SWAPS,
    *,
    n: int | None = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Task:
    """Comparisons ``<attr><q><e1><mask><e2>`` against counterfactuals with ``e1``, ``e2`` or the attribute swapped."""
    _schema(dataset, "comparison_task", needs="comparison")
    return _kg_task(dataset, split, swaps, n, seed, device)


def dataset_task(
    dataset: KGDataset,
    split: str = "train_inferred",
    *,
    n: int | None = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Task:
    """The default task of a dataset: every swap its task schema defines, mixed (``h/r1/r2``; ``e1/e2/attr``)."""
    schema = _schema(dataset, "dataset_task")
    if not schema.swaps:
        raise CircuitError(f"no default task for a {dataset.task} dataset; build one with task_from_tokens")
    return _kg_task(dataset, split, schema.swaps, n, seed, device)
