"""Looped (recurrent-depth) transformers: one stack of blocks applied ``T`` times.

A looped model with a stack of ``L`` blocks and ``T`` loops is a model (of either family) of ``L * T``
*applied* blocks in which block ``i`` uses the very ``Parameter`` objects of block
``i % L``: the weights exist once (the optimiser, the parameter count and the checkpoint
see them once), while every applied block stays its own module, so the bridge hooks each
iteration under its own name (``blocks.{i}.hook_resid_post`` for ``i`` in ``0 .. L*T-1``)
and the logit lens, patching, tracing and circuits run per iteration unchanged.

The paper's cross-layer sharing is the case ``T = 2``. Because the stack is the only set
of weights, the number of loops is free at inference: :func:`with_loops` re-applies the
same stack more (or fewer) times, the recurrent-depth recipe for harder inputs (more hops)
than the model trained on. :func:`iteration_ends` picks the lens layers at the end of
each iteration (the residual after ``t * L`` blocks).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.data import Example, Vocab, make_batch
from interp.errors import ConfigError
from interp.models.family import CausalLM, attention, context_size, decoder_blocks, set_decoder_blocks, tie_blocks


def _block_key(block: nn.Module) -> tuple[int, ...]:
    """The identity of a block's weights: the ids of its parameter objects."""
    return tuple(id(p) for p in block.parameters())


def loop_stack_size(model: CausalLM) -> int:
    """``L``, the number of distinct blocks, for a model whose block ``i`` shares block ``i % L``'s weights.

    A model whose sharing is not that layout (e.g. blocks tied in another order) is a ConfigError.
    """
    blocks = list(decoder_blocks(model))
    keys = [_block_key(b) for b in blocks]
    stack = len(dict.fromkeys(keys))
    if len(blocks) % stack or any(keys[i] != keys[i % stack] for i in range(len(blocks))):
        raise ConfigError(
            f"the model's {len(blocks)} blocks are not a stack of {stack} distinct blocks applied in order; "
            "build it with model.loops (or model.share_layers)"
        )
    return stack


def n_loops(model: CausalLM) -> int:
    """How many times the model applies its block stack."""
    return len(decoder_blocks(model)) // loop_stack_size(model)


def with_loops(model: CausalLM, loops: int) -> CausalLM:
    """A copy of ``model`` that applies its block stack ``loops`` times (the same weights, copied once).

    ``loops`` may be larger than in training (depth extrapolation) or smaller; the copy's
    ``config.num_hidden_layers`` is ``stack * loops``. ``model`` itself is unchanged.
    """
    if isinstance(loops, bool) or not isinstance(loops, int) or loops < 1:
        raise ConfigError(f"loops = {loops!r} is out of range; allowed: an integer >= 1")
    stack = loop_stack_size(model)
    out = copy.deepcopy(model)
    blocks = list(decoder_blocks(out))[:stack]
    for i in range(stack, stack * loops):
        block = copy.deepcopy(blocks[i % stack])
        attention(block).layer_idx = i
        blocks.append(block)
    set_decoder_blocks(out, blocks)
    tie_blocks(out, stack)
    return out


@contextlib.contextmanager
def applied_loops(model: CausalLM, loops: int) -> Iterator[CausalLM]:
    """Within the block, ``model`` applies its stack only ``loops`` times (at most its own number).

    The first ``stack * loops`` applied blocks run and the rest are skipped; nothing is
    copied, so gradients reach the shared weights as usual (training with fewer loops for
    some prompts). For more loops than the model was built with, use :func:`with_loops`.
    """
    built = n_loops(model)
    if isinstance(loops, bool) or not isinstance(loops, int) or not 1 <= loops <= built:
        raise ConfigError(f"loops = {loops!r} is out of range; allowed: an integer in 1 .. {built} (the model's loops)")
    blocks = decoder_blocks(model)
    set_decoder_blocks(model, list(blocks)[: loop_stack_size(model) * loops])
    try:
        yield model
    finally:
        set_decoder_blocks(model, blocks)


def iteration_ends(n_stack: int, loops: int) -> list[int]:
    """Lens layers at the end of each iteration: the residual after ``t * n_stack`` blocks, ``t = 0 .. loops``."""
    if n_stack < 1 or loops < 1:
        raise ConfigError(f"n_stack = {n_stack} and loops = {loops} must both be >= 1")
    return [t * n_stack for t in range(loops + 1)]


def per_iteration(values: Float[Tensor, " layer *rest"], n_stack: int) -> Float[Tensor, " iteration *rest"]:
    """Rows of a per-layer lens table (``n_layers + 1`` rows) at the end of each iteration."""
    n_rows = values.shape[0]
    if (n_rows - 1) % n_stack:
        raise ConfigError(
            f"a lens over {n_rows - 1} applied blocks is not a whole number of iterations of {n_stack} blocks"
        )
    return values[iteration_ends(n_stack, (n_rows - 1) // n_stack)]


@torch.no_grad()
def loop_accuracy(model: CausalLM, examples: Sequence[Example], vocab: Vocab, loops: Sequence[int]) -> dict[int, float]:
    """Exact-match answer accuracy of ``model`` with its stack applied ``T`` times, for each ``T`` in ``loops``.

    The recurrent-depth test: a looped model trained with ``T`` loops, scored with more (or
    fewer) loops on the same prompts (e.g. chains deeper than any it trained on).
    """
    if not examples:
        raise ConfigError("no examples to score")
    device = next(model.parameters()).device
    batch = make_batch(list(examples), vocab, device)
    n_pos = context_size(model)
    if batch.tokens.shape[1] > n_pos:
        raise ConfigError(
            f"the prompts need {batch.tokens.shape[1]} positions, the model has {n_pos}; "
            "train with model.n_ctx large enough for the deepest test"
        )
    out = {}
    for t in loops:
        looped = with_loops(model, t).eval()
        logits = looped(input_ids=batch.tokens).logits  # (batch, pos, d_vocab)
        pred = logits[torch.arange(len(batch), device=device), batch.answer_pos].argmax(-1)
        out[t] = float((pred == batch.answer).float().mean())
    return out


__all__ = [
    "applied_loops",
    "iteration_ends",
    "loop_accuracy",
    "loop_stack_size",
    "n_loops",
    "per_iteration",
    "with_loops",
]
