"""Build the paper's GPT-2 from a config and wrap it as a TransformerLens 4 bridge.

No network access: the model is built from a ``GPT2Config``; there is no tokenizer (the
knowledge-graph vocabulary maps tokens to ids itself).
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from interp.configs import check_range
from interp.errors import ConfigError
from interp.models.config import ModelConfig
from interp.models.protocol import Bridge


def default_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# GPT-2's tanh-approximate GELU as one fused PyTorch kernel: the same function as Hugging Face's
# "gelu_new" (which composes five element-wise ops; max difference ~2e-7), several times faster.
_HF_ACTIVATION = {"gelu_new": "gelu_pytorch_tanh", "gelu": "gelu", "relu": "relu"}


def hf_config(cfg: ModelConfig, d_vocab: int, n_ctx: int) -> GPT2Config:
    """The Hugging Face ``GPT2Config`` for ``cfg`` with vocabulary and context sizes filled in.

    Attention is the plain ("eager") implementation: on prompts of a few tokens it is much
    faster than the fused SDPA kernels, whose set-up cost dominates at that length.
    """
    check_range("d_vocab", d_vocab, low=1)
    check_range("n_ctx", n_ctx, low=1)
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
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation="eager",
    )


def tie_blocks(model: GPT2LMHeadModel, n_unique: int) -> None:
    """Make block ``i + n_unique`` use the very ``Parameter`` objects of block ``i``."""
    blocks = model.transformer.h
    for i in range(n_unique, len(blocks)):
        source, target = blocks[i % n_unique], blocks[i]
        for (name_s, mod_s), (name_t, mod_t) in zip(source.named_modules(), target.named_modules()):
            assert name_s == name_t, (name_s, name_t)
            for pname, param in list(mod_s.named_parameters(recurse=False)):
                setattr(mod_t, pname, param)


def remove_layer_norms(model: GPT2LMHeadModel) -> None:
    """Replace every LayerNorm of ``model`` (``ln_1``, ``ln_2``, ``ln_f``) by the identity."""
    for block in model.transformer.h:
        block.ln_1, block.ln_2 = nn.Identity(), nn.Identity()
    model.transformer.ln_f = nn.Identity()


def has_layer_norm(model: nn.Module) -> bool:
    """Does ``model`` normalise its residual stream (False for ``model.normalization = "none"``)."""
    return any(isinstance(m, nn.LayerNorm) for m in model.modules())


def build_model(
    cfg: ModelConfig,
    d_vocab: int,
    n_ctx: int,
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 (Hugging Face module) for a vocabulary of ``d_vocab`` tokens.

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    ``n_ctx`` is the longest sequence to train on; ``cfg.n_ctx``, when set, must be at least
    that and gives the model's positions. Looped models (``cfg.loops``, ``cfg.share_layers``)
    apply a stack of ``cfg.n_stack`` blocks ``cfg.n_loops`` times (:mod:`interp.models.looped`).
    """
    if cfg.n_ctx is not None:
        if cfg.n_ctx < n_ctx:
            raise ConfigError(
                f"model.n_ctx = {cfg.n_ctx} is shorter than the longest training sequence ({n_ctx} tokens); "
                f"set model.n_ctx >= {n_ctx} or leave it unset"
            )
        n_ctx = cfg.n_ctx
    config = hf_config(cfg, d_vocab, n_ctx)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    if cfg.normalization == "none":
        remove_layer_norms(model)
    if cfg.n_loops > 1:
        tie_blocks(model, cfg.n_stack)
    return model.to(device if device is not None else default_device())


def with_hf_default_kernels(model: GPT2LMHeadModel) -> GPT2LMHeadModel:
    """A copy of ``model`` with Hugging Face's default kernels: SDPA attention, the composed "gelu_new".

    The same function as ``model`` (the reference that tests and benchmarks compare the faster
    kernels of :func:`build_model` against).
    """
    from transformers.activations import NewGELUActivation

    reference = copy.deepcopy(model)
    reference.set_attn_implementation("sdpa")
    for block in reference.transformer.h:
        block.mlp.act = NewGELUActivation()
    return reference


def shared_parameter_groups(model: nn.Module) -> list[list[str]]:
    """Names of parameters that share storage, one list per shared tensor (empty if none)."""
    by_ptr: dict[int, list[str]] = defaultdict(list)
    for name, param in model.named_parameters(remove_duplicate=False):
        by_ptr[param.data_ptr()].append(name)
    return [names for names in by_ptr.values() if len(names) > 1]


def to_bridge(model: GPT2LMHeadModel, *, process_weights: bool | None = None) -> Bridge:
    """Wrap a copy of ``model`` as a TransformerLens 4 ``TransformerBridge`` in compatibility mode.

    The bridge is an analysis view: it is built on a deep copy (the bridge rewrites the module
    it wraps in place), in eval mode, with the classic hook names and per-head result hooks
    (``blocks.{L}.attn.hook_result``) switched on.

    ``process_weights`` (default: on unless layers are shared) applies TransformerLens's
    output-preserving weight processing (fold LayerNorm, centre writing weights), as
    ``HookedTransformer`` did. It is off for parameter-shared models, where it would process
    shared tensors once per applied layer, and for models without LayerNorm, whose norm
    slots (still hooked: ``hook_scale`` is 1, ``hook_normalized`` the input) pass through.
    """
    from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    shared = bool(shared_parameter_groups(model.transformer.h))
    normalised = has_layer_norm(model)
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
        bridge = build_bridge_from_module(view, "GPT2LMHeadModel", hf_config=view.config, model_name="grokscope-gpt2")
        for module in bridge.modules():  # TL's own switch for a norm slot that is the identity
            if isinstance(module, NormalizationBridge) and isinstance(module.original_component, nn.Identity):
                module.use_native_layernorm_autograd = True
        bridge.enable_compatibility_mode(disable_warnings=True, no_processing=not process_weights, center_unembed=False)
    finally:
        tl_logger.setLevel(previous)
    bridge.set_use_attn_result(True)
    bridge.eval()
    return bridge
