"""Where the two model families differ, in one place: the module's parts by role.

grokscope trains Hugging Face modules of two families (``ModelConfig.family``):

* ``gpt2``: ``GPT2LMHeadModel``; blocks ``model.transformer.h``, each writing to the residual
  stream through ``attn.c_proj`` and ``mlp.c_proj`` (``Conv1D``: ``x @ W + b``);
* ``llama``: ``LlamaForCausalLM``; blocks ``model.model.layers``, writing through
  ``self_attn.o_proj`` and ``mlp.down_proj`` (``nn.Linear``: ``x @ W.T``, no bias).

Code that needs a part of the plain module (the trainer's answer logits, looped models,
checkpoints, ROME's weight edit) asks for it by role here (:func:`trunk`, :func:`decoder_blocks`,
:func:`residual_writers`, :func:`context_size`) instead of by a family's attribute names.
Analyses otherwise run on the TransformerLens bridge, whose classic hook names are the same
for both families.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from torch import nn
from transformers import GPT2LMHeadModel, LlamaForCausalLM

from interp.errors import ConfigError

CausalLM = GPT2LMHeadModel | LlamaForCausalLM
"""A plain Hugging Face model grokscope builds (:func:`interp.models.build_model`), of either family."""

Family = Literal["gpt2", "llama"]

HF_ARCHITECTURE: dict[str, str] = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
"""The Hugging Face (and TransformerLens adapter) architecture name of each family."""


HF_COMMON: dict[str, object] = {
    "bos_token_id": None,
    "eos_token_id": None,
    "pad_token_id": None,
    "attn_implementation": "eager",
}
"""What every family's Hugging Face config sets alike: no special tokens (the vocabulary has its own),
eager attention (on prompts of a few tokens the fused kernels' set-up cost dominates)."""


def family_of(model: nn.Module) -> Family:
    """``"gpt2"`` or ``"llama"``: the family of a plain model; anything else is a one-line ConfigError."""
    if isinstance(model, GPT2LMHeadModel):
        return "gpt2"
    if isinstance(model, LlamaForCausalLM):
        return "llama"
    raise ConfigError(
        f"expected a GPT2LMHeadModel or a LlamaForCausalLM, got {type(model).__name__}; "
        "build one with interp.models.build_model"
    )


def trunk(model: CausalLM) -> nn.Module:
    """The model without its unembedding: ``trunk(model)(input_ids=...).last_hidden_state`` is the final
    (normalised) residual stream."""
    return model.transformer if family_of(model) == "gpt2" else model.model


def final_norm(model: CausalLM) -> nn.Module:
    """The normalisation between the last block and the unembedding (an identity without LayerNorm)."""
    return trunk(model).ln_f if family_of(model) == "gpt2" else trunk(model).norm


def decoder_blocks(model: CausalLM) -> nn.ModuleList:
    """The applied blocks, in order (a looped model's shared blocks once per application)."""
    return trunk(model).h if family_of(model) == "gpt2" else trunk(model).layers


def set_decoder_blocks(model: CausalLM, blocks: nn.ModuleList | list[nn.Module]) -> None:
    """Make ``blocks`` the model's applied blocks (the config's layer count follows)."""
    if not isinstance(blocks, nn.ModuleList):
        blocks = nn.ModuleList(blocks)
    if family_of(model) == "gpt2":
        model.transformer.h = blocks
    else:
        model.model.layers = blocks
    model.config.num_hidden_layers = len(blocks)


def attention(block: nn.Module) -> nn.Module:
    """A block's attention module (``attn`` in GPT-2, ``self_attn`` in llama); its ``layer_idx`` names the block."""
    return block.attn if hasattr(block, "attn") else block.self_attn


def residual_writers(block: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The two projections through which a block writes to the residual stream: attention output, MLP down."""
    if hasattr(block, "attn"):
        return block.attn.c_proj, block.mlp.c_proj
    return block.self_attn.o_proj, block.mlp.down_proj


def context_size(model: CausalLM) -> int:
    """The longest prompt the model takes (GPT-2's ``n_positions``, llama's ``max_position_embeddings``)."""
    return int(model.config.max_position_embeddings)


def tie_blocks(model: CausalLM, n_unique: int) -> None:
    """Make block ``i`` use the very ``Parameter`` objects of block ``i % n_unique`` (every block after the first ``n_unique``)."""
    blocks = decoder_blocks(model)
    for i in range(n_unique, len(blocks)):
        source, target = blocks[i % n_unique], blocks[i]
        for (name_s, mod_s), (name_t, mod_t) in zip(source.named_modules(), target.named_modules()):
            assert name_s == name_t, (name_s, name_t)
            for pname, param in list(mod_s.named_parameters(recurse=False)):
                setattr(mod_t, pname, param)


def shared_parameter_groups(model: nn.Module) -> list[list[str]]:
    """Names of parameters that share storage, one list per shared tensor (empty if none)."""
    by_ptr: dict[int, list[str]] = defaultdict(list)
    for name, param in model.named_parameters(remove_duplicate=False):
        by_ptr[param.data_ptr()].append(name)
    return [names for names in by_ptr.values() if len(names) > 1]


__all__ = [
    "HF_ARCHITECTURE",
    "CausalLM",
    "Family",
    "attention",
    "context_size",
    "decoder_blocks",
    "family_of",
    "final_norm",
    "residual_writers",
    "set_decoder_blocks",
    "shared_parameter_groups",
    "tie_blocks",
]
