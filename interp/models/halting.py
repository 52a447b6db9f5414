"""A looped model's answer after every iteration, and adaptive halting.

:func:`iteration_logits` reads the residual stream at the end of each iteration (after
``t * stack`` applied blocks) through the final normalisation and the unembedding: the logit
lens per iteration, on the plain module. With a causal model an iteration's residual does
not depend on the later ones, so one forward with the most loops gives every shorter loop
count exactly; the last iteration's logits are the model's own.

:func:`halting_predictions` is adaptive halting at inference (as the looped-transformer
depth studies run it): a prompt stops at the first iteration ``t >= min_loops`` whose answer
distribution moved by less than ``kl`` from iteration ``t - 1`` (``KL(p_t || p_{t-1})``),
and answers with ``p_t``; one that never settles answers at ``max_loops``. The iteration it
stopped at is reported per prompt::

    from interp.models import halting_predictions
    halted = halting_predictions(model, batch.tokens, batch.answer_pos, max_loops=16)
    (halted.prediction == batch.answer).float().mean(), halted.iteration.float().mean()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.models.family import CausalLM, context_size, decoder_blocks, final_norm, trunk
from interp.models.looped import loop_stack_size, n_loops, with_loops


@torch.no_grad()
def iteration_logits(
    model: CausalLM, tokens: Int[Tensor, "batch pos"], positions: Int[Tensor, " batch *k"], loops: int
) -> Float[Tensor, "iteration batch *k d_vocab"]:
    """Logits read at ``positions`` (per row) after each of ``loops`` iterations of the block stack.

    Row ``t - 1`` is the model with its stack applied ``t`` times; ``loops`` may exceed the
    loops the model was built with (:func:`~interp.models.looped.with_loops`).
    """
    if isinstance(loops, bool) or not isinstance(loops, int) or loops < 1:
        raise ConfigError(f"loops = {loops!r} is out of range; allowed: an integer >= 1")
    if tokens.shape[1] > context_size(model):
        raise ConfigError(
            f"the prompts need {tokens.shape[1]} positions, the model has {context_size(model)}; raise model.n_ctx"
        )
    stack = loop_stack_size(model)
    looped = model if loops == n_loops(model) else with_loops(model, loops)
    was_training = looped.training
    looped.eval()
    ends: list[Tensor] = []
    blocks = decoder_blocks(looped)

    def keep(_module, _inputs, output):  # a block's output: a tensor, or a tuple led by one
        ends.append(output[0] if isinstance(output, tuple) else output)

    handles = [blocks[t * stack - 1].register_forward_hook(keep) for t in range(1, loops + 1)]
    try:
        trunk(looped)(input_ids=tokens)
    finally:
        for handle in handles:
            handle.remove()
        looped.train(was_training)
    residual = torch.stack(ends)  # (iteration, batch, pos, d_model)
    rows = torch.arange(tokens.shape[0], device=tokens.device).view(-1, *([1] * (positions.ndim - 1)))
    picked = residual[:, rows, positions]  # (iteration, batch, *k, d_model)
    return looped.lm_head(final_norm(looped)(picked))


@dataclass
class Halted:
    """Adaptive halting's answers: the prediction and the iteration each prompt stopped at (1-based)."""

    prediction: Int[Tensor, " batch"]
    iteration: Int[Tensor, " batch"]
    logits: Float[Tensor, "batch d_vocab"]


@torch.no_grad()
def halting_predictions(
    model: CausalLM,
    tokens: Int[Tensor, "batch pos"],
    answer_pos: Int[Tensor, " batch"],
    *,
    max_loops: int = 16,
    kl: float = 1e-3,
    min_loops: int = 2,
) -> Halted:
    """Answer each prompt at the first iteration ``t >= min_loops`` with ``KL(p_t || p_{t-1}) < kl``
    (else at ``max_loops``); see the module docstring."""
    _check_halting(kl, min_loops, max_loops)
    logits = iteration_logits(model, tokens, answer_pos, max_loops)  # (iteration, batch, d_vocab)
    return halt(logits, kl=kl, min_loops=min_loops)


def _check_halting(kl: float, min_loops: int, max_loops: int) -> None:
    """One-line errors for a KL bound or loop counts halting cannot use."""
    if not kl > 0:
        raise ConfigError(f"kl = {kl!r} is out of range; allowed: a number > 0")
    if isinstance(min_loops, bool) or not isinstance(min_loops, int) or not 2 <= min_loops <= max_loops:
        raise ConfigError(f"min_loops = {min_loops!r} is out of range; allowed: 2 .. max_loops = {max_loops}")


def halt(logits: Float[Tensor, "iteration batch d_vocab"], *, kl: float = 1e-3, min_loops: int = 2) -> Halted:
    """:func:`halting_predictions` from answer logits already read after every iteration
    (:func:`iteration_logits`; the last row is the most loops allowed)."""
    max_loops = logits.shape[0]
    _check_halting(kl, min_loops, max_loops)
    logits = logits.float()
    logp = F.log_softmax(logits, dim=-1)
    moved = (logp[1:].exp() * (logp[1:] - logp[:-1])).sum(-1)  # (iteration - 1, batch): KL(p_t || p_{t-1})
    settled = moved < kl
    settled[: min_loops - 2] = False
    never = torch.full_like(settled[0], True)
    first = torch.cat([settled, never[None]]).float().argmax(0)  # index into moved, or len(moved) if none
    iteration = torch.clamp(first + 2, max=max_loops)  # moved[i] compares iterations i + 2 and i + 1
    rows = torch.arange(logits.shape[1], device=logits.device)
    chosen = logits[iteration - 1, rows]
    return Halted(prediction=chosen.argmax(-1), iteration=iteration, logits=chosen)


__all__ = ["Halted", "halt", "halting_predictions", "iteration_logits"]
