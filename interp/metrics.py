"""Metrics: what a run did, per example, read off its logits at the answer position.

A *metric* scores a run per example from the logits at the answer position:
:func:`logit_diff` (clean minus corrupt answer), :func:`answer_prob`, :func:`answer_rank`,
:func:`top1_change` (1 where the top-1 token differs from a reference run's; its mean is
the paper's top-1 change rate). Any callable ``metric(logits, example) -> values`` works:
``logits`` is ``batch d_vocab`` and ``example[i]`` says which input example row ``i`` is, so
that one metric scores stacked copies of a batch (patching sweeps) or a slice of it.

:func:`run_metric` applies a metric to a run's logits, and :func:`baseline_metric` is the
metric of a run with no patch (with optional interventions): every analysis that needs
"the unpatched value" (patching, node importance, edge attribution, faithfulness,
tracing) computes it with these two, so equal runs give bit-equal values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.intervene import (
    Intervention,
    InterventionError,
    answer_positions,
    check_tokens,
    run_with_interventions,
)
from interp.models.protocol import Bridge


@runtime_checkable
class Metric(Protocol):
    """Scores runs per example from the logits at the answer position (any such callable is one)."""

    def __call__(
        self, logits: Float[Tensor, "batch d_vocab"], example: Int[Tensor, " batch"]
    ) -> Float[Tensor, " batch"]:
        """One score per example from the answer-position ``logits`` and the examples' row indices ``example``."""


def _ids(t: Tensor | Sequence[int]) -> Tensor:
    return torch.as_tensor(t, dtype=torch.long)


def _gather(logits: Tensor, ids: Tensor, example: Tensor) -> Tensor:
    ids = ids.to(logits.device)[example.to(logits.device)]
    return logits.gather(-1, ids[:, None])[:, 0]


def logit_diff(clean_answer: Int[Tensor, " batch"], corrupt_answer: Int[Tensor, " batch"]) -> Metric:
    """Logit of the clean answer minus logit of the corrupt answer."""
    clean, corrupt = _ids(clean_answer), _ids(corrupt_answer)

    def metric(logits: Tensor, example: Tensor) -> Tensor:
        return _gather(logits, clean, example) - _gather(logits, corrupt, example)

    return metric


def answer_prob(answer: Int[Tensor, " batch"]) -> Metric:
    """Probability of ``answer`` (softmax over the whole vocabulary)."""
    ids = _ids(answer)

    def metric(logits: Tensor, example: Tensor) -> Tensor:
        return _gather(logits.float().softmax(-1), ids, example)

    return metric


def answer_rank(answer: Int[Tensor, " batch"]) -> Metric:
    """Rank of ``answer`` among all tokens (0 = top-1): how many tokens score strictly higher."""
    ids = _ids(answer)

    def metric(logits: Tensor, example: Tensor) -> Tensor:
        own = _gather(logits, ids, example)
        return (logits > own[:, None]).sum(-1).to(logits.dtype)

    return metric


def top1_change(reference_top1: Int[Tensor, " batch"]) -> Metric:
    """1 where the top-1 token differs from ``reference_top1`` (the clean run's), else 0.

    Its mean over examples is the paper's causal-tracing metric, the top-1 change rate.
    """
    ids = _ids(reference_top1)

    def metric(logits: Tensor, example: Tensor) -> Tensor:
        return (logits.argmax(-1) != ids.to(logits.device)[example.to(logits.device)]).to(logits.dtype)

    return metric


METRICS = ("logit_diff", "clean_prob", "clean_rank", "top1_change_rate")
"""Names accepted by :func:`named_metric`."""


def named_metric(
    name: str,
    *,
    clean_answer: Int[Tensor, " batch"],
    corrupt_answer: Int[Tensor, " batch"] | None = None,
    clean_top1: Int[Tensor, " batch"] | None = None,
) -> Metric:
    """A builtin metric by name (``logit_diff``, ``clean_prob``, ``clean_rank``, ``top1_change_rate``)."""
    if name == "logit_diff":
        if corrupt_answer is None:
            raise InterventionError("metric logit_diff needs corrupt_answer (the corrupt prompt's answer ids)")
        return logit_diff(clean_answer, corrupt_answer)
    if name == "clean_prob":
        return answer_prob(clean_answer)
    if name == "clean_rank":
        return answer_rank(clean_answer)
    if name == "top1_change_rate":
        if clean_top1 is None:
            raise InterventionError("metric top1_change_rate needs clean_top1 (the clean run's top-1 ids)")
        return top1_change(clean_top1)
    raise InterventionError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)} or pass a callable")


# ------------------------------------------------------------------- metrics of a run
def run_metric(
    metric: Metric,
    logits: Float[Tensor, "batch pos d_vocab"] | Float[Tensor, "batch d_vocab"],
    answer_pos: Int[Tensor, " batch"] | None = None,
    example: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, " batch"]:
    """``metric`` of a run per example, from its logits.

    Full ``batch pos d_vocab`` logits are read at ``answer_pos`` (default: the last
    position); ``batch d_vocab`` logits are already at the answer. ``example`` says which
    example each row is (default: row ``i`` is example ``i``).
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    if logits.ndim == 3:
        pos = torch.full_like(rows, logits.shape[1] - 1) if answer_pos is None else answer_pos.to(logits.device)
        logits = logits[rows, pos]
    return metric(logits, rows if example is None else example)


@torch.no_grad()
def baseline_metric(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    *,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    interventions: Sequence[Intervention] = (),
) -> Float[Tensor, " batch"]:
    """The metric of the unpatched run on ``tokens`` (with ``interventions``), per example.

    Computed as the patching sweep computes its own (one full forward, logits read at the
    answer position), so that a patch that cannot change anything scores exactly this.
    """
    tokens = check_tokens(bridge, tokens)
    pos = answer_positions(tokens, answer_pos)
    return run_metric(metric, run_with_interventions(bridge, tokens, interventions), pos)


def tl_metric(metric: Metric, answer_pos: Int[Tensor, " batch"]) -> Callable[[Tensor], Tensor]:
    """``metric`` as a TransformerLens patching metric (full logits -> ``[batch]``; use ``reduce="mean"``)."""

    def fn(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, " batch"]:
        return run_metric(metric, logits, answer_pos)

    return fn


@torch.no_grad()
def top1(
    bridge: Bridge, tokens: Int[Tensor, "batch pos"], answer_pos: Int[Tensor, " batch"] | None = None
) -> Int[Tensor, " batch"]:
    """The model's top-1 prediction at the answer position (default: the last position)."""
    pos = answer_positions(tokens, answer_pos)
    return run_with_interventions(bridge, check_tokens(bridge, tokens), answer_pos=pos).argmax(-1)


__all__ = [
    "METRICS",
    "Metric",
    "answer_prob",
    "answer_rank",
    "baseline_metric",
    "logit_diff",
    "named_metric",
    "run_metric",
    "tl_metric",
    "top1",
    "top1_change",
]
