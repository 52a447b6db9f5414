"""Sparse dictionaries (sparse autoencoders): an activation as a sparse sum of learned directions.

An activation ``x`` (width ``d_in``) is encoded into ``d_sae`` non-negative feature
activations and decoded as their weighted sum of decoder rows (directions of unit norm)
plus a bias::

    pre = (x - b_dec) @ W_enc + b_enc          # (..., d_sae)
    f   = sparsify(pre)                        # (..., d_sae), mostly zeros
    x̂   = f @ W_dec + b_dec                    # (..., d_in)

One interface, :class:`SparseDictionary`, and one class per way to sparsify, as SAELens v6
names them (:mod:`interp.features.architectures`):

* ``topk``       keep the ``k`` largest of ``relu(pre)`` in each row: L0 is exactly ``k``;
* ``batchtopk``  in training keep the ``k * batch`` largest over the whole batch (mean L0 is
                 ``k``, rows may differ); at inference a JumpReLU with one learned global
                 threshold (the running mean of the smallest kept activation);
* ``jumprelu``   keep ``pre`` where it exceeds a per-feature threshold; the threshold and an
                 L0 penalty are trained with straight-through estimators.

At inference ``batchtopk`` and ``jumprelu`` share one rule, ``f = pre * (pre > threshold)``.
A transcoder (:mod:`interp.features.transcoder`) is a member of the same family that reads
one hook and writes another. ``SparseDictionary(cfg)`` builds the class of
``cfg.architecture`` (:meth:`SparseDictionary.class_for`), and every member trains through
the one loop of :mod:`interp.features.train`: a training forward with its losses, then
:meth:`SparseDictionary.after_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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


def threshold_rule(pre: Float[Tensor, "*row d_sae"], threshold: Float[Tensor, " d_sae"]) -> Float[Tensor, "*row d_sae"]:
    """JumpReLU at inference: ``pre`` where it exceeds ``threshold`` (and 0), else 0."""
    return torch.relu(pre) * (pre > threshold)


@dataclass
class StepOutput:
    """What one training forward gives: the reconstruction, the feature activations, the losses."""

    recon: Float[Tensor, "row d_out"]
    feature_acts: Float[Tensor, "row d_sae"]
    losses: dict[str, Tensor]

    @property
    def loss(self) -> Tensor:
        """The total loss: the sum of the named losses."""
        return torch.stack(list(self.losses.values())).sum()


class SparseDictionary(nn.Module):
    """A sparse dictionary at one hook point, with SAELens's parameter names and shapes: the family's interface.

    ``W_enc`` is ``d_in d_sae``, ``W_dec`` is ``d_sae d_out`` (one unit-norm row per feature),
    ``b_enc`` is ``d_sae``, ``b_dec`` is ``d_out``; ``d_out = d_in`` for a dictionary, which
    writes where it reads. ``threshold`` (``d_sae``) is the inference threshold of
    ``batchtopk`` (one value repeated) and ``jumprelu`` (learned per feature). ``meta`` holds
    where the dictionary comes from (model fingerprint, run, step), saved beside the config by
    :func:`interp.features.save_dictionary`.

    ``SparseDictionary(cfg)`` gives the subclass of ``cfg.architecture``; a subclass says how
    it sparsifies (:meth:`sparsify`, :meth:`training_sparsify`), which losses it adds to the
    squared error (:meth:`auxiliary_losses`) and what it updates after an optimiser step
    (:meth:`after_step`).
    """

    architecture: ClassVar[str] = ""
    """The ``cfg.architecture`` a class implements ("" on the family's abstract classes)."""
    registry: ClassVar[dict[str, type[SparseDictionary]]] = {}
    """Architecture name -> class, one registry per family (dictionaries here; transcoders have theirs)."""
    kind: ClassVar[str] = "dictionary"
    """What the family's members are called in messages and by the save functions."""
    file_format: ClassVar[str] = "grokscope-sparse-dictionary"
    """The ``format`` written in ``cfg.json``."""
    config_class: ClassVar[type[DictionaryConfig]] = DictionaryConfig
    width_names: ClassVar[str] = "d_in and d_sae"
    """The config fields that fix the tensors' shapes."""
    learns_threshold: ClassVar[bool] = False
    """The threshold is a parameter the optimiser trains (else a buffer)."""
    saves_threshold: ClassVar[bool] = True
    """The threshold is part of the saved tensors (inference uses it)."""

    cfg: DictionaryConfig

    def __init_subclass__(cls, *, architecture: str | None = None, family: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if family:
            cls.registry = {}
        if architecture is not None:
            cls.architecture = architecture
            cls.registry[architecture] = cls

    def __new__(cls, cfg: DictionaryConfig | None = None, *args: Any, **kwargs: Any) -> SparseDictionary:
        """A family's abstract class builds the member that ``cfg.architecture`` names."""
        if not cls.architecture and cfg is not None:
            cls = cls.class_for(getattr(cfg, "architecture", None))
        return super().__new__(cls)

    @classmethod
    def class_for(cls, architecture: Any) -> type[SparseDictionary]:
        """The family member for ``architecture`` (``topk``, ``batchtopk``, ``jumprelu``); a one-line error otherwise."""
        if architecture not in cls.registry:
            raise FeatureError(f"unknown architecture {architecture!r}; choose one of {sorted(cls.registry)}")
        return cls.registry[architecture]

    def __init__(self, cfg: DictionaryConfig, *, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if cfg.d_in is None or cfg.d_sae is None:
            raise FeatureError(f"a {self.kind} needs d_in and d_sae; build the config with cfg.resolved(d_in)")
        if cfg.architecture != self.architecture:
            raise FeatureError(
                f"{type(self).__name__} is the {self.architecture!r} architecture, not {cfg.architecture!r}; "
                "build it as SparseDictionary(cfg) to get the config's class"
            )
        self.cfg = cfg
        self.meta: dict[str, Any] = dict(meta or {})
        shapes = self.tensor_shapes(cfg)
        self.W_enc = nn.Parameter(torch.zeros(shapes["W_enc"]))
        self.b_enc = nn.Parameter(torch.zeros(shapes["b_enc"]))
        self.W_dec = nn.Parameter(torch.zeros(shapes["W_dec"]))
        self.b_dec = nn.Parameter(torch.zeros(shapes["b_dec"]))
        threshold = torch.full((cfg.d_sae,), self.initial_threshold(cfg))
        if self.learns_threshold:
            self.threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("threshold", threshold)

    # -- shapes and construction ---------------------------------------------------------------
    @classmethod
    def output_width(cls, cfg: DictionaryConfig) -> int | None:
        """The width the family writes: ``d_in`` for a dictionary (it reconstructs its input)."""
        return cfg.d_in

    @classmethod
    def tensor_shapes(cls, cfg: DictionaryConfig) -> dict[str, tuple[int, ...]]:
        """The saved tensors' shapes for ``cfg`` (its widths set), by SAELens name, in the order they are saved."""
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cls.output_width(cfg)
        assert d_in is not None and d_sae is not None and d_out is not None
        shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_out), "b_enc": (d_sae,), "b_dec": (d_out,)}
        if cls.saves_threshold:
            shapes["threshold"] = (d_sae,)
        return shapes

    @classmethod
    def initial_threshold(cls, cfg: DictionaryConfig) -> float:
        """The threshold before training (0: none)."""
        return 0.0

    @torch.no_grad()
    def initialize(self, *, b_dec: Float[Tensor, " d_out"] | None = None, seed: int = 0) -> SparseDictionary:
        """Random unit decoder rows, the encoder their transpose (SAELens's default; random unit columns when
        ``d_in != d_out``), ``b_dec`` given or zero."""
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(self.d_sae, self.d_out, generator=gen, dtype=self.W_dec.dtype)
        self.W_dec.copy_(w / w.norm(dim=-1, keepdim=True))
        if self.d_in == self.d_out:
            self.W_enc.copy_(self.W_dec.T)
        else:
            e = torch.randn(self.d_in, self.d_sae, generator=gen, dtype=self.W_enc.dtype)
            self.W_enc.copy_(e / e.norm(dim=0, keepdim=True))
        self.b_enc.zero_()
        self.b_dec.copy_(torch.zeros(self.d_out) if b_dec is None else b_dec)
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
    def d_out(self) -> int:
        """The output width (``d_in`` for a dictionary)."""
        return self.W_dec.shape[1]

    @property
    def hook_name(self) -> str:
        """The hook point the dictionary reads."""
        return self.cfg.hook_name

    @property
    def hook_name_out(self) -> str:
        """The hook point whose value the dictionary predicts (a dictionary's own ``hook_name``)."""
        return self.cfg.hook_name

    # -- the forward ----------------------------------------------------------------------
    def pre_acts(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """The encoder's affine map, before any sparsity."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """The inference rule of the architecture."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it sparsifies")

    def encode(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Feature activations (non-negative, sparse)."""
        return self.sparsify(self.pre_acts(x))

    def decoder_weights(self) -> Float[Tensor, "d_sae d_out"]:
        """The decoder matrix as the features write with it (``W_dec``; a cross-layer transcoder masks it)."""
        return self.W_dec

    def decode(self, feature_acts: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_out"]:
        """The reconstruction: feature activations times decoder rows, plus ``b_dec``."""
        return feature_acts @ self.decoder_weights() + self.b_dec

    def predict(self, x: Float[Tensor, "*row d_in"], feature_acts: Float[Tensor, "*row d_sae"]) -> Tensor:
        """The output from the input and its feature activations: ``decode(feature_acts)`` (a transcoder adds its
        skip term of ``x``)."""
        return self.decode(feature_acts)

    def forward(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_out"]:
        """``predict(x, encode(x))``: the reconstruction of ``x`` (a transcoder's prediction of its output)."""
        return self.predict(x, self.encode(x))

    # -- training -------------------------------------------------------------------------
    def training_sparsify(self, pre: Float[Tensor, "row d_sae"]) -> Float[Tensor, "row d_sae"]:
        """The rule in training (differentiable where the architecture needs it); the inference rule by default."""
        return self.sparsify(pre)

    def auxiliary_losses(
        self,
        pre: Float[Tensor, "row d_sae"],
        residual: Float[Tensor, "row d_out"],
        dead: Tensor | None,
    ) -> dict[str, Tensor]:
        """Losses beside the squared error, by name (none by default). ``residual`` is the target minus the
        reconstruction (no gradient); ``dead`` marks features that stopped firing."""
        return {}

    def training_forward(
        self,
        x: Float[Tensor, "row d_in"],
        target: Float[Tensor, "row d_out"] | None = None,
        *,
        dead: Tensor | None = None,
    ) -> StepOutput:
        """The training-time forward on a batch: the squared error of ``target`` (None: ``x``) summed over its
        width (mean over rows), and the architecture's auxiliary losses."""
        target = x if target is None else target
        pre = self.pre_acts(x)
        acts = self.training_sparsify(pre)
        recon = self.predict(x, acts)
        losses = {"mse": (recon - target).pow(2).sum(-1).mean()}
        losses.update(self.auxiliary_losses(pre, target - recon.detach(), dead))
        return StepOutput(recon, acts, losses)

    @torch.no_grad()
    def after_step(self, acts: Float[Tensor, "row d_sae"], *, first: bool) -> None:
        """Whatever the architecture updates after an optimiser step on a batch that gave ``acts`` (nothing here)."""

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
    def fold_scaling_factor(self, scale: float, scale_out: float | None = None) -> None:
        """Make a dictionary trained on ``scale * x`` (predicting ``scale_out * y``; None: ``scale``) read ``x``.

        Feature activations shrink by ``scale``: the encoder bias and the threshold are divided
        by it, ``b_dec`` by ``scale_out``, and the decoder rows are multiplied by
        ``scale / scale_out`` (unchanged, unit norm, when the two are equal).
        """
        scale_out = scale if scale_out is None else scale_out
        self.b_enc.div_(scale)
        self.threshold.div_(scale)
        if scale_out != scale:
            self.W_dec.mul_(scale / scale_out)
        self.b_dec.div_(scale_out)

    # -- plain data ---------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        """The saved tensors, by SAELens name (``threshold`` only where inference uses it)."""
        return {name: getattr(self, name).detach().contiguous() for name in self.tensor_shapes(self.cfg)}

    def extra_repr(self) -> str:
        """Architecture, hook and sizes, for the module's ``repr``."""
        return (
            f"{self.architecture}, hook_name={self.hook_name!r}, d_in={self.d_in}, d_sae={self.d_sae}, k={self.cfg.k}"
        )


__all__ = ["SparseDictionary", "StepOutput", "batch_topk_mask", "threshold_rule", "topk_mask"]
