"""Slow-gradient amplification (Grokfast, Lee et al. 2024).

Grokking is a slow drift of the weights along a direction the gradient keeps pointing to,
buried under fast, noisy components. Grokfast low-pass filters the gradient and adds
``lamb`` times the filtered gradient back before the optimizer step:

    g_t <- g_t + lamb * h_t,   h_t = alpha * h_{t-1} + (1 - alpha) * g_t      ("ema")
    g_t <- g_t + lamb * mean(g_{t-w+1} .. g_t)                               ("window")

The filter's state is part of a checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class GradientFilter:
    """Stateful Grokfast filter over a model's (unique) parameters."""

    def __init__(self, model: nn.Module, kind: Literal["ema", "window"], *, alpha: float, lamb: float, window: int):
        self.kind = kind
        self.alpha = alpha
        self.lamb = lamb
        self.window = window
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.ema: list[torch.Tensor] | None = None
        # Windowed filter: a ring buffer of the last ``window`` gradients and their running sum.
        self.buffer: list[torch.Tensor] | None = None  # each (window, *param.shape)
        self.total: list[torch.Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def apply(self) -> None:
        """Filter the gradients now in ``.grad`` and amplify their slow component in place."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.kind == "ema":
            if self.ema is None:
                self.ema = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.ema, self.alpha)
                torch._foreach_add_(self.ema, grads, alpha=1 - self.alpha)
            for p, g, h in zip(self.params, grads, self.ema):
                if p.grad is None:
                    p.grad = g
                p.grad.add_(h, alpha=self.lamb)
            return
        if self.buffer is None:
            self.buffer = [torch.zeros((self.window, *g.shape), dtype=g.dtype, device=g.device) for g in grads]
            self.total = [torch.zeros_like(g) for g in grads]
        slot = self.count % self.window
        assert self.total is not None
        for g, buf, tot in zip(grads, self.buffer, self.total):
            tot.sub_(buf[slot]).add_(g)
            buf[slot].copy_(g)
        self.count += 1
        n = min(self.count, self.window)
        for p, g, tot in zip(self.params, grads, self.total):
            if p.grad is None:
                p.grad = g
            p.grad.add_(tot, alpha=self.lamb / n)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The filter's state as named tensors (``grokfast.*``), for the checkpoint."""
        out: dict[str, torch.Tensor] = {"grokfast.count": torch.tensor(self.count)}
        if self.ema is not None:
            out.update({f"grokfast.ema.{i}": t for i, t in enumerate(self.ema)})
        if self.buffer is not None and self.total is not None:
            out.update({f"grokfast.buffer.{i}": t for i, t in enumerate(self.buffer)})
            out.update({f"grokfast.total.{i}": t for i, t in enumerate(self.total)})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the state :meth:`state_tensors` saved, on the parameters' device."""
        device = self.params[0].device
        self.count = int(tensors.get("grokfast.count", torch.tensor(0)))
        n = len(self.params)
        if "grokfast.ema.0" in tensors:
            self.ema = [tensors[f"grokfast.ema.{i}"].to(device) for i in range(n)]
        if "grokfast.buffer.0" in tensors:
            self.buffer = [tensors[f"grokfast.buffer.{i}"].to(device) for i in range(n)]
            self.total = [tensors[f"grokfast.total.{i}"].to(device) for i in range(n)]
