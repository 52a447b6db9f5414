"""The training objective and its score: answer logits, the paper's loss, exact-match accuracy.

The paper trains next-token prediction on the target tokens (the answer entity, then
``</a>``); ``</a>`` is always predictable, so the fast recipes score the answer only and
compute the unembedding at the answer position alone (the same loss, much cheaper). With
a looped model's rows run with their own loop counts (:func:`grouped_loops_loss`: ``train.atomic_loops``,
``train.loop_sampling``), and a batch's positions may start at an offset (``train.position_shift``).
Accuracy is exact match of the greedy prediction at the answer position; a task's query
types (``test_ood/eq`` ...: :meth:`~interp.data.tasks.TaskSchema.query_types`) are scored
like splits.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.data.dataset import PROBE_SPLITS, KGDataset, TokenBatch
from interp.models.family import CausalLM, trunk
from interp.models.looped import applied_loops
from interp.train.stability import stablemax_cross_entropy

EVAL_CHUNK = 4096


def _positions(tokens: Int[Tensor, "batch pos"], shift: int) -> dict[str, Tensor]:
    """The forward's ``position_ids`` for positions starting at ``shift`` (none: the model's own, from 0)."""
    if not shift:
        return {}
    return {"position_ids": torch.arange(shift, shift + tokens.shape[1], device=tokens.device)[None].expand_as(tokens)}


def answer_logits(
    model: CausalLM, tokens: Int[Tensor, "batch pos"], answer_pos: Int[Tensor, " batch"], shift: int = 0
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the answer position only: the residual stream everywhere, the unembedding once."""
    width = int(answer_pos.max()) + 1
    tokens = tokens[:, :width]
    hidden = trunk(model)(input_ids=tokens, **_positions(tokens, shift)).last_hidden_state  # (batch, pos, d_model)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    return model.lm_head(hidden[rows, answer_pos])  # (batch, d_vocab)


def batch_loss(
    model: CausalLM,
    batch: TokenBatch,
    *,
    answer_only: bool,
    loss_on_eos: bool,
    label_smoothing: float = 0.0,
    stablemax: bool = False,
    shift: int = 0,
) -> Tensor:
    """Mean cross-entropy over the target tokens of ``batch`` (the paper's loss), optionally label-smoothed,
    through softmax or (``stablemax``) StableMax (:mod:`interp.train.stability`), positions from ``shift``."""
    cross_entropy = stablemax_cross_entropy if stablemax else F.cross_entropy
    if answer_only:
        return cross_entropy(
            answer_logits(model, batch.tokens, batch.answer_pos, shift), batch.answer, label_smoothing=label_smoothing
        )
    logits = model(input_ids=batch.tokens, **_positions(batch.tokens, shift)).logits[:, :-1]  # (batch, pos-1, d_vocab)
    targets = batch.tokens[:, 1:]
    mask = batch.loss_mask[:, :-1]
    if not loss_on_eos:
        pos = torch.arange(mask.shape[1], device=mask.device)[None, :]
        mask = pos == batch.answer_pos[:, None]
    return cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)


def grouped_loops_loss(model: CausalLM, batch: TokenBatch, loops: Int[Tensor, " batch"], **options: Any) -> Tensor:
    """:func:`batch_loss` of a looped model whose row ``i`` runs with its stack applied ``loops[i]``
    times: the mean over all rows (the rows of each loop count in one forward, fewest loops first).
    ``options`` are :func:`batch_loss`'s keyword arguments."""
    total = batch.tokens.new_zeros((), dtype=torch.float32)
    for count in torch.unique(loops).tolist():
        part = batch[torch.nonzero(loops == count).flatten()]
        with applied_loops(model, int(count)):
            total = total + batch_loss(model, part, **options) * (len(part) / len(batch))
    return total


@torch.no_grad()
def accuracy(model: CausalLM, batch: TokenBatch, *, autocast: contextlib.AbstractContextManager | None = None) -> float:
    """Exact match of the answer token (greedy prediction at the answer position)."""
    if len(batch) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(batch), EVAL_CHUNK):
        part = batch[start : start + EVAL_CHUNK]
        with autocast if autocast is not None else contextlib.nullcontext():
            pred = answer_logits(model, part.tokens, part.answer_pos).argmax(-1)
        correct += int((pred == part.answer).sum())
    model.train(was_training)
    return correct / len(batch)


def query_type_batches(dataset: KGDataset, batches: dict[str, TokenBatch]) -> dict[str, TokenBatch]:
    """``split/type`` -> the rows of ``batches[split]`` of each query type the task's schema names."""
    out = {}
    for split in PROBE_SPLITS:
        types = dataset.schema.query_types(dataset.kg, split, dataset.examples(split))
        for name, rows in types.items():
            index = torch.tensor(rows, dtype=torch.long, device=batches[split].tokens.device)
            out[f"{split}/{name}"] = batches[split][index]
    return out
