"""The llama family: a Llama-style transformer built from a ``LlamaConfig``.

Pre-norm blocks like GPT-2's, with three differences that matter for reasoning in depth:
rotary position embeddings (RoPE: each head's queries and keys are rotated by an angle
proportional to the position, so attention scores depend on relative offsets and nothing
is added to the residual stream), RMSNorm (a scale, no centring, no bias) and a gated MLP
(``down(act(gate(x)) * up(x))``, SwiGLU with ``activation = "silu"``). No biases anywhere.

``positions = "none"`` replaces the rotary embedding by :class:`NoRotary` (cos 1, sin 0:
queries and keys pass unrotated), a NoPE llama. The norms are :class:`RMSNorm`, Hugging Face's
computed in float64 for a float64 model (its own rounds every input to float32), so that a
float64 model is float64 throughout, as the analyses' tight tests need. No network access, no tokenizer; attention
is the eager implementation (the fused kernels' set-up dominates on prompts of a few
tokens), and no key-value cache is built in a forward.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from interp.models.config import ModelConfig
from interp.models.family import HF_COMMON


def llama_config(cfg: ModelConfig, d_vocab: int, n_ctx: int) -> LlamaConfig:
    """The Hugging Face ``LlamaConfig`` for ``cfg`` with vocabulary and context sizes filled in
    (eager attention, no special tokens: :data:`~interp.models.family.HF_COMMON`)."""
    return LlamaConfig(
        vocab_size=d_vocab,
        max_position_embeddings=n_ctx,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        intermediate_size=cfg.mlp_width,
        hidden_act=cfg.activation,
        rms_norm_eps=cfg.layer_norm_eps,
        initializer_range=cfg.init_range,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        use_cache=False,
        **HF_COMMON,
    )


class RMSNorm(LlamaRMSNorm):
    """Llama's RMSNorm in at least float32: float64 inputs stay float64 (the same function otherwise)."""

    def forward(self, hidden_states: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        """``weight * x / sqrt(mean(x^2) + eps)``."""
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.promote_types(input_dtype, torch.float32))
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class NoRotary(nn.Module):
    """The rotary embedding of a llama without positions: cos 1 and sin 0 at every position (no rotation)."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.head_dim = head_dim

    def forward(
        self, x: Float[Tensor, "batch pos d_model"], position_ids: Int[Tensor, "batch_or_1 pos"]
    ) -> tuple[Float[Tensor, "batch_or_1 pos d_head"], Float[Tensor, "batch_or_1 pos d_head"]]:
        """(cos, sin) as ``LlamaRotaryEmbedding`` returns them, of the identity rotation."""
        shape = (*position_ids.shape, self.head_dim)
        return torch.ones(shape, dtype=x.dtype, device=x.device), torch.zeros(shape, dtype=x.dtype, device=x.device)


def build_llama(cfg: ModelConfig, d_vocab: int, n_ctx: int) -> LlamaForCausalLM:
    """A freshly initialised llama of ``cfg`` (from the global RNG; :func:`interp.models.build_model` seeds it)."""
    model = LlamaForCausalLM(llama_config(cfg, d_vocab, n_ctx))
    for block in model.model.layers:
        block.input_layernorm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        block.post_attention_layernorm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps)
    model.model.norm = RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps)
    if cfg.positions == "none":
        model.model.rotary_emb = NoRotary(cfg.d_head)
    return model


__all__ = ["NoRotary", "RMSNorm", "build_llama", "llama_config"]
