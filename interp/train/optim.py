"""What a training step runs on besides the model: optimizers, learning rate, device, precision.

AdamW decays the weight matrices but not biases and LayerNorm (the paper). With
``train.optimizer = "muon"`` the hidden matrices (attention and MLP) take Muon steps and
AdamW keeps the embeddings (tied to the unembedding), biases and LayerNorm. The learning
rate is a function of the step (linear warm-up, then constant or cosine), so no scheduler
state exists. The rest of the optimisation state (optimizer moments, slow-gradient filter,
loss scale, RNG) goes to ``trainer.safetensors`` as flat tensors, never pickled.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import Tensor, nn

from interp.errors import ConfigError
from interp.models import default_device
from interp.train.config import TrainConfig
from interp.train.grokfast import GradientFilter
from interp.train.muon import Muon

_NS_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}


def build_optimizers(
    model: nn.Module, tc: TrainConfig, *, fused: bool = True, muon_cls: type = Muon
) -> dict[str, torch.optim.Optimizer]:
    """The optimizers of a run, by name: ``"optimizer"`` (AdamW) and, with ``train.optimizer = "muon"``, ``"muon"``.

    ``fused=False`` gives foreach AdamW; ``muon_cls`` another Muon class (``torch.optim.Muon``,
    for the benchmarks).
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases and LayerNorm
    muon = tc.optimizer == "muon"
    hidden = [p for p in matrices if id(p) not in embeddings] if muon else []
    decay = [p for p in matrices if id(p) in embeddings] if muon else matrices
    out: dict[str, torch.optim.Optimizer] = {
        "optimizer": torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=(tc.beta1, tc.beta2),
            # one fused kernel for all parameters (CPU and CUDA): several times faster than foreach
            **({"fused": True} if fused else {"foreach": True}),
        )
    }
    if hidden:
        out["muon"] = muon_cls(
            hidden,
            lr=tc.lr,
            weight_decay=tc.weight_decay,
            momentum=tc.muon_momentum,
            ns_steps=tc.muon_ns_steps,
            # the update's RMS matches AdamW's, so train.lr means the same for both
            adjust_lr_fn="match_rms_adamw",
            **({} if muon_cls is torch.optim.Muon else {"ns_dtype": _NS_DTYPES[tc.muon_ns_dtype]}),
        )
    return out


def learning_rate(tc: TrainConfig, step: int) -> float:
    """Learning rate of 0-based ``step``: linear warm-up, then constant or cosine decay."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    if tc.lr_schedule == "constant":
        return tc.lr
    end = tc.decay_steps if tc.decay_steps is not None else tc.max_steps
    progress = min(1.0, (step - tc.warmup_steps) / max(1, end - tc.warmup_steps))
    floor = tc.min_lr_ratio * tc.lr
    return floor + (tc.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a device (``auto``: CUDA if available, else the CPU)."""
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available here; use auto or cpu")
    return device


def autocast_for(precision: str, device: torch.device) -> tuple[contextlib.AbstractContextManager | None, bool]:
    """(autocast context or None, whether a GradScaler is needed) for ``train.precision`` on ``device``.

    ``bf16`` autocasts on CUDA and on the CPU (matrix products in bfloat16, weights,
    optimizer state and reductions in float32); ``fp16`` needs CUDA and a loss scale;
    ``auto`` is bf16 on a CUDA device that supports it, else fp32.
    """
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16), False
    if device.type != "cuda":
        raise ConfigError(f"train.precision = {precision} needs a CUDA device; use fp32, bf16 or auto on the CPU")
    return torch.autocast(device_type="cuda", dtype=torch.float16), True


def trainer_tensors(
    optimizers: dict[str, torch.optim.Optimizer],
    grad_filter: GradientFilter | None,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
) -> dict[str, Tensor]:
    """What ``trainer.safetensors`` holds: RNG state, optimizer state as flat tensors
    (``{optimizer name}.{param index}.{key}``), filter state and the loss scale."""
    out: dict[str, Tensor] = {"rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device)
    for prefix, opt in optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            for key, value in st.items():
                out[f"{prefix}.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    if grad_filter is not None:
        out.update(grad_filter.state_tensors())
    if scaler is not None:
        out["scaler.scale"] = torch.tensor(scaler.get_scale())
    return out


def restore_trainer_tensors(
    tensors: dict[str, Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    grad_filter: GradientFilter | None,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
) -> None:
    """Put back what :func:`trainer_tensors` wrote (optimizer ``step`` counters stay on the CPU)."""
    for prefix, opt in optimizers.items():
        opt_state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix + "."):
                _, i, name = key.split(".", 2)
                opt_state.setdefault(int(i), {})[name] = value.to(device) if name != "step" else value
        opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
    if grad_filter is not None:
        grad_filter.load_state_tensors(tensors)
    if scaler is not None and "scaler.scale" in tensors:
        scaler.update(float(tensors["scaler.scale"]))
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
