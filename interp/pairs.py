"""Paired prompts: clean prompts, corrupt prompts that differ from them, and both answers.

Causal analyses contrast two runs row by row: a *clean* prompt and a *corrupt* one of the
same length that differs in the tokens whose influence is measured (a counterfactual with
one token swapped, :mod:`interp.counterfactuals`; a circuit's task, :mod:`circuits.tasks`).
:class:`PromptPairs` is that one type: the token tensors, both answers (read at the last
position), the names of the positions, and, when built from a dataset, the examples, which
token each row swapped, the counterfactual examples and which of the examples given were
kept. The default metric is the logit difference between the clean and the corrupt answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import Example, Vocab
from interp.intervene import InterventionError, ShapeMismatchError, check_same_shape
from interp.patching import Metric, logit_diff


@dataclass
class PromptPairs:
    """Clean prompts, paired corrupt prompts and both answers; the answer is read at the last position."""

    name: str
    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    clean_answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]
    positions: list[str]
    """Names of the prompt positions (``h r1 r2``, or ``0 1 2`` when unknown)."""
    vocab: Vocab | None = None
    examples: list[Example] | None = None
    """The clean examples, one per row (when built from a dataset)."""
    swaps: list[str] | None = None
    """Per row, which token the corrupt prompt swapped (when built from counterfactuals)."""
    counterfactuals: list[Example] | None = None
    """The corrupt examples, one per row (when built from counterfactuals)."""
    index: list[int] | None = None
    """Per row, the index of its example among those given (examples with no counterfactual are dropped)."""

    def __post_init__(self) -> None:
        check_same_shape(self.clean, self.corrupt)
        n = self.clean.shape[0]
        for name in ("clean_answer", "corrupt_answer"):
            if tuple(getattr(self, name).shape) != (n,):
                got = tuple(getattr(self, name).shape)
                raise ShapeMismatchError(f"{name} needs one token id per prompt ({n}); got {got}")
        if len(self.positions) != self.clean.shape[1]:
            raise ShapeMismatchError(
                f"positions names {len(self.positions)} positions but the prompts have {self.clean.shape[1]}"
            )
        for name in ("examples", "swaps", "counterfactuals", "index"):
            rows = getattr(self, name)
            if rows is not None and len(rows) != n:
                raise ShapeMismatchError(f"{name} needs one entry per prompt ({n}); got {len(rows)}")

    def __len__(self) -> int:
        return self.clean.shape[0]

    @property
    def n_pos(self) -> int:
        """Prompt length (clean and corrupt prompts share it)."""
        return self.clean.shape[1]

    @property
    def answer_pos(self) -> Int[Tensor, " batch"]:
        """The answer position of every row: the last prompt position."""
        return torch.full((len(self),), self.n_pos - 1, dtype=torch.long, device=self.clean.device)

    @property
    def swap(self) -> str:
        """The token every row swapped (pairs built from one counterfactual batch)."""
        kinds = sorted(set(self.swaps or ()))
        if len(kinds) != 1:
            got = ", ".join(kinds) if kinds else "none recorded"
            raise InterventionError(f"these pairs do not swap one token in every row (swaps: {got}); see .swaps")
        return kinds[0]

    @property
    def position(self) -> int:
        """The position of the token every row swapped."""
        return self.positions.index(self.swap)

    def metric(self) -> Metric:
        """Logit of the clean answer minus logit of the corrupt answer."""
        return logit_diff(self.clean_answer, self.corrupt_answer)

    def to(self, device: torch.device | str | None) -> PromptPairs:
        """The pairs with every tensor on ``device``."""
        moved = {f: getattr(self, f).to(device) for f in ("clean", "corrupt", "clean_answer", "corrupt_answer")}
        return replace(self, **moved)

    def __getitem__(self, rows: slice | Sequence[int] | Tensor) -> PromptPairs:
        """The pairs restricted to some rows."""
        idx = torch.arange(len(self))[rows] if isinstance(rows, slice) else torch.as_tensor(rows, dtype=torch.long)
        pick = lambda xs: None if xs is None else [xs[int(i)] for i in idx]  # noqa: E731
        return replace(
            self,
            clean=self.clean[idx],
            corrupt=self.corrupt[idx],
            clean_answer=self.clean_answer[idx],
            corrupt_answer=self.corrupt_answer[idx],
            examples=pick(self.examples),
            swaps=pick(self.swaps),
            counterfactuals=pick(self.counterfactuals),
            index=pick(self.index),
        )

    def decode(self, row: int, which: str = "clean") -> list[str]:
        """The tokens of one prompt (``clean`` or ``corrupt``), as strings when the vocabulary is known."""
        ids = getattr(self, which)[row].tolist()
        return self.vocab.decode(ids) if self.vocab is not None else [str(i) for i in ids]


def concat_pairs(
    parts: Sequence[PromptPairs], *, name: str, positions: Sequence[str] | None = None, vocab: Vocab | None = None
) -> PromptPairs:
    """Several pairs (e.g. one counterfactual batch per swapped token) as one, rows concatenated."""
    if not parts:
        raise InterventionError("no prompt pairs to concatenate")

    def cat(field: str) -> Tensor:
        return torch.cat([getattr(p, field) for p in parts])

    def rows(field: str) -> list | None:
        if any(getattr(p, field) is None for p in parts):
            return None
        return [x for p in parts for x in getattr(p, field)]

    return PromptPairs(
        name,
        cat("clean"),
        cat("corrupt"),
        cat("clean_answer"),
        cat("corrupt_answer"),
        list(positions if positions is not None else parts[0].positions),
        vocab if vocab is not None else parts[0].vocab,
        examples=rows("examples"),
        swaps=rows("swaps"),
        counterfactuals=rows("counterfactuals"),
        index=rows("index"),
    )


__all__ = ["PromptPairs", "concat_pairs"]
