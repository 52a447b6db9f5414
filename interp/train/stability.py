"""Grokking without weight decay: StableMax and the orthogonal gradient (Prieto et al. 2025).

"Grokking at the edge of numerical stability" finds that without regularisation a model
that has fit its training set keeps scaling its logits up along the direction it already
points in ("naive loss minimisation"), until the softmax of the correct class rounds to 1
in floating point ("softmax collapse") and learning stops before the model generalises.
Two remedies, each a training option here:

* ``train.loss_function = "stablemax"``: cross-entropy through StableMax instead of
  softmax, ``StableMax(x)_i = s(x_i) / sum_j s(x_j)`` with ``s(x) = x + 1`` for ``x >= 0``
  and ``1 / (1 - x)`` below: it grows linearly, not exponentially, so scaling the logits
  cannot collapse it. Its arg-max is the logits' (``s`` is increasing).
* ``train.orthogonal_grad = true`` (⊥Grad): each parameter's gradient ``g`` loses its
  component along the parameter ``w`` (``g - (w.g / w.w) w``) and is rescaled to ``|g|``,
  so no step just scales the weights (and with them the logits).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float, Int
from torch import Tensor


def log_stablemax(logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, "batch d_vocab"]:
    """``log StableMax(logits)`` along the last axis (``s(x) = x + 1`` for ``x >= 0``, ``1 / (1 - x)`` below)."""
    x = logits.float()
    log_s = torch.where(x >= 0, torch.log1p(x.clamp(min=0)), -torch.log1p((-x).clamp(min=0)))
    return log_s - torch.logsumexp(log_s, dim=-1, keepdim=True)


def stablemax_cross_entropy(
    logits: Float[Tensor, "batch d_vocab"], targets: Int[Tensor, " batch"], *, label_smoothing: float = 0.0
) -> Tensor:
    """Mean cross-entropy of ``targets`` under StableMax (label-smoothed like ``F.cross_entropy``)."""
    log_p = log_stablemax(logits)
    nll = -log_p.gather(-1, targets[:, None]).squeeze(-1)
    if label_smoothing:
        nll = (1 - label_smoothing) * nll - label_smoothing * log_p.mean(-1)
    return nll.mean()


@torch.no_grad()
def orthogonalize_gradients_(params: Iterable[Tensor], eps: float = 1e-30) -> None:
    """⊥Grad in place: each gradient minus its projection on its parameter, rescaled to its own norm."""
    for w in params:
        g = w.grad
        if g is None:
            continue
        w32, g32 = w.float(), g.float()
        ww = (w32 * w32).sum()
        if ww <= eps:
            continue
        g_perp = g32 - (w32 * g32).sum() / ww * w32
        norm_perp = g_perp.norm()
        if norm_perp > eps:
            g.copy_(g_perp * (g32.norm() / norm_perp))


__all__ = ["log_stablemax", "orthogonalize_gradients_", "stablemax_cross_entropy"]
