"""Running interventions: one forward with every piece hooked in, optionally from a cached residual.

:func:`run_with_interventions` is the engine's forward; :func:`cache_activations` reads
activations on the way; :func:`activation_gradients` adds one backward and is the only
place grokscope takes gradients with respect to activations (attribution patching, edge
attribution).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.intervene.checks import check_hook, check_layer, n_layers
from interp.intervene.pieces import GradLeaf, Intervention, Read
from interp.models.protocol import Bridge


def run_with_interventions(
    bridge: Bridge,
    inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_model"],
    interventions: Iterable[Intervention] = (),
    *,
    start_at_layer: int | None = None,
    answer_pos: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch pos d_vocab"] | Float[Tensor, "batch d_vocab"]:
    """One forward with every intervention hooked in; returns the logits.

    ``inputs`` are token ids, or with ``start_at_layer=L`` the residual stream entering block
    ``L`` (``L = n_layers``: the final residual, only the unembedding runs). A forward that
    starts at ``L`` runs the model's own blocks ``L..`` then its final LayerNorm and
    unembedding, exactly as the full forward would from that residual; hooks of blocks below
    ``L`` do not fire. With ``answer_pos`` only the logits at those positions are computed.
    Gradients flow as usual; wrap the call in ``torch.no_grad()`` when you need none.
    """
    interventions = list(interventions)
    hooks = [(check_hook(bridge, iv.hook), iv) for iv in interventions]
    with bridge.hooks(fwd_hooks=hooks):
        if start_at_layer is None:
            logits = bridge(inputs)
            if answer_pos is not None:
                logits = logits[torch.arange(logits.shape[0], device=logits.device), answer_pos.to(logits.device)]
            return logits
        n = n_layers(bridge)
        if not 0 <= start_at_layer <= n:
            check_layer(start_at_layer, n + 1, "start layer")
        resid = inputs
        extra = block_inputs(bridge, resid) if start_at_layer < n else {}
        for block in bridge.blocks[start_at_layer:]:
            out = block(resid, **extra)
            resid = out[0] if isinstance(out, tuple) else out
        if answer_pos is not None:
            resid = resid[torch.arange(resid.shape[0], device=resid.device), answer_pos.to(resid.device)]
        return bridge.unembed(bridge.ln_final(resid))


def block_inputs(bridge: Bridge, resid: Float[Tensor, "batch pos d_model"]) -> dict[str, Any]:
    """What a block of ``bridge`` takes besides the residual: nothing in GPT-2; a rotary model's blocks
    take the (cos, sin) of positions ``0 .. pos - 1`` from its rotary embedding (whose hooks fire)."""
    rotary = getattr(bridge, "rotary_emb", None)
    if rotary is None:
        return {}
    positions = torch.arange(resid.shape[1], device=resid.device)[None]
    return {"position_embeddings": rotary(resid, positions)}


def cache_activations(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    hooks: Iterable[str],
    interventions: Iterable[Intervention] = (),
    *,
    detach: bool = True,
) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
    """Logits and the activations at ``hooks`` of one forward (after ``interventions``)."""
    store: dict[str, Tensor] = {}
    reads = [Read(h, store=store, detach=detach) for h in dict.fromkeys(hooks)]
    logits = run_with_interventions(bridge, tokens, [*interventions, *reads])
    return logits, store


def activation_gradients(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    hooks: Sequence[str],
    objective: Callable[[Tensor], Float[Tensor, " batch"]],
    interventions: Sequence[Intervention] = (),
    *,
    answer_pos: Int[Tensor, " batch"] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor], Float[Tensor, " batch"]]:
    """The activations at ``hooks``, the gradient of ``objective`` with respect to each, and its values.

    One forward (``interventions`` applied, then a :class:`GradLeaf` at ``hook_embed`` and a
    gradient-keeping :class:`Read` at each hook) and one backward of ``objective(logits).sum()``;
    ``logits`` are at ``answer_pos`` when given. Examples do not interact, so that gradient is
    each example's own. A hook the objective does not depend on gets a zero gradient. Every
    tensor returned is detached; the model's weights get no gradient.
    """
    store: dict[str, Tensor] = {}
    reads = [Read(h, store=store, detach=False) for h in hooks]
    with torch.enable_grad():
        logits = run_with_interventions(
            bridge, tokens, [*interventions, GradLeaf("hook_embed"), *reads], answer_pos=answer_pos
        )
        values = objective(logits)
        grads = torch.autograd.grad(values.sum(), [store[h] for h in hooks], allow_unused=True)
    acts = {h: store[h].detach() for h in hooks}
    return (
        acts,
        {h: (torch.zeros_like(acts[h]) if g is None else g.detach()) for h, g in zip(hooks, grads)},
        values.detach(),
    )
