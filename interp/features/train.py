"""Training any member of the dictionary family: Adam on mini-batches of cached activations, nothing else.

The activations fit in memory (a run's prompts give tens of thousands of rows), so the
loop samples shuffled mini-batches from one tensor: no activation store, no model in the
loop. One loop (:func:`fit`) trains every architecture, dictionaries and transcoders alike:
activations in, target activations out (for a dictionary the target is the input). The
loss is the squared error of the target summed over its width (mean over rows), plus the
architecture's own terms (:meth:`~interp.features.SparseDictionary.auxiliary_losses`:
AuxK for TopK / BatchTopK, the straight-through L0 penalty for JumpReLU; see
:mod:`interp.features.architectures`).

After every step the decoder rows are scaled back to unit norm (the part of their
gradient along each row is removed first) and the architecture updates what it keeps
(:meth:`~interp.features.SparseDictionary.after_step`: BatchTopK's running threshold,
JumpReLU's non-negative thresholds). Inputs and targets are scaled to mean norm
``sqrt(width)`` for training and the scales are folded into the weights at the end
(:meth:`SparseDictionary.fold_scaling_factor`).
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
from interp.features.config import DictionaryConfig, DictionaryMismatchError, EmptyPromptSetError
from interp.features.dictionary import SparseDictionary, StepOutput
from interp.features.io import model_fingerprint
from interp.intervene import as_bridge
from interp.models.protocol import HookedModel


def training_forward(
    sae: SparseDictionary,
    x: Float[Tensor, "row d_in"],
    dead: Tensor | None = None,
    target: Float[Tensor, "row d_out"] | None = None,
) -> StepOutput:
    """The training-time forward of ``sae`` on a batch, with every loss term (:meth:`SparseDictionary.training_forward`)."""
    return sae.training_forward(x, target, dead=dead)


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainingResult:
    """A trained dictionary (or transcoder) with its training curve (``history``: one row per logged step)."""

    dictionary: SparseDictionary
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    scaling_factor: float = 1.0
    steps: int = 0


def _b_dec_init(x: Float[Tensor, "row d_out"], how: str) -> Float[Tensor, " d_out"]:
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


def _scale(x: Float[Tensor, "row width"], cfg: DictionaryConfig) -> float:
    """The factor that gives ``x`` mean norm ``sqrt(width)`` (1 when ``normalize_activations`` is off)."""
    if cfg.normalize_activations != "expected_average_only_in":
        return 1.0
    return float(x.shape[1] ** 0.5 / x.norm(dim=-1).mean().clamp_min(1e-12))


def training_rows(
    inputs: Activations | Float[Tensor, "row d_in"], targets: Activations | Float[Tensor, "row d_out"] | None = None
) -> tuple[Tensor, Tensor | None]:
    """The rows of ``inputs`` and ``targets`` (None stays None), detached; a one-line error when there are none or
    the two disagree."""
    x = (inputs.acts if isinstance(inputs, Activations) else inputs).detach()
    if x.ndim != 2 or x.shape[0] == 0:
        raise EmptyPromptSetError(
            f"no activations to train on (shape {tuple(x.shape)}); choose other splits or positions"
        )
    if targets is None:
        return x, None
    y = (targets.acts if isinstance(targets, Activations) else targets).detach()
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise EmptyPromptSetError(f"need the same non-empty rows in and out; got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def fit(
    module: SparseDictionary,
    inputs: Activations | Float[Tensor, "row d_in"],
    targets: Activations | Float[Tensor, "row d_out"] | None = None,
    *,
    log_every: int = 100,
) -> TrainingResult:
    """Train ``module`` (fresh; any architecture, dictionary or transcoder) to predict ``targets`` from ``inputs``.

    ``targets`` None trains a dictionary to reconstruct its input. ``module`` is moved to the
    rows' device and dtype and initialised (``b_dec`` from the targets, ``cfg.b_dec_init``).
    Returns it (in eval mode, the activation scales folded in) with the training curve:
    ``mse``, ``fvu`` (of the target), ``l0`` and ``dead_features`` (features that have not
    fired for ``dead_feature_window`` steps) every ``log_every`` steps and at the end.
    """
    x, y = training_rows(inputs, targets)
    widths = (x.shape[1], x.shape[1] if y is None else y.shape[1])
    if widths != (module.d_in, module.d_out):
        raise DictionaryMismatchError(
            f"the {module.kind} maps width {module.d_in} to {module.d_out}; the rows are {widths[0]} -> {widths[1]} wide"
        )
    cfg = module.cfg
    start = time.perf_counter()
    scale_in = _scale(x, cfg)
    scale_out = scale_in if y is None else _scale(y, cfg)
    x = x * scale_in if scale_in != 1.0 else x
    y = x if y is None else (y * scale_out if scale_out != 1.0 else y)
    module = module.to(device=x.device, dtype=x.dtype)
    module.initialize(b_dec=_b_dec_init(y, cfg.b_dec_init), seed=cfg.seed)
    module.train()
    n_rows = x.shape[0]
    batch_size = min(cfg.batch_size, n_rows)
    n_steps = cfg.n_steps(n_rows)
    opt, sched = make_optimizer(module, cfg, n_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    since_fired = torch.zeros(module.d_sae, dtype=torch.long, device=x.device)
    total_var = (y - y.mean(0)).pow(2).sum(-1).mean().clamp_min(torch.finfo(y.dtype).tiny)
    order, cursor = torch.randperm(n_rows, generator=gen).to(x.device), 0
    history: list[dict[str, float]] = []
    for step in range(n_steps):
        if cursor + batch_size > n_rows:
            order, cursor = torch.randperm(n_rows, generator=gen).to(x.device), 0
        rows = order[cursor : cursor + batch_size]
        cursor += batch_size
        dead = since_fired >= cfg.dead_feature_window
        out = module.training_forward(x[rows], None if targets is None else y[rows], dead=dead)
        since_fired = optimizer_step(module, opt, sched, out.loss, out.feature_acts, since_fired, first=step == 0)
        if (step + 1) % log_every == 0 or step + 1 == n_steps:
            history.append(
                history_row(step, out.losses, total_var, out.feature_acts, since_fired, cfg.dead_feature_window)
            )
    module.fold_scaling_factor(scale_in, scale_out)
    module.eval().requires_grad_(False)
    return TrainingResult(module, history, time.perf_counter() - start, scale_in, n_steps)


def train_dictionary(
    cfg: DictionaryConfig,
    activations: Activations | Float[Tensor, "row d_in"],
    *,
    meta: dict[str, Any] | None = None,
    log_every: int = 100,
) -> TrainingResult:
    """Train a dictionary of ``cfg`` on ``activations`` (rows, or :class:`Activations`) with :func:`fit`.

    Returns the dictionary (in eval mode, the activation scale folded in) and the
    training curve: ``mse``, ``fvu``, ``l0`` and ``dead_features`` (features that have not
    fired for ``dead_feature_window`` steps) every ``log_every`` steps and at the end.
    """
    x, _ = training_rows(activations)
    return fit(SparseDictionary(cfg.resolved(x.shape[1]), meta=meta), x, log_every=log_every)


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
    *,
    first: bool,
) -> Tensor:
    """One update of a member of the family from ``loss``: gradient step, unit-norm decoder rows, then the
    architecture's :meth:`~SparseDictionary.after_step`. Returns ``since_fired`` (steps since each feature fired in
    ``acts``) updated."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_parallel_decoder_grad()
    opt.step()
    sched.step()
    sae.normalize_decoder()
    with torch.no_grad():
        fired = (acts > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + 1)
    sae.after_step(acts, first=first)
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
    "fit",
    "history_row",
    "make_optimizer",
    "optimizer_step",
    "train_dictionary",
    "train_on_model",
    "train_on_run",
    "training_forward",
    "training_rows",
]
