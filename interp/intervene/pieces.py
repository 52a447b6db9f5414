"""The pieces of the intervention engine: one edit of the activation at one hook point.

:class:`Read` stores, :class:`Patch` replaces, :class:`AddNoise` adds, and :class:`GradLeaf`
starts the autograd graph; the constructors below build the patches and noise that
analyses use (restoring another run, zero / mean / resample ablation, Gaussian noise),
drawing every random choice when the piece is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.intervene.checks import ShapeMismatchError, check_position

Where = Bool[Tensor, "batch pos"] | Bool[Tensor, "batch pos head_index"] | None
"""Which entries of an activation an intervention touches (``None``: all of them)."""

IN_PLACE_HOOKS = ("hook_resid_mid",)
"""Hooks whose tensor the model also uses beyond the hook: edits there are written in place.

In the TransformerLens 4 bridge ``blocks.L.hook_resid_mid`` is the input of ``ln2``; the very
same tensor is the residual that skips the MLP. A returned copy would change only the MLP's
input; writing into the tensor changes the residual stream, as patching resid_mid means.
"""


def _take(t: Tensor | None, rows: Int[Tensor, " row"]) -> Tensor | None:
    """Rows ``rows`` of a per-example tensor; scalars and batch-1 tensors broadcast and are kept."""
    if t is None or t.ndim == 0 or t.shape[0] == 1:
        return t
    return t[rows]


def _expand(where: Tensor, act: Tensor) -> Tensor:
    """A ``batch pos [head_index]`` mask shaped to broadcast over ``act``'s feature axes."""
    if where.ndim > act.ndim or tuple(where.shape) != tuple(act.shape[: where.ndim]):
        raise ShapeMismatchError(
            f"an intervention mask of shape {tuple(where.shape)} does not fit an activation of shape {tuple(act.shape)}"
        )
    return where.reshape(tuple(where.shape) + (1,) * (act.ndim - where.ndim))


@dataclass(eq=False, repr=False)
class Intervention:
    """One edit at one hook point. Subclasses implement :meth:`edit`."""

    hook: str

    def edit(self, act: Tensor) -> Tensor | None:  # pragma: no cover - abstract
        """The new activation for ``act`` (``batch pos ...``), or None to leave it as it is."""
        raise NotImplementedError

    def __call__(self, act: Tensor, hook: Any = None) -> Tensor | None:
        """The hook function: :meth:`edit`, written into ``act`` at hooks whose tensor the model goes on using."""
        new = self.edit(act)
        if new is not None and new is not act and self.hook.endswith(IN_PLACE_HOOKS):
            act.copy_(new)
            return act
        return new

    def take(self, rows: Int[Tensor, " row"]) -> Intervention:
        """The same edit for a batch made of rows ``rows`` of the original batch."""
        return self

    def __repr__(self) -> str:  # short: TransformerLens names each hook function by its repr
        return f"{type(self).__name__}({self.hook!r})"


# ------------------------------------------------------------------- reading, gradients
@dataclass(eq=False, repr=False)
class Read(Intervention):
    """Store the activation in ``store[key]`` (``key`` defaults to the hook name).

    ``detach=True`` stores a detached copy: what the run computed there, unaffected by later
    edits. ``detach=False`` keeps the gradient: the stored tensor is a fresh autograd node (a
    copy of the activation) that the model goes on with, so after the forward the gradient
    of anything downstream with respect to it is the gradient with respect to this hook's
    output. Returned, so that it flows on where the hook shows a reshaped view (``hook_z``);
    fresh, so that at a hook whose tensor the model also uses beside it (``hook_mlp_in`` is
    the residual that skips the MLP too) it carries only the hook's own path, while at an
    in-place hook (``hook_resid_mid``) it is written into the residual and carries both.
    Gradients need the graph to start upstream: see :class:`GradLeaf` and
    :func:`interp.intervene.activation_gradients`, the one place analyses take them.
    """

    store: dict[str, Tensor] = field(default_factory=dict)
    key: str | None = None
    detach: bool = True

    def edit(self, act: Tensor) -> Tensor | None:
        """Store the activation (a detached copy, or a fresh autograd node that the model goes on with)."""
        if self.detach:
            # a copy: a later in-place edit on the same tensor must not change what was read
            self.store[self.key or self.hook] = act.detach().clone()
            return None
        fresh = act.clone()
        self.store[self.key or self.hook] = fresh
        return fresh


@dataclass(eq=False, repr=False)
class GradLeaf(Intervention):
    """Start the autograd graph here: the activation becomes a leaf that requires grad.

    Put at ``hook_embed`` after any edits there (a patched input on an integrated-gradients
    path is a constant), it makes every later activation differentiable even when the
    model's parameters are frozen, and keeps the backward from reaching into the weights.
    """

    def edit(self, act: Tensor) -> Tensor:
        """The activation detached from the graph, as a leaf that requires the gradient."""
        return act.detach().requires_grad_(True)


# -------------------------------------------------------------------- writing, noising
@dataclass(eq=False, repr=False)
class Patch(Intervention):
    """Replace the activation by ``value`` where ``where`` is true.

    ``value`` has the activation's shape, or broadcasts to it (a scalar for zero ablation,
    a batch-1 tensor for mean ablation).
    """

    value: Tensor = field(default_factory=lambda: torch.zeros(()))
    where: Where = None

    def edit(self, act: Tensor) -> Tensor:
        """``value`` at the masked entries (everywhere without a mask), ``act`` elsewhere."""
        value = self.value.to(dtype=act.dtype, device=act.device)
        if self.where is None:
            return value.expand_as(act).clone()
        return torch.where(_expand(self.where.to(act.device), act), value, act)

    def take(self, rows: Int[Tensor, " row"]) -> Patch:
        """The same patch for the batch rows ``rows`` (``value`` and ``where`` indexed where per row)."""
        return replace(self, value=_take(self.value, rows), where=_take(self.where, rows))


@dataclass(eq=False, repr=False)
class AddNoise(Intervention):
    """Add ``noise`` (the activation's shape, or broadcastable) where ``where`` is true."""

    noise: Tensor = field(default_factory=lambda: torch.zeros(()))
    where: Where = None

    def edit(self, act: Tensor) -> Tensor:
        """``act`` plus the noise, at the masked entries (everywhere without a mask)."""
        noise = self.noise.to(dtype=act.dtype, device=act.device)
        if self.where is None:
            return act + noise
        return act + noise * _expand(self.where.to(act.device), act)

    def take(self, rows: Int[Tensor, " row"]) -> AddNoise:
        """The same noise for the batch rows ``rows`` (``noise`` and ``where`` indexed where per row)."""
        return replace(self, noise=_take(self.noise, rows), where=_take(self.where, rows))


# ------------------------------------------------------------------------ constructors
def generator_from(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU ``torch.Generator``: the one given, or a fresh one seeded with ``seed`` (0 if None)."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def position_mask(
    batch: int,
    n_pos: int,
    positions: int | Sequence[int] | None,
    *,
    heads: int | Sequence[int] | None = None,
    n_heads: int | None = None,
    device: torch.device | str | None = None,
) -> Bool[Tensor, "batch pos"] | Bool[Tensor, "batch pos head_index"]:
    """A mask selecting ``positions`` (None: all) and, for per-head activations, ``heads``."""
    pos_sel = torch.zeros(n_pos, dtype=torch.bool, device=device)
    if positions is None:
        pos_sel[:] = True
    else:
        for p in [positions] if isinstance(positions, int) else positions:
            pos_sel[check_position(p, n_pos)] = True
    if n_heads is None:
        return pos_sel.expand(batch, n_pos).clone()
    head_sel = torch.zeros(n_heads, dtype=torch.bool, device=device)
    if heads is None:
        head_sel[:] = True
    else:
        for h in [heads] if isinstance(heads, int) else heads:
            head_sel[check_position(h, n_heads, "head", "the layer has")] = True
    return (pos_sel[:, None] & head_sel[None, :]).expand(batch, n_pos, n_heads).clone()


def restore(cache: Mapping[str, Tensor] | Any, hook: str, where: Where = None) -> Patch:
    """Paste the activation ``cache[hook]`` of another run (clean, corrupt, perturbed) back in.

    ``cache`` is a mapping hook -> activation or a TransformerLens ``ActivationCache``.
    """
    return Patch(hook, value=cache[hook], where=where)


def zero_ablation(hook: str, where: Where = None) -> Patch:
    """Set the activation to zero."""
    return Patch(hook, value=torch.zeros(()), where=where)


def mean_ablation(hook: str, reference: Tensor, where: Where = None) -> Patch:
    """Replace the activation by its mean over the examples of ``reference`` (``batch pos ...``)."""
    return Patch(hook, value=reference.mean(dim=0, keepdim=True), where=where)


def resample_ablation(
    hook: str, reference: Tensor, where: Where = None, *, seed: int | torch.Generator | None = 0
) -> Patch:
    """Replace each example's activation by that of a random example of ``reference``.

    ``reference`` must have the batch size of the run; the permutation is drawn once, here.
    """
    perm = torch.randperm(reference.shape[0], generator=generator_from(seed))
    return Patch(hook, value=reference[perm.to(reference.device)], where=where)


def gaussian_noise(
    hook: str,
    shape: Sequence[int],
    std: float,
    where: Where = None,
    *,
    seed: int | torch.Generator | None = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> AddNoise:
    """Add N(0, std^2) noise of ``shape`` (the activation's), drawn once, here."""
    noise = torch.randn(tuple(shape), generator=generator_from(seed), dtype=dtype) * std
    return AddNoise(hook, noise=noise.to(device), where=where)
