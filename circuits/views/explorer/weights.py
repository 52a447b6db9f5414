"""The model's weights for the page: float16, base64, with the shapes the JavaScript forward pass needs.

The page's forward pass (``model.js``) is GPT-2's: a model of another family (llama) is refused
in one line (:func:`check_exportable`), before anything is computed for the page. Hugging Face GPT-2 stores its linear maps as ``Conv1D`` (``x @ W + b`` with ``W`` of shape
``in out``); they are exported in that layout, row-major. :func:`rounded_model` is the model
the page computes: the same module with every parameter rounded to float16 (and back to
the dtype asked for), the reference the page's logits are checked against.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from circuits.space import CircuitError

BLOCK_PARAMS = (
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
)
ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def _b64(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(t).all()) or float(t.abs().max()) > float(torch.finfo(torch.float16).max):
        raise CircuitError("a weight overflows float16 (|w| > 65504); the page cannot hold this model")
    arr = t.numpy().astype("<f2")
    return {"shape": list(arr.shape), "b64": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}


def check_exportable(model: torch.nn.Module) -> GPT2LMHeadModel:
    """``model`` if the page can run it (a Hugging Face GPT-2); otherwise a one-line CircuitError."""
    if not isinstance(model, GPT2LMHeadModel):
        raise CircuitError(
            f"the explorer's in-page model is GPT-2 (model.family = gpt2); it cannot run a {type(model).__name__}"
        )
    return model


def export_weights(model: torch.nn.Module) -> dict[str, Any]:
    """Config and float16 base64 parameters of a Hugging Face GPT-2 (what ``explorer/model.js`` reads)."""
    cfg = check_exportable(model).config
    act = ACTIVATIONS.get(cfg.activation_function)
    if act is None:
        raise CircuitError(f"the page has no {cfg.activation_function!r} activation; use gelu_new, gelu or relu")
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or getattr(cfg, "reorder_and_upcast_attn", False):
        raise CircuitError("the page runs plain GPT-2 attention (no inverse-layer scaling or reordering)")
    sd = model.state_dict()
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    # a model without LayerNorm (model.normalization = "none") has no ln_* parameters: the page skips them
    normalized = "transformer.ln_f.weight" in sd
    blocks = [
        {name: _b64(sd[f"transformer.h.{i}.{name}"]) for name in BLOCK_PARAMS if f"transformer.h.{i}.{name}" in sd}
        for i in range(cfg.n_layer)
    ]
    out: dict[str, Any] = {
        "config": {
            "n_layers": cfg.n_layer,
            "n_heads": cfg.n_head,
            "d_model": cfg.n_embd,
            "d_mlp": int(sd["transformer.h.0.mlp.c_fc.weight"].shape[1]) if cfg.n_layer else 0,
            "d_vocab": cfg.vocab_size,
            "n_ctx": cfg.n_positions,
            "eps": cfg.layer_norm_epsilon,
            "activation": act,
            "tied": tied,
        },
        "wte": _b64(sd["transformer.wte.weight"]),
        "wpe": _b64(sd["transformer.wpe.weight"]),
        "blocks": blocks,
    }
    if normalized:
        out["ln_f"] = {"weight": _b64(sd["transformer.ln_f.weight"]), "bias": _b64(sd["transformer.ln_f.bias"])}
    if not tied:
        out["unembed"] = _b64(sd["lm_head.weight"])
    return out


def rounded_model(model: GPT2LMHeadModel, dtype: torch.dtype = torch.float64) -> GPT2LMHeadModel:
    """A copy of ``model`` in ``dtype`` whose parameters are rounded to float16 first: what the page computes."""
    out = copy.deepcopy(model).to("cpu").eval()
    with torch.no_grad():
        for p in out.parameters():
            p.copy_(p.to(torch.float16).to(p.dtype))
    return out.to(dtype)
