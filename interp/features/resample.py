"""The skip term of transcoders, and resampling their dead features during training (Bricken et al. 2023's recipe).

:class:`TranscoderTerms` is a base class of :class:`~interp.features.Transcoder`: the
prediction ``decode(encode(x)) + x @ W_skip`` in the forward and in training, a zero skip term
at initialisation, its share of the activation scales when they are folded in, and the
resampling step below after each optimiser step.

A feature whose pre-activation is negative on every input gets no gradient from the squared
error nor from AuxK (both go through ``relu``), so it stays dead for good. Every
``resample_every`` steps of the first ``resample_until`` of training, each feature that has
not fired for ``dead_feature_window`` steps is re-initialised from one row of the current
batch, drawn with probability proportional to its squared prediction error: the encoder
column points along that row's input (scaled to the mean norm of the live columns), the
decoder row along its error (unit norm), the encoder bias is zero. Blocks a cross-layer
transcoder keeps at zero stay zero (its masks). Training only; nothing is saved.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interp.features.dictionary import SparseDictionary, StepOutput


@torch.no_grad()
def resample_dead(module: SparseDictionary, x: Tensor, error: Tensor, dead: Tensor, *, seed: int = 0) -> int:
    """Re-initialise the features ``dead`` marks from rows of ``x`` (inputs) and ``error`` (target minus
    prediction), rows drawn by squared error; returns how many were resampled."""
    idx = dead.nonzero().flatten()
    if idx.numel() == 0 or x.shape[0] == 0:
        return 0
    weights = error.pow(2).sum(-1)
    if float(weights.sum()) <= 0:
        return 0
    gen = torch.Generator(device=x.device).manual_seed(seed)
    rows = torch.multinomial(weights, idx.numel(), replacement=True, generator=gen)
    enc_mask = getattr(module, "enc_mask", None)
    dec_mask = getattr(module, "dec_mask", None)
    enc = x[rows].T.clone()  # (d_in, n_dead)
    if enc_mask is not None:
        enc = enc * enc_mask[:, idx]
    alive = ~dead
    scale = module.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
    module.W_enc[:, idx] = enc / enc.norm(dim=0, keepdim=True).clamp_min(1e-12) * scale
    dec = error[rows].clone()  # (n_dead, d_out)
    if dec_mask is not None:
        dec = dec * dec_mask[idx]
    module.W_dec[idx] = dec / dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    module.b_enc[idx] = 0.0
    return int(idx.numel())


@torch.no_grad()
def resampling_step(module: SparseDictionary, *, first: bool) -> None:
    """After an optimiser step: count it, and every ``cfg.resample_every`` steps of the first
    ``cfg.resample_until`` of ``cfg.steps`` resample the dead features from the batch the module stashed."""
    module._step = 1 if first else getattr(module, "_step", 0) + 1
    every, steps = getattr(module.cfg, "resample_every", None), module.cfg.steps or 0
    x, error, dead = getattr(module, "_batch", (None, None, None))
    module._batch = (None, None, None)
    if not every or dead is None or module._step % every or module._step > module.cfg.resample_until * steps:
        return
    resample_dead(module, x, error, dead, seed=module.cfg.seed + module._step)


class TranscoderTerms:
    """What transcoders add to the family's forward and training (a base class of
    :class:`~interp.features.Transcoder`): the skip term, and the resampling of dead features."""

    W_skip: Tensor | None

    def skip_out(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_out"] | float:
        """The skip term ``x @ W_skip`` (0 without one)."""
        return 0.0 if self.W_skip is None else x @ self.W_skip

    def predict(self, x: Float[Tensor, "*row d_in"], feature_acts: Float[Tensor, "*row d_sae"]) -> Tensor:
        """The prediction of the MLP output: ``decode(feature_acts)`` plus the skip term."""
        return self.decode(feature_acts) + self.skip_out(x)

    def training_forward(
        self,
        x: Float[Tensor, "row d_in"],
        target: Float[Tensor, "row d_out"] | None = None,
        *,
        dead: Tensor | None = None,
    ) -> StepOutput:
        """The dictionaries' training forward, keeping the batch's inputs and errors for resampling."""
        out = super().training_forward(x, target, dead=dead)
        error = (x if target is None else target) - out.recon
        self._batch = (x.detach(), error.detach(), dead)
        return out

    @torch.no_grad()
    def after_step(self, acts: Float[Tensor, "row d_sae"], *, first: bool) -> None:
        """The architecture's update, then dead features resampled (``cfg.resample_every``)."""
        super().after_step(acts, first=first)
        resampling_step(self, first=first)

    @torch.no_grad()
    def initialize(self, *, b_dec: Float[Tensor, " d_out"] | None = None, seed: int = 0) -> TranscoderTerms:
        """The dictionaries' initialisation, and a zero skip term."""
        super().initialize(b_dec=b_dec, seed=seed)
        if self.W_skip is not None:
            self.W_skip.zero_()
        return self

    @torch.no_grad()
    def fold_scaling_factor(self, scale: float, scale_out: float | None = None) -> None:
        """The dictionaries' folding, and ``W_skip`` times ``scale / scale_out``."""
        super().fold_scaling_factor(scale, scale_out)
        if self.W_skip is not None:
            self.W_skip.mul_(scale / (scale if scale_out is None else scale_out))


__all__ = ["TranscoderTerms", "resample_dead", "resampling_step"]
