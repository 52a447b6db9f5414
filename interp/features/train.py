"""Training a sparse dictionary: Adam on mini-batches of cached activations, nothing else.

The activations fit in memory (a run's prompts give tens of thousands of rows), so the
loop samples shuffled mini-batches from one tensor: no activation store, no model in the
loop. The loss is the squared reconstruction error summed over ``d_in`` (mean over rows),
plus, by architecture,

* ``topk`` / ``batchtopk``: optionally AuxK (Gao et al. 2024): the ``aux_k`` largest
  pre-activations of the dead features reconstruct the residual error, so that dead
  features get a gradient and come back;
* ``jumprelu``: ``l0_coefficient`` times L0, with straight-through estimators (Rajamanoharan
  et al. 2024): the step ``H(pre - threshold)`` has zero gradient almost everywhere, so its
  derivative with respect to the threshold is replaced by a rectangle kernel of width
  ``jumprelu_bandwidth``.

After every step the decoder rows are scaled back to unit norm (the part of their
gradient along each row is removed first). BatchTopK learns its inference threshold as a
running mean of the smallest activation kept in each batch (SAELens v6). Activations are
scaled to mean norm ``sqrt(d_in)`` for training and the scale is folded into the biases at
the end (:meth:`SparseDictionary.fold_scaling_factor`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.features.activations import Activations, collect_activations
from interp.features.config import DictionaryConfig, EmptyPromptSetError
from interp.features.dictionary import SparseDictionary, batch_topk_mask, topk_mask
from interp.features.io import model_fingerprint
from interp.intervene import as_bridge
from interp.models.protocol import HookedModel


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


# ------------------------------------------------------------------------- training step
@dataclass
class StepOutput:
    """What one training forward gives: the reconstruction, the feature activations, the losses."""

    recon: Float[Tensor, "row d_in"]
    feature_acts: Float[Tensor, "row d_sae"]
    losses: dict[str, Tensor]

    @property
    def loss(self) -> Tensor:
        """The total loss: the sum of the named losses."""
        return torch.stack(list(self.losses.values())).sum()


def training_forward(
    sae: SparseDictionary, x: Float[Tensor, "row d_in"], dead: torch.Tensor | None = None
) -> StepOutput:
    """The training-time forward of ``sae`` on a batch, with every loss term (see the module docstring)."""
    cfg = sae.cfg
    pre = sae.pre_acts(x)
    if cfg.architecture == "jumprelu":
        threshold = sae.threshold
        acts = _JumpReLU.apply(pre, threshold, cfg.jumprelu_bandwidth)
        l0 = _Step.apply(pre, threshold, cfg.jumprelu_bandwidth).sum(-1).mean()
        recon = sae.decode(acts)
        losses = {"mse": (recon - x).pow(2).sum(-1).mean(), "l0": cfg.l0_coefficient * l0}
        return StepOutput(recon, acts, losses)
    relu = torch.relu(pre)
    acts = topk_mask(relu, cfg.k) if cfg.architecture == "topk" else batch_topk_mask(relu, cfg.k)
    recon = sae.decode(acts)
    losses = {"mse": (recon - x).pow(2).sum(-1).mean()}
    if cfg.aux_k_coefficient > 0 and dead is not None and bool(dead.any()):
        losses["aux"] = cfg.aux_k_coefficient * _aux_k_loss(sae, relu, dead, x - recon.detach())
    return StepOutput(recon, acts, losses)


def _aux_k_loss(
    sae: SparseDictionary, relu: Float[Tensor, "row d_sae"], dead: torch.Tensor, residual: Float[Tensor, "row d_in"]
) -> Tensor:
    """Squared error of the residual reconstructed by the ``aux_k`` largest dead features (no bias)."""
    n_dead = int(dead.sum())
    k_aux = min(sae.cfg.aux_k or max(1, sae.d_in // 2), n_dead)
    dead_acts = topk_mask(relu * dead, k_aux)
    scale = min(n_dead / k_aux, 1.0)
    return scale * (dead_acts @ sae.W_dec - residual).pow(2).sum(-1).mean()


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainingResult:
    """A trained dictionary with its training curve (``history``: one row per logged step)."""

    dictionary: SparseDictionary
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    scaling_factor: float = 1.0
    steps: int = 0


def _b_dec_init(x: Float[Tensor, "row d_in"], how: str) -> Float[Tensor, " d_in"]:
    if how == "zeros":
        return torch.zeros(x.shape[1], dtype=x.dtype)
    if how == "mean":
        return x.mean(0)
    median = x.mean(0)  # geometric median by Weiszfeld's iteration
    for _ in range(30):
        weights = 1 / (x - median).norm(dim=-1).clamp_min(1e-6)
        median = (weights[:, None] * x).sum(0) / weights.sum()
    return median


def _lr_factor(step: int, n_steps: int, warm_up: int, decay: int) -> float:
    if warm_up and step < warm_up:
        return (step + 1) / warm_up
    if decay and step >= n_steps - decay:
        return max(0.0, (n_steps - step) / decay)
    return 1.0


def train_dictionary(
    cfg: DictionaryConfig,
    activations: Activations | Float[Tensor, "row d_in"],
    *,
    meta: dict[str, Any] | None = None,
    log_every: int = 100,
) -> TrainingResult:
    """Train a dictionary of ``cfg`` on ``activations`` (rows, or :class:`Activations`).

    Returns the dictionary (in eval mode, the activation scale folded in) and the
    training curve: ``mse``, ``fvu``, ``l0`` and ``dead_features`` (features that have not
    fired for ``dead_feature_window`` steps) every ``log_every`` steps and at the end.
    """
    x = activations.acts if isinstance(activations, Activations) else activations
    if x.ndim != 2 or x.shape[0] == 0:
        raise EmptyPromptSetError(
            f"no activations to train on (shape {tuple(x.shape)}); choose other splits or positions"
        )
    cfg = cfg.resolved(x.shape[1])
    start = time.perf_counter()
    x = x.detach()
    scale = 1.0
    if cfg.normalize_activations == "expected_average_only_in":
        scale = float(cfg.d_in**0.5 / x.norm(dim=-1).mean().clamp_min(1e-12))
        x = x * scale
    sae = SparseDictionary(cfg, meta=meta).to(device=x.device, dtype=x.dtype)
    sae.initialize(b_dec=_b_dec_init(x, cfg.b_dec_init), seed=cfg.seed)
    sae.train()
    n_rows = x.shape[0]
    batch_size = min(cfg.batch_size, n_rows)
    n_steps = cfg.n_steps(n_rows)
    opt, sched = make_optimizer(sae, cfg, n_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=x.device)
    total_var = (x - x.mean(0)).pow(2).sum(-1).mean()
    order = torch.randperm(n_rows, generator=gen).to(x.device)
    cursor = 0
    history: list[dict[str, float]] = []
    for step in range(n_steps):
        if cursor + batch_size > n_rows:
            order, cursor = torch.randperm(n_rows, generator=gen).to(x.device), 0
        batch = x[order[cursor : cursor + batch_size]]
        cursor += batch_size
        dead = since_fired >= cfg.dead_feature_window
        out = training_forward(sae, batch, dead)
        since_fired = optimizer_step(sae, opt, sched, out.loss, out.feature_acts, since_fired, cfg, step)
        if (step + 1) % log_every == 0 or step + 1 == n_steps:
            history.append(
                history_row(step, out.losses, total_var, out.feature_acts, since_fired, cfg.dead_feature_window)
            )
    sae.fold_scaling_factor(scale)
    sae.eval()
    sae.requires_grad_(False)
    return TrainingResult(sae, history, time.perf_counter() - start, scale, n_steps)


def make_optimizer(module: torch.nn.Module, cfg: DictionaryConfig, n_steps: int) -> tuple[torch.optim.Adam, Any]:
    """Adam over ``module``'s parameters with ``cfg``'s warm-up and decay schedule (decay: the last fifth by default)."""
    decay = cfg.lr_decay_steps if cfg.lr_decay_steps is not None else n_steps // 5
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, n_steps, cfg.lr_warm_up_steps, decay))
    return opt, sched


def optimizer_step(
    sae: SparseDictionary,
    opt: torch.optim.Optimizer,
    sched: Any,
    loss: Tensor,
    acts: Tensor,
    since_fired: Tensor,
    cfg: DictionaryConfig,
    step: int,
) -> Tensor:
    """One update of a dictionary or transcoder from ``loss``: gradient step, unit-norm decoder rows, BatchTopK's
    threshold, JumpReLU's clamp. Returns ``since_fired`` (steps since each feature fired in ``acts``) updated."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_parallel_decoder_grad()
    opt.step()
    sched.step()
    sae.normalize_decoder()
    with torch.no_grad():
        fired = (acts > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + 1)
        if cfg.architecture == "batchtopk":
            _update_threshold(sae, acts, cfg.topk_threshold_lr, first=step == 0)
        if cfg.architecture == "jumprelu":
            sae.threshold.clamp_(min=0.0)
    return since_fired


def history_row(
    step: int,
    losses: dict[str, Tensor],
    total_var: Tensor,
    acts: Tensor,
    since_fired: Tensor,
    window: int,
) -> dict[str, float]:
    """The training curve's entry after ``step``: ``mse``, ``fvu`` (``mse / total_var``), ``l0``, ``dead_features``
    (not fired for ``window`` steps) and the other ``loss_*`` terms."""
    values = {k: float(v.detach()) for k, v in losses.items()}
    return {
        "step": step + 1,
        "mse": values["mse"],
        "fvu": values["mse"] / float(total_var),
        "l0": float((acts > 0).sum(-1).float().mean()),
        "dead_features": int((since_fired >= window).sum()),
        **{f"loss_{k}": v for k, v in values.items() if k != "mse"},
    }


@torch.no_grad()
def _update_threshold(sae: SparseDictionary, acts: Tensor, rate: float, *, first: bool) -> None:
    """BatchTopK: move the global threshold towards the smallest activation kept in this batch."""
    kept = acts[acts > 0]
    if kept.numel() == 0:
        return
    smallest = kept.min()
    sae.threshold.copy_(smallest.expand_as(sae.threshold) if first else (1 - rate) * sae.threshold + rate * smallest)


# ------------------------------------------------------------------------------ runs
def train_on_run(
    run_dir: str | Path,
    cfg: DictionaryConfig,
    *,
    device: torch.device | str | None = "cpu",
    log_every: int = 100,
) -> tuple[TrainingResult, Activations, Any]:
    """Load a run's latest checkpoint, collect ``cfg``'s activations and train on them.

    Returns the training result (its dictionary's ``meta`` names the run, the step and the
    model's fingerprint), the activations and the loaded run (:class:`interp.runs.LoadedRun`).
    """
    from interp.runs import load_checkpoint

    run = load_checkpoint(run_dir, device=device)
    bridge = as_bridge(run.model)
    acts = collect_activations(bridge, run.dataset, cfg.hook_name, splits=cfg.splits, positions=cfg.positions)
    meta = {"model_fingerprint": model_fingerprint(bridge), "run_dir": str(Path(run_dir).resolve()), "step": run.step}
    return train_dictionary(cfg, acts, meta=meta, log_every=log_every), acts, run


def train_on_model(
    model: HookedModel, dataset: Any, cfg: DictionaryConfig, *, log_every: int = 100
) -> tuple[TrainingResult, Activations]:
    """Collect ``cfg``'s activations of ``model`` over ``dataset`` and train on them (``meta``: the fingerprint)."""
    bridge = as_bridge(model)
    acts = collect_activations(bridge, dataset, cfg.hook_name, splits=cfg.splits, positions=cfg.positions)
    return train_dictionary(cfg, acts, meta={"model_fingerprint": model_fingerprint(bridge)}, log_every=log_every), acts


__all__ = [
    "StepOutput",
    "TrainingResult",
    "history_row",
    "make_optimizer",
    "optimizer_step",
    "train_dictionary",
    "train_on_model",
    "train_on_run",
    "training_forward",
]
