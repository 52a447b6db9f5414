"""The direct logit effect of a dictionary feature: the tokens its decoder direction promotes and suppresses.

The direct logit effect of a feature is its decoder row written into the residual stream
(through ``W_O`` for ``attn.hook_z``, ``W_out`` for ``mlp.hook_post``), pushed through the
final LayerNorm *linearised*: centred (a LayerNorm's; an RMSNorm, or no norm, does not
centre), divided by the mean final-norm scale over the same prompts and positions (read at
``ln_final.hook_scale``), times the norm's weight (folded into ``W_U`` by the bridge's
weight processing), then ``@ W_U`` without the bias.
This is the logit change per unit of feature activation if the normalisation scale stayed
fixed; it ignores every later layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.features.dictionary import SparseDictionary
from interp.intervene import as_bridge
from interp.models.protocol import Bridge, HookedModel

_RESID = re.compile(
    r"^(blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out)"
    r"|ln_final\.hook_in)$"
)
_BLOCK = re.compile(r"^blocks\.(\d+)\.(attn\.hook_z|mlp\.hook_post|attn\.hook_result)$")


def residual_directions(
    bridge: Bridge, hook_name: str, W_dec: Float[Tensor, "feature d_in"]
) -> Float[Tensor, "feature d_model"] | None:
    """Decoder rows as directions written into the residual stream; None for hooks with no such map."""
    if _RESID.match(hook_name):
        return W_dec
    m = _BLOCK.match(hook_name)
    if m is None:
        return None
    block = bridge.blocks[int(m.group(1))]
    if m.group(2) == "attn.hook_z":
        W_O = block.attn.W_O.detach()  # (head, d_head, d_model)
        return torch.einsum("fhd,hdm->fm", W_dec.reshape(W_dec.shape[0], *W_O.shape[:2]).to(W_O.dtype), W_O)
    if m.group(2) == "mlp.hook_post":
        W_out = block.mlp.W_out.detach()
        return W_dec.to(W_out.dtype) @ W_out
    return W_dec.reshape(W_dec.shape[0], -1, int(bridge.cfg.d_model)).sum(1)  # attn.hook_result: head-summed


def feature_logits(
    sae: SparseDictionary, model: HookedModel, features: Sequence[int], ln_scale: float = 1.0
) -> Float[Tensor, "feature d_vocab"] | None:
    """The direct logit effect per unit activation of each of ``features`` (see the module docstring)."""
    bridge = as_bridge(model)
    W_U = bridge.W_U.detach()
    rows = sae.W_dec.detach()[list(features)]
    dirs = residual_directions(bridge, sae.hook_name, rows)
    if dirs is None or dirs.shape[-1] != W_U.shape[0]:
        return None
    dirs = dirs.to(W_U.dtype)
    centres = isinstance(getattr(bridge.ln_final, "original_component", None), nn.LayerNorm)
    centred = dirs - dirs.mean(-1, keepdim=True) if centres else dirs
    w = getattr(bridge.ln_final, "w", None)
    if isinstance(w, Tensor) and w.shape == (W_U.shape[0],):
        centred = centred * w.detach().to(W_U.dtype)
    return (centred / ln_scale) @ W_U


__all__ = ["feature_logits", "residual_directions"]
