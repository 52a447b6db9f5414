"""The GPT-2 family: the paper's model, built from a ``GPT2Config``.

No network access: the model is built from a config; there is no tokenizer (the
knowledge-graph vocabulary maps tokens to ids itself). Two options change the module
Hugging Face builds: ``normalization = "none"`` replaces every LayerNorm by the identity
(Nanda et al.'s model), and ``positions = "none"`` replaces the position table ``wpe`` by
:class:`NoPositions`, a constant zero (no parameter), so the causal mask alone orders the
tokens.
"""

from __future__ import annotations

import copy

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformers import GPT2Config, GPT2LMHeadModel

from interp.models.config import ModelConfig
from interp.models.family import HF_COMMON

# GPT-2's tanh-approximate GELU as one fused PyTorch kernel: the same function as Hugging Face's
# "gelu_new" (which composes five element-wise ops; max difference ~2e-7), several times faster.
_HF_ACTIVATION = {"gelu_new": "gelu_pytorch_tanh", "gelu": "gelu", "relu": "relu", "silu": "silu"}


def gpt2_config(cfg: ModelConfig, d_vocab: int, n_ctx: int) -> GPT2Config:
    """The Hugging Face ``GPT2Config`` for ``cfg`` with vocabulary and context sizes filled in
    (eager attention, no special tokens: :data:`~interp.models.family.HF_COMMON`)."""
    return GPT2Config(
        vocab_size=d_vocab,
        n_positions=n_ctx,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.mlp_width,
        activation_function=_HF_ACTIVATION[cfg.activation],
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.layer_norm_eps,
        initializer_range=cfg.init_range,
        tie_word_embeddings=cfg.tie_embeddings,
        **HF_COMMON,
    )


def remove_layer_norms(model: GPT2LMHeadModel) -> None:
    """Replace every LayerNorm of ``model`` (``ln_1``, ``ln_2``, ``ln_f``) by the identity."""
    for block in model.transformer.h:
        block.ln_1, block.ln_2 = nn.Identity(), nn.Identity()
    model.transformer.ln_f = nn.Identity()


class NoPositions(nn.Module):
    """GPT-2's position table without positions: every position's embedding is zero.

    ``weight`` is a zero buffer (not a parameter: nothing to train or decay), so that
    TransformerLens's ``W_pos`` and ``hook_pos_embed`` exist, and are zero; it is stored with
    the weights, as TransformerLens's weight processing reads it from the state dict.
    """

    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(n_ctx, d_model))

    def forward(self, position_ids: Int[Tensor, "*batch pos"]) -> Float[Tensor, "*batch pos d_model"]:
        """Zeros of the embedding's width at each position."""
        return self.weight.new_zeros(*position_ids.shape, self.weight.shape[-1])


def build_gpt2(cfg: ModelConfig, d_vocab: int, n_ctx: int) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 of ``cfg`` (from the global RNG; :func:`interp.models.build_model` seeds it)."""
    model = GPT2LMHeadModel(gpt2_config(cfg, d_vocab, n_ctx))
    if cfg.normalization == "none":
        remove_layer_norms(model)
    if cfg.positions == "none":
        model.transformer.wpe = NoPositions(n_ctx, cfg.d_model)
    return model


def with_hf_default_kernels(model: GPT2LMHeadModel) -> GPT2LMHeadModel:
    """A copy of ``model`` with Hugging Face's default kernels: SDPA attention, the composed "gelu_new".

    The same function as ``model`` (the reference that tests and benchmarks compare the faster
    kernels of :func:`interp.models.build_model` against).
    """
    from transformers.activations import NewGELUActivation

    reference = copy.deepcopy(model)
    reference.set_attn_implementation("sdpa")
    for block in reference.transformer.h:
        block.mlp.act = NewGELUActivation()
    return reference
