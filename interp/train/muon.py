"""Muon for the hidden weight matrices, with its Newton-Schulz iteration in a dtype the device is fast at.

``torch.optim.Muon`` always orthogonalises the momentum in bfloat16. That is right on a GPU,
but a CPU without bfloat16 matrix units (AVX2, most laptops) multiplies bfloat16 matrices
about 16x slower than float32: on the ``composition-small`` model a whole training step takes
0.55 s with ``torch.optim.Muon`` against 0.07 s with this class (``benchmarks/step_overhead.py``).
:class:`Muon` is the same optimiser, with the same state and the same update, except that the
iteration runs in ``ns_dtype`` (default: :func:`fast_ns_dtype`, bfloat16 where the device
multiplies bfloat16 matrices in hardware and the matrix is large enough to gain, float32
elsewhere). With
``ns_dtype=torch.bfloat16`` it computes exactly what ``torch.optim.Muon`` computes.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim._muon import _adjust_lr  # torch's per-shape learning-rate scaling, reused as is


def orthogonalize(
    update: Tensor, ns_coefficients: tuple[float, float, float], ns_steps: int, eps: float, dtype: torch.dtype
) -> Tensor:
    """Muon's quintic Newton-Schulz iteration toward ``U V^T`` of ``update = U S V^T``, in ``dtype``."""
    a, b, c = ns_coefficients
    x = update.to(dtype)
    tall = update.size(0) > update.size(1)
    if tall:
        x = x.T
    # not in place: without Nesterov, ``update`` is the momentum buffer itself, and in float32
    # ``.to(dtype)`` returns the same tensor
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(ns_steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


BF16_MIN_SIDE = 256
"""On a CPU, the smallest side of a matrix whose iteration :func:`fast_ns_dtype` runs in
bfloat16: below it the conversions cost about what the faster products save
(``benchmarks/step_overhead.py`` times both dtypes)."""


def fast_ns_dtype(param: Tensor) -> torch.dtype:
    """The faster dtype for the iteration of ``param``: bfloat16 on CUDA, and on a CPU that
    multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX tiles) for matrices of at
    least :data:`BF16_MIN_SIDE` rows and columns; float32 otherwise."""
    if param.device.type != "cpu":
        return torch.bfloat16
    fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.bfloat16 if fast and min(param.shape) >= BF16_MIN_SIDE else torch.float32


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` with the Newton-Schulz iteration in ``ns_dtype``.

    ``ns_dtype=None`` picks per parameter with :func:`fast_ns_dtype`.
    Arguments, parameter groups and ``state_dict`` are those of ``torch.optim.Muon``.
    """

    def __init__(self, params, *, ns_dtype: torch.dtype | None = None, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype

    def dtype_for(self, param: Tensor) -> torch.dtype:
        """The dtype of ``param``'s iteration: ``ns_dtype``, or :func:`fast_ns_dtype` without one."""
        if self.ns_dtype is not None:
            return self.ns_dtype
        return fast_ns_dtype(param)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One Muon step on every group: momentum, then the update orthogonalised in :meth:`dtype_for`'s dtype."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            bufs: list[Tensor] = []
            self._init_group(group, params, grads, bufs)
            lr = float(group["lr"])
            momentum = group["momentum"]
            for param, grad, buf in zip(params, grads, bufs):
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalize(
                    update, group["ns_coefficients"], group["ns_steps"], group["eps"], self.dtype_for(param)
                )
                param.mul_(1 - lr * group["weight_decay"])
                param.add_(update, alpha=-_adjust_lr(lr, group["adjust_lr_fn"], param.shape))
        return loss
