"""Sparse dictionaries (sparse autoencoders): an activation as a sparse sum of learned directions.

An activation ``x`` (width ``d_in``) is encoded into ``d_sae`` non-negative feature
activations and decoded as their weighted sum of decoder rows (directions of unit norm)
plus a bias::

    pre = (x - b_dec) @ W_enc + b_enc          # (..., d_sae)
    f   = sparsify(pre)                        # (..., d_sae), mostly zeros
    x̂   = f @ W_dec + b_dec                    # (..., d_in)

Three ways to sparsify, as SAELens v6 names them:

* ``topk``       keep the ``k`` largest of ``relu(pre)`` in each row: L0 is exactly ``k``;
* ``batchtopk``  in training keep the ``k * batch`` largest over the whole batch (mean L0 is
                 ``k``, rows may differ); at inference a JumpReLU with one learned global
                 threshold (the running mean of the smallest kept activation);
* ``jumprelu``   keep ``pre`` where it exceeds a per-feature threshold; the threshold and an
                 L0 penalty are trained with straight-through estimators (see
                 :mod:`interp.features.train`).

At inference ``batchtopk`` and ``jumprelu`` share one rule, ``f = pre * (pre > threshold)``.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.features.config import DictionaryConfig, FeatureError


def topk_mask(acts: Float[Tensor, "*row d_sae"], k: int) -> Float[Tensor, "*row d_sae"]:
    """``acts`` with all but the ``k`` largest entries of each row set to zero."""
    values, indices = acts.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(acts).scatter(-1, indices, values)


def batch_topk_mask(acts: Float[Tensor, "row d_sae"], k: int) -> Float[Tensor, "row d_sae"]:
    """``acts`` with all but the ``k * row`` largest entries of the whole batch set to zero.

    Two stages, exact: the ``4k`` largest of each row are the candidates, and the batch's
    largest are chosen among them. If some row has all its candidates chosen, more of that
    row might belong, so the whole batch is searched instead.
    """
    n_rows, width = acts.shape
    n_keep = min(k * n_rows, acts.numel())
    m = min(width, 4 * k)
    if m < width:
        cand, cand_idx = acts.topk(m, dim=-1, sorted=False)  # (row, m)
        values, flat_pos = cand.flatten().topk(n_keep, sorted=False)
        rows = torch.div(flat_pos, m, rounding_mode="floor")
        if int(torch.bincount(rows, minlength=n_rows).max()) < m:
            out = torch.zeros_like(acts)
            out[rows, cand_idx.flatten()[flat_pos]] = values
            return out
    flat = acts.flatten()
    values, indices = flat.topk(n_keep, sorted=False)
    return torch.zeros_like(flat).scatter(0, indices, values).view_as(acts)


class SparseDictionary(nn.Module):
    """A sparse dictionary at one hook point, with SAELens's parameter names and shapes.

    ``W_enc`` is ``d_in d_sae``, ``W_dec`` is ``d_sae d_in`` (one unit-norm row per feature),
    ``b_enc`` is ``d_sae``, ``b_dec`` is ``d_in``; ``threshold`` (``d_sae``) is the inference
    threshold of ``batchtopk`` (one value repeated) and ``jumprelu`` (learned per feature).
    ``meta`` holds where the dictionary comes from (model fingerprint, run, step), saved
    beside the config by :func:`interp.features.save_dictionary`.
    """

    def __init__(self, cfg: DictionaryConfig, *, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if cfg.d_in is None or cfg.d_sae is None:
            raise FeatureError("a dictionary needs d_in and d_sae; build the config with cfg.resolved(d_in)")
        self.cfg = cfg
        self.meta: dict[str, Any] = dict(meta or {})
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        threshold = torch.full((d_sae,), cfg.jumprelu_init_threshold if cfg.architecture == "jumprelu" else 0.0)
        if cfg.architecture == "jumprelu":
            self.threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("threshold", threshold)

    # -- construction -------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, *, b_dec: Float[Tensor, " d_in"] | None = None, seed: int = 0) -> SparseDictionary:
        """Random unit decoder rows, the encoder their transpose (SAELens's default), ``b_dec`` given or zero."""
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(self.d_sae, self.d_in, generator=gen, dtype=self.W_dec.dtype)
        self.W_dec.copy_(w / w.norm(dim=-1, keepdim=True))
        self.W_enc.copy_(self.W_dec.T)
        self.b_enc.zero_()
        self.b_dec.copy_(torch.zeros(self.d_in) if b_dec is None else b_dec)
        return self

    @property
    def d_in(self) -> int:
        """The input width (the hooked activation's, flattened)."""
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        """The number of features."""
        return self.W_enc.shape[1]

    @property
    def architecture(self) -> str:
        """``topk``, ``batchtopk`` or ``jumprelu``."""
        return self.cfg.architecture

    @property
    def hook_name(self) -> str:
        """The hook point the dictionary reads."""
        return self.cfg.hook_name

    # -- the forward ----------------------------------------------------------------------
    def pre_acts(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """The encoder's affine map, before any sparsity."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """The inference rule: TopK per row, or ``pre * (pre > threshold)``."""
        if self.architecture == "topk":
            return topk_mask(torch.relu(pre), self.cfg.k)
        return torch.relu(pre) * (pre > self.threshold)

    def encode(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Feature activations (non-negative, sparse)."""
        return self.sparsify(self.pre_acts(x))

    def decode(self, feature_acts: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_in"]:
        """The reconstruction: feature activations times decoder rows, plus ``b_dec``."""
        return feature_acts @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_in"]:
        """``decode(encode(x))``: the reconstruction of ``x``."""
        return self.decode(self.encode(x))

    # -- invariants kept during training ------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale every decoder row to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the part of ``W_dec``'s gradient along each row (it would only change the norm)."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
            self.W_dec.grad.sub_(parallel * self.W_dec)

    @torch.no_grad()
    def fold_scaling_factor(self, scale: float) -> None:
        """Make a dictionary trained on ``scale * x`` read ``x`` itself.

        Feature activations shrink by ``scale`` and the decoder rows keep unit norm: the biases
        and the threshold are divided by ``scale``; the weights are unchanged.
        """
        self.b_enc.div_(scale)
        self.b_dec.div_(scale)
        self.threshold.div_(scale)

    # -- plain data ---------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        """The saved tensors, by SAELens name (``threshold`` only where inference uses it)."""
        out = {"W_enc": self.W_enc, "W_dec": self.W_dec, "b_enc": self.b_enc, "b_dec": self.b_dec}
        if self.architecture != "topk":
            out["threshold"] = self.threshold
        return {k: v.detach().contiguous() for k, v in out.items()}

    def extra_repr(self) -> str:
        """Architecture, hook and sizes, for the module's ``repr``."""
        return (
            f"{self.architecture}, hook_name={self.hook_name!r}, d_in={self.d_in}, d_sae={self.d_sae}, k={self.cfg.k}"
        )


__all__ = ["SparseDictionary", "batch_topk_mask", "topk_mask"]
