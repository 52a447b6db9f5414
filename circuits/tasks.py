"""Tasks: what a circuit is asked to explain, as paired clean and corrupt prompts.

A circuit is only defined relative to a behaviour and a contrast. A :class:`Task` holds
clean prompts, corrupt prompts paired with them row by row (equal length, differing in
the tokens whose influence the circuit must carry), and both answers. The default
metric is the logit difference between the clean and the corrupt answer at the answer
position: the quantity edge attribution patching scores and faithfulness normalises.

:func:`composition_task` and :func:`comparison_task` build tasks from a knowledge graph
with :mod:`interp.counterfactuals` (one token swapped so that the answer changes: ``h``,
``r1`` or ``r2``; ``e1``, ``e2`` or the attribute), mixing the swaps so that the circuit
must carry every input; :func:`task_from_tokens` takes any clean/corrupt dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.counterfactuals import COMPARISON_SWAPS, COMPOSITION_SWAPS, CounterfactualBatch, counterfactual_batch
from interp.data import Example, KGDataset, Vocab
from interp.intervene import ShapeMismatchError, check_same_shape
from interp.patching import Metric, logit_diff

from circuits.graph import CircuitError

COMPOSITION_POSITIONS = ("h", "r1", "r2")
COMPARISON_POSITIONS = ("attr", "q", "e1", "mask", "e2")


@dataclass
class Task:
    """Clean prompts, paired corrupt prompts and both answers; the answer is read at the last position."""

    name: str
    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    clean_answer: Int[Tensor, "batch"]
    corrupt_answer: Int[Tensor, "batch"]
    positions: list[str]
    vocab: Vocab | None = None
    examples: list[Example] | None = None
    swaps: list[str] | None = None
    """Per row, which token the corrupt prompt swapped (when built from counterfactuals)."""

    def __post_init__(self) -> None:
        check_same_shape(self.clean, self.corrupt)
        n = self.clean.shape[0]
        for name in ("clean_answer", "corrupt_answer"):
            if tuple(getattr(self, name).shape) != (n,):
                raise ShapeMismatchError(f"{name} needs one token id per prompt ({n}); got {tuple(getattr(self, name).shape)}")
        if len(self.positions) != self.clean.shape[1]:
            raise ShapeMismatchError(
                f"positions names {len(self.positions)} positions but the prompts have {self.clean.shape[1]}"
            )

    def __len__(self) -> int:
        return self.clean.shape[0]

    @property
    def n_pos(self) -> int:
        return self.clean.shape[1]

    @property
    def answer_pos(self) -> Int[Tensor, "batch"]:
        return torch.full((len(self),), self.n_pos - 1, dtype=torch.long, device=self.clean.device)

    def metric(self) -> Metric:
        """Logit of the clean answer minus logit of the corrupt answer."""
        return logit_diff(self.clean_answer, self.corrupt_answer)

    def to(self, device: torch.device | str | None) -> Task:
        moved = {f: getattr(self, f).to(device) for f in ("clean", "corrupt", "clean_answer", "corrupt_answer")}
        return replace(self, **moved)

    def __getitem__(self, rows: slice | Sequence[int] | Tensor) -> Task:
        """The task restricted to some rows."""
        idx = torch.arange(len(self))[rows] if isinstance(rows, slice) else torch.as_tensor(rows, dtype=torch.long)
        pick = lambda xs: None if xs is None else [xs[int(i)] for i in idx]  # noqa: E731
        return replace(
            self,
            clean=self.clean[idx], corrupt=self.corrupt[idx],
            clean_answer=self.clean_answer[idx], corrupt_answer=self.corrupt_answer[idx],
            examples=pick(self.examples), swaps=pick(self.swaps),
        )

    def decode(self, row: int, which: str = "clean") -> list[str]:
        """The tokens of one prompt (``clean`` or ``corrupt``), as strings when the vocabulary is known."""
        ids = getattr(self, which)[row].tolist()
        return self.vocab.decode(ids) if self.vocab is not None else [str(i) for i in ids]


def task_from_tokens(
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    clean_answer: Int[Tensor, "batch"],
    corrupt_answer: Int[Tensor, "batch"],
    *,
    positions: Sequence[str] | None = None,
    name: str = "task",
    vocab: Vocab | None = None,
) -> Task:
    """A task from any paired clean/corrupt prompts."""
    labels = list(positions) if positions is not None else [str(p) for p in range(clean.shape[1])]
    return Task(name, clean, corrupt, torch.as_tensor(clean_answer), torch.as_tensor(corrupt_answer), labels, vocab)


def task_from_counterfactuals(
    batches: Sequence[CounterfactualBatch], *, positions: Sequence[str], name: str, vocab: Vocab | None = None
) -> Task:
    """One task from several counterfactual batches (one per swapped token), rows concatenated."""
    if not batches:
        raise CircuitError("no counterfactual batches to build a task from")
    cat = lambda f: torch.cat([getattr(b, f) for b in batches])  # noqa: E731
    return Task(
        name, cat("clean"), cat("corrupt"), cat("clean_answer"), cat("corrupt_answer"), list(positions), vocab,
        examples=[ex for b in batches for ex in b.examples],
        swaps=[b.swap for b in batches for _ in range(len(b))],
    )


def _kg_task(
    dataset: KGDataset,
    split: str | Sequence[Example],
    swaps: Sequence[str],
    positions: Sequence[str],
    n: int | None,
    seed: int,
    device: Any,
) -> Task:
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
    """
    if dataset.task != "composition":
        raise CircuitError(f"composition_task needs a composition dataset; this one is {dataset.task}")
    return _kg_task(dataset, split, swaps, COMPOSITION_POSITIONS, n, seed, device)


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
    if dataset.task != "comparison":
        raise CircuitError(f"comparison_task needs a comparison dataset; this one is {dataset.task}")
    return _kg_task(dataset, split, swaps, COMPARISON_POSITIONS, n, seed, device)


def dataset_task(dataset: KGDataset, split: str = "train_inferred", *, n: int | None = 100, seed: int = 0,
                 device: torch.device | str | None = None) -> Task:
    """The default task of a dataset: :func:`composition_task` or :func:`comparison_task`."""
    if dataset.task == "composition":
        return composition_task(dataset, split, n=n, seed=seed, device=device)
    if dataset.task == "comparison":
        return comparison_task(dataset, split, n=n, seed=seed, device=device)
    raise CircuitError(f"no default task for a {dataset.task} dataset; build one with task_from_tokens")
