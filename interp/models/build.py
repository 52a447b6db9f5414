"""Build a model of either family from its config, and wrap it as a TransformerLens 4 bridge.

:func:`build_model` is the one constructor: the family's module (:mod:`interp.models.gpt2`,
:mod:`interp.models.llama`) from a seeded RNG, then what every family shares: zero
residual writers (``zero_init_residual``) and blocks tied into a looped stack.
:func:`to_bridge` wraps a copy as a ``TransformerBridge`` in compatibility mode, through
TransformerLens's adapter of the family's Hugging Face architecture; both families give the
same classic hook names.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from interp.configs import check_range
from interp.errors import ConfigError
from interp.models.config import ModelConfig
from interp.models.family import (
    HF_ARCHITECTURE,
    CausalLM,
    decoder_blocks,
    family_of,
    residual_writers,
    shared_parameter_groups,
    tie_blocks,
)
from interp.models.gpt2 import build_gpt2
from interp.models.llama import build_llama
from interp.models.protocol import Bridge

_BUILDERS: dict[str, Callable[[ModelConfig, int, int], CausalLM]] = {"gpt2": build_gpt2, "llama": build_llama}


def default_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def zero_residual_writers(model: CausalLM) -> None:
    """Set every block's attention output and MLP down projection (weights and biases) to zero."""
    with torch.no_grad():
        for block in decoder_blocks(model):
            for proj in residual_writers(block):
                for param in proj.parameters():
                    param.zero_()


def build_model(
    cfg: ModelConfig,
    d_vocab: int,
    n_ctx: int,
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> CausalLM:
    """A freshly initialised model of ``cfg.family`` (a Hugging Face module) for a vocabulary of ``d_vocab`` tokens.

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    ``n_ctx`` is the longest sequence to train on; ``cfg.n_ctx``, when set, must be at least
    that and gives the model's context. Looped models (``cfg.loops``, ``cfg.share_layers``)
    apply a stack of ``cfg.n_stack`` blocks ``cfg.n_loops`` times (:mod:`interp.models.looped`).
    """
    check_range("d_vocab", d_vocab, low=1)
    check_range("n_ctx", n_ctx, low=1)
    if cfg.n_ctx is not None:
        if cfg.n_ctx < n_ctx:
            raise ConfigError(
                f"model.n_ctx = {cfg.n_ctx} is shorter than the longest training sequence ({n_ctx} tokens); "
                f"set model.n_ctx >= {n_ctx} or leave it unset"
            )
        n_ctx = cfg.n_ctx
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = _BUILDERS[cfg.family](cfg, d_vocab, n_ctx)
    if cfg.zero_init_residual:
        zero_residual_writers(model)
    if cfg.n_loops > 1:
        tie_blocks(model, cfg.n_stack)
    return model.to(device if device is not None else default_device())


def has_normalization(model: nn.Module) -> bool:
    """Does ``model`` normalise its residual stream (False for ``model.normalization = "none"``)."""
    return any(isinstance(m, (nn.LayerNorm, LlamaRMSNorm)) for m in model.modules())


def to_bridge(model: CausalLM, *, process_weights: bool | None = None) -> Bridge:
    """Wrap a copy of ``model`` as a TransformerLens 4 ``TransformerBridge`` in compatibility mode.

    The bridge is an analysis view: it is built on a deep copy (the bridge rewrites the module
    it wraps in place), in eval mode, with the classic hook names and per-head result hooks
    (``blocks.{L}.attn.hook_result``) switched on.

    ``process_weights`` (default: on unless layers are shared) applies TransformerLens's
    output-preserving weight processing (fold the norms' weights, centre writing weights
    under LayerNorm), as ``HookedTransformer`` did. It is off for parameter-shared models,
    where it would process shared tensors once per applied layer, and for models without
    LayerNorm, whose norm slots (still hooked: ``hook_scale`` is 1, ``hook_normalized`` the
    input) pass through.
    """
    from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    family = family_of(model)
    shared = bool(shared_parameter_groups(decoder_blocks(model)))
    normalised = has_normalization(model)
    if process_weights is None:
        process_weights = not shared and normalised
    if process_weights and not normalised:
        raise ConfigError("process_weights=True folds LayerNorm, and this model has none; leave it unset")
    view = copy.deepcopy(model).eval()
    # The bridge logs a note about the missing tokenizer; there is none by design.
    tl_logger = logging.getLogger("transformer_lens")
    previous = tl_logger.level
    tl_logger.setLevel(logging.ERROR)
    try:
        bridge = build_bridge_from_module(
            view, HF_ARCHITECTURE[family], hf_config=view.config, model_name=f"grokscope-{family}"
        )
        for module in bridge.modules():  # TL's own switch for a norm slot that is the identity
            if isinstance(module, NormalizationBridge) and isinstance(module.original_component, nn.Identity):
                module.use_native_layernorm_autograd = True
        bridge.enable_compatibility_mode(disable_warnings=True, no_processing=not process_weights, center_unembed=False)
    finally:
        tl_logger.setLevel(previous)
    bridge.set_use_attn_result(True)
    bridge.eval()
    return bridge


__all__ = ["build_model", "default_device", "has_normalization", "to_bridge", "zero_residual_writers"]
