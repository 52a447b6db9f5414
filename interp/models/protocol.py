"""The types analyses take a model as: a hooked :class:`Bridge`, or a plain model that they wrap.

Every analysis runs on TransformerLens 4's ``TransformerBridge`` in compatibility mode
(:func:`interp.models.to_bridge`). :class:`Bridge` names what grokscope uses of it, so that
signatures say what they need without importing TransformerLens at import time (the
protocol is runtime-checkable: ``isinstance(x, Bridge)`` checks that the members exist).
:data:`HookedModel` is what the public analyses accept: a bridge, or the plain Hugging Face
module the trainer produced, of either family (``GPT2LMHeadModel``, ``LlamaForCausalLM``:
:data:`~interp.models.family.CausalLM`), wrapped on the way in by ``as_bridge``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from interp.models.family import CausalLM


@runtime_checkable
class Bridge(Protocol):
    """A hooked transformer: TransformerLens 4's ``TransformerBridge`` in compatibility mode."""

    cfg: Any
    """``n_layers``, ``n_heads``, ``d_model``, ``d_head``, ``d_vocab``, ``n_ctx``, ``device``."""
    blocks: nn.ModuleList
    hook_dict: dict[str, Any]
    """Hook points by TransformerLens name (``blocks.0.hook_resid_pre`` ...)."""
    W_E: Tensor
    """The token embedding, ``d_vocab d_model`` (its dtype is the model's)."""

    def __call__(self, inputs: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """The forward pass: logits ``batch pos d_vocab`` of token ids ``batch pos``."""

    def hooks(self, fwd_hooks: Any = ..., bwd_hooks: Any = ..., **kwargs: Any) -> AbstractContextManager:
        """A context in which the given forward and backward hooks (``(name, fn)`` pairs) are attached."""

    def unembed(self, resid: Tensor) -> Tensor:
        """Logits ``... d_vocab`` of a final residual ``... d_model`` (after ``ln_final``)."""

    def ln_final(self, resid: Tensor) -> Tensor:
        """The final LayerNorm of a residual ``... d_model``."""

    def run_with_cache(self, inputs: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        """The logits and the cache of every hook's activation."""

    # Hooks that exist on every bridge but fire only when switched on (edge attribution).
    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Switch per-head outputs (``attn.hook_result``) on or off."""

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Switch per-head q, k and v inputs (``hook_q_input`` ...) on or off."""

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """Switch the MLP input hook (``hook_mlp_in``) on or off."""

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """Switch the attention input hook (``hook_attn_in``) on or off."""


HookedModel = Bridge | CausalLM
"""A model an analysis accepts: a :class:`Bridge`, or a plain model it wraps with ``to_bridge``."""

__all__ = ["Bridge", "HookedModel"]
