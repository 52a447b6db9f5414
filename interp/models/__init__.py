"""Hooked transformers for grokking experiments: GPT-2 and a Llama-style family.

The paper trains Hugging Face's GPT-2 from a config (not pretrained). grokscope does the
same, for two families (``ModelConfig.family``: ``"gpt2"``, and ``"llama"`` with RoPE,
RMSNorm and a gated MLP; what differs between them lives in :mod:`interp.models.family`),
and keeps two views of one set of weights:

* the plain Hugging Face module (:func:`build_model`: ``GPT2LMHeadModel`` or
  ``LlamaForCausalLM``) that the trainer optimises, with no hook overhead in the training loop;
* a TransformerLens 4 ``TransformerBridge`` in compatibility mode (:func:`to_bridge`) for
  analysis: classic hook names (``blocks.{L}.hook_resid_post``, ``blocks.{L}.attn.hook_pattern``,
  per-head ``blocks.{L}.attn.hook_result``), ``run_with_cache``, ``run_with_hooks``.

Cross-layer parameter sharing (the paper's appendix E.2) ties block ``i + n/2`` to block
``i``: the first half of the blocks is applied twice. The blocks stay distinct modules
that share ``Parameter`` objects, so every applied layer is hookable under its own name
while the storage is shared. ``ModelConfig.loops`` generalises it to a looped
(recurrent-depth) transformer whose stack is applied ``T`` times, ``T`` changeable at
inference (:mod:`interp.models.looped`).
"""

from interp.models.build import build_model, default_device, to_bridge
from interp.models.config import ModelConfig
from interp.models.family import CausalLM, context_size, family_of, shared_parameter_groups
from interp.models.halting import Halted, halt, halting_predictions, iteration_logits
from interp.models.looped import (
    applied_loops,
    iteration_ends,
    loop_accuracy,
    loop_stack_size,
    n_loops,
    per_iteration,
    with_loops,
)
from interp.models.protocol import Bridge, HookedModel

__all__ = [
    "Bridge",
    "CausalLM",
    "Halted",
    "HookedModel",
    "ModelConfig",
    "applied_loops",
    "build_model",
    "context_size",
    "default_device",
    "family_of",
    "halt",
    "halting_predictions",
    "iteration_ends",
    "iteration_logits",
    "loop_accuracy",
    "loop_stack_size",
    "n_loops",
    "per_iteration",
    "shared_parameter_groups",
    "to_bridge",
    "with_loops",
]
