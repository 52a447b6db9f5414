"""The three sparsity rules of the dictionary family: TopK, BatchTopK and JumpReLU.

Each is a :class:`~interp.features.dictionary.SparseDictionary` that says how it encodes at
inference and in training, which losses it adds to the squared error, and what it updates
after an optimiser step:

* :class:`TopKDictionary`: ``topk(relu(pre), k)`` always; AuxK (Gao et al. 2024): the
  ``aux_k`` largest pre-activations of the dead features reconstruct the residual error,
  so that dead features get a gradient and come back;
* :class:`BatchTopKDictionary`: in training the ``k * batch`` largest of the batch, AuxK as
  TopK; at inference one global threshold, the running mean of the smallest activation
  kept in each batch (SAELens v6);
* :class:`JumpReLUDictionary`: ``pre * H(pre - threshold)`` with a learned per-feature
  threshold, and ``l0_coefficient`` times L0, with straight-through estimators
  (Rajamanoharan et al. 2024): the step ``H`` has zero gradient almost everywhere, so its
  derivative with respect to the threshold is replaced by a rectangle kernel of width
  ``jumprelu_bandwidth``.

Transcoders take the same rules (:mod:`interp.features.transcoder`).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.features.config import DictionaryConfig
from interp.features.dictionary import SparseDictionary, batch_topk_mask, threshold_rule, topk_mask


# ---------------------------------------------------------------- straight-through pieces
def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _Step(torch.autograd.Function):
    """``H(pre - threshold)``; d/d threshold = -K((pre - threshold) / eps) / eps, none to ``pre``."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        d_threshold = -_rectangle((pre - threshold) / eps) / eps * grad
        return None, d_threshold.reshape(-1, threshold.shape[0]).sum(0), None


class _JumpReLU(torch.autograd.Function):
    """``pre * H(pre - threshold)``; d/d pre = H(.), d/d threshold = -threshold * K(.) / eps."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        d_pre = (pre > threshold).to(pre.dtype) * grad
        d_threshold = -(threshold / eps) * _rectangle((pre - threshold) / eps) * grad
        return d_pre, d_threshold.reshape(-1, threshold.shape[0]).sum(0), None


# ------------------------------------------------------------------------------- TopK
class TopKDictionary(SparseDictionary, architecture="topk"):
    """The ``k`` largest of ``relu(pre)`` in each row, in training and at inference (no threshold saved)."""

    saves_threshold = False

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """``topk(relu(pre), k)`` in each row."""
        return topk_mask(torch.relu(pre), self.cfg.k)

    def auxiliary_losses(
        self,
        pre: Float[Tensor, "row d_sae"],
        residual: Float[Tensor, "row d_out"],
        dead: Tensor | None,
    ) -> dict[str, Tensor]:
        """``aux``: AuxK's loss, ``aux_k_coefficient`` times (when some feature is dead and the coefficient > 0)."""
        coefficient = self.cfg.aux_k_coefficient
        if coefficient <= 0 or dead is None or not bool(dead.any()):
            return {}
        return {"aux": coefficient * self.aux_k_loss(torch.relu(pre), dead, residual)}

    def aux_k_loss(
        self, relu: Float[Tensor, "row d_sae"], dead: Tensor, residual: Float[Tensor, "row d_out"]
    ) -> Tensor:
        """Squared error of the residual reconstructed by the ``aux_k`` largest dead features (no bias)."""
        n_dead = int(dead.sum())
        k_aux = min(self.cfg.aux_k or max(1, self.d_in // 2), n_dead)
        dead_acts = topk_mask(relu * dead, k_aux)
        scale = min(n_dead / k_aux, 1.0)
        return scale * (dead_acts @ self.decoder_weights() - residual).pow(2).sum(-1).mean()


class BatchTopKDictionary(TopKDictionary, architecture="batchtopk"):
    """The ``k * batch`` largest of the batch in training; at inference the learned global threshold."""

    saves_threshold = True

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """``pre * (pre > threshold)``, one threshold for every feature."""
        return threshold_rule(pre, self.threshold)

    def training_sparsify(self, pre: Float[Tensor, "row d_sae"]) -> Float[Tensor, "row d_sae"]:
        """The ``k * row`` largest of ``relu(pre)`` over the whole batch."""
        return batch_topk_mask(torch.relu(pre), self.cfg.k)

    @torch.no_grad()
    def after_step(self, acts: Float[Tensor, "row d_sae"], *, first: bool) -> None:
        """Move the global threshold towards the smallest activation kept in this batch (EMA; the first batch sets it)."""
        kept = acts[acts > 0]
        if kept.numel() == 0:
            return
        smallest = kept.min()
        rate = self.cfg.topk_threshold_lr
        self.threshold.copy_(
            smallest.expand_as(self.threshold) if first else (1 - rate) * self.threshold + rate * smallest
        )


# ---------------------------------------------------------------------------- JumpReLU
class JumpReLUDictionary(SparseDictionary, architecture="jumprelu"):
    """``pre * (pre > threshold)`` with a threshold per feature, learned with the L0 penalty."""

    learns_threshold = True

    @classmethod
    def initial_threshold(cls, cfg: DictionaryConfig) -> float:
        """``jumprelu_init_threshold`` (in the training units)."""
        return cfg.jumprelu_init_threshold

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """``pre * (pre > threshold)``."""
        return threshold_rule(pre, self.threshold)

    def training_sparsify(self, pre: Float[Tensor, "row d_sae"]) -> Float[Tensor, "row d_sae"]:
        """The same rule, with the straight-through gradient to the threshold."""
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)

    def auxiliary_losses(
        self,
        pre: Float[Tensor, "row d_sae"],
        residual: Float[Tensor, "row d_out"],
        dead: Tensor | None,
    ) -> dict[str, Tensor]:
        """``l0``: ``l0_coefficient`` times the mean number of active features per row (straight-through)."""
        l0 = _Step.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth).sum(-1).mean()
        return {"l0": self.cfg.l0_coefficient * l0}

    @torch.no_grad()
    def after_step(self, acts: Float[Tensor, "row d_sae"], *, first: bool) -> None:
        """Keep the thresholds non-negative."""
        self.threshold.clamp_(min=0.0)


__all__ = ["BatchTopKDictionary", "JumpReLUDictionary", "TopKDictionary"]
