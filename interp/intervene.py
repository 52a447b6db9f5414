"""The intervention engine: composable edits of activations, applied through TransformerLens hooks.

Every causal analysis in grokscope is one or more forward passes in which some activations
are read or replaced. This module is the single mechanism behind all of them; the logit
lens, activation patching, causal tracing and attribution patching are thin uses of it.

An :class:`Intervention` names a TransformerLens hook point (``blocks.3.hook_resid_pre``,
``blocks.1.attn.hook_z``, ...) and says what to do with the activation there:

* :class:`Read`      store the activation (optionally keeping its autograd graph);
* :class:`Patch`     replace it, at the positions (and heads) a mask selects, by a value:
                     an activation of another run (patching, :func:`restore`), zeros
                     (:func:`zero_ablation`), a mean (:func:`mean_ablation`) or the
                     activation of other examples (:func:`resample_ablation`);
* :class:`AddNoise`  add a fixed noise tensor (:func:`gaussian_noise`, ROME's corruption).

A list of interventions runs in a single forward (:func:`run_with_interventions`); several
on one hook apply in list order, so "add noise, then restore one position" is two
interventions. Every random choice is drawn when the intervention is built, from a seed
or a ``torch.Generator``: running the same interventions twice gives the same result.

Because the model is causal, the residual stream entering block ``L`` carries everything
blocks ``L..`` need. :func:`run_with_interventions` can therefore start at block ``L`` from
a cached residual (``start_at_layer=L``) and run only the blocks from ``L`` on; patching
sweeps use this to skip the blocks below each patched layer, and they stack many patched
copies of a batch into one forward with :meth:`Intervention.take`.

Masks (``where``) are boolean tensors over ``batch pos`` or ``batch pos head_index``; they
broadcast over the trailing feature axes of the activation. ``None`` means "everywhere".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.data.vocab import UnknownTokenError
from interp.errors import GrokscopeError

Where = Union[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos head_index"], None]
"""Which entries of an activation an intervention touches (``None``: all of them)."""


# ------------------------------------------------------------------------------- errors
class InterventionError(GrokscopeError, ValueError):
    """An analysis was asked for something the model or the inputs cannot give."""


class LayerOutOfRangeError(InterventionError):
    """A layer index outside the model."""


class PositionOutOfRangeError(InterventionError):
    """A position (or head) index outside the prompt (or the attention layer)."""


class ShapeMismatchError(InterventionError):
    """Two inputs that must line up (clean and corrupt prompts, a cache and a run) do not."""


class VocabMismatchError(InterventionError):
    """A model and a dataset whose vocabularies differ."""


class UnknownHookError(InterventionError):
    """A hook name the model does not have."""


# ---------------------------------------------------------------------- model handling
def as_bridge(model: Any) -> Any:
    """A TransformerLens bridge for ``model``: a bridge is returned as is, a GPT-2 is wrapped."""
    if hasattr(model, "hook_dict") and hasattr(model, "blocks"):
        return model
    from transformers import GPT2LMHeadModel

    if isinstance(model, GPT2LMHeadModel):
        from interp.models import to_bridge

        return to_bridge(model)
    raise InterventionError(
        f"expected a TransformerBridge or a GPT2LMHeadModel, got {type(model).__name__}; "
        "build one with interp.models.build_model / to_bridge"
    )


def n_layers(bridge: Any) -> int:
    return len(bridge.blocks)


def check_vocab(bridge: Any, vocab_size: int, what: str = "the dataset") -> None:
    """Refuse a model and a dataset whose vocabularies differ in size."""
    d_vocab = int(bridge.cfg.d_vocab)
    if d_vocab != vocab_size:
        raise VocabMismatchError(
            f"the model's vocabulary has {d_vocab} tokens but {what}'s has {vocab_size}; "
            "use the dataset the model was trained on (LoadedRun.dataset)"
        )


def check_tokens(bridge: Any, tokens: Tensor, name: str = "tokens") -> Int[Tensor, "batch pos"]:
    """Token ids of shape ``batch pos`` inside the model's vocabulary and context."""
    if not isinstance(tokens, Tensor) or tokens.is_floating_point() or tokens.ndim != 2:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ShapeMismatchError(f"{name} must be an integer tensor of shape (batch, pos); got {shape}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ShapeMismatchError(f"{name} is empty (shape {tuple(tokens.shape)}); give at least one prompt")
    check_in_vocab(bridge, tokens, name)
    n_ctx = getattr(bridge.cfg, "n_ctx", None)
    if n_ctx is not None and tokens.shape[1] > n_ctx:
        raise ShapeMismatchError(f"{name} has {tokens.shape[1]} positions but the model's context is {n_ctx}")
    return tokens


def check_in_vocab(bridge: Any, ids: Tensor, name: str = "tokens") -> Tensor:
    """Token ids (any shape) that all lie inside the model's vocabulary."""
    d_vocab = int(bridge.cfg.d_vocab)
    bad = (ids < 0) | (ids >= d_vocab)
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        index = "[" + ", ".join(map(str, where)) + "]"
        raise UnknownTokenError(
            f"{name}{index} = {int(ids[where])} is outside the model's vocabulary (ids 0..{d_vocab - 1}); "
            "encode tokens with the vocab of the model's dataset"
        )
    return ids


def check_same_shape(a: Tensor, b: Tensor, a_name: str = "clean", b_name: str = "corrupt") -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(
            f"{a_name} and {b_name} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)} "
            "(pair prompts of equal length)"
        )


def check_layer(layer: int, n: int, what: str = "layer") -> int:
    """``layer`` as an index into ``n`` layers (or states); anything else is a one-line error."""
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < n:
        raise LayerOutOfRangeError(f"{what} {layer!r} is out of range; choose one of 0..{n - 1}")
    return layer


def check_position(pos: int, n_pos: int, what: str = "position", of: str = "the prompts have") -> int:
    """``pos`` as an index into ``n_pos`` positions (or heads); anything else is a one-line error."""
    if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < n_pos:
        unit = "heads" if what == "head" else "positions"
        raise PositionOutOfRangeError(f"{what} {pos!r} is out of range; {of} {n_pos} {unit} (0..{n_pos - 1})")
    return pos


def check_hook(bridge: Any, name: str) -> str:
    if name not in bridge.hook_dict:
        raise UnknownHookError(f"unknown hook {name!r}; use TransformerLens names such as blocks.0.hook_resid_pre")
    return name


def answer_positions(tokens: Tensor, answer_pos: Tensor | int | None) -> Int[Tensor, "batch"]:
    """Where the answer is predicted, per example (default: the last position)."""
    batch, n_pos = tokens.shape
    if answer_pos is None:
        return torch.full((batch,), n_pos - 1, dtype=torch.long, device=tokens.device)
    out = torch.as_tensor(answer_pos, dtype=torch.long, device=tokens.device).expand(batch).clone()
    bad = (out < 0) | (out >= n_pos)
    if bool(bad.any()):
        check_position(int(out[bad][0]), n_pos, "answer position")
    return out


# ------------------------------------------------------------------------ interventions
IN_PLACE_HOOKS = ("hook_resid_mid",)
"""Hooks whose tensor the model also uses beyond the hook: edits there are written in place.

In the TransformerLens 4 bridge ``blocks.L.hook_resid_mid`` is the input of ``ln2``; the very
same tensor is the residual that skips the MLP. A returned copy would change only the MLP's
input; writing into the tensor changes the residual stream, as patching resid_mid means.
"""


def _take(t: Tensor | None, rows: Tensor) -> Tensor | None:
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
        raise NotImplementedError

    def __call__(self, act: Tensor, hook: Any = None) -> Tensor | None:
        new = self.edit(act)
        if new is not None and new is not act and self.hook.endswith(IN_PLACE_HOOKS):
            act.copy_(new)
            return act
        return new

    def take(self, rows: Int[Tensor, "row"]) -> Intervention:
        """The same edit for a batch made of rows ``rows`` of the original batch."""
        return self

    def __repr__(self) -> str:  # short: TransformerLens names each hook function by its repr
        return f"{type(self).__name__}({self.hook!r})"


@dataclass(eq=False, repr=False)
class Read(Intervention):
    """Store the activation in ``store[key]`` (``key`` defaults to the hook name).

    ``detach=False`` keeps the autograd graph, so gradients with respect to the stored tensor
    can be taken after the forward (attribution patching).
    """

    store: dict[str, Tensor] = field(default_factory=dict)
    key: str | None = None
    detach: bool = True

    def edit(self, act: Tensor) -> Tensor | None:
        if self.detach:
            # a copy: a later in-place edit on the same tensor must not change what was read
            self.store[self.key or self.hook] = act.detach().clone()
            return None
        # Returned, so that the stored tensor is the one the model goes on with: some hooks
        # (hook_z) show a reshaped view, and only a returned tensor flows back into the model.
        self.store[self.key or self.hook] = act
        return act


@dataclass(eq=False, repr=False)
class Patch(Intervention):
    """Replace the activation by ``value`` where ``where`` is true.

    ``value`` has the activation's shape, or broadcasts to it (a scalar for zero ablation,
    a batch-1 tensor for mean ablation).
    """

    value: Tensor = field(default_factory=lambda: torch.zeros(()))
    where: Where = None

    def edit(self, act: Tensor) -> Tensor:
        value = self.value.to(dtype=act.dtype, device=act.device)
        if self.where is None:
            return value.expand_as(act).clone()
        return torch.where(_expand(self.where.to(act.device), act), value, act)

    def take(self, rows: Int[Tensor, "row"]) -> Patch:
        return replace(self, value=_take(self.value, rows), where=_take(self.where, rows))


@dataclass(eq=False, repr=False)
class AddNoise(Intervention):
    """Add ``noise`` (the activation's shape, or broadcastable) where ``where`` is true."""

    noise: Tensor = field(default_factory=lambda: torch.zeros(()))
    where: Where = None

    def edit(self, act: Tensor) -> Tensor:
        noise = self.noise.to(dtype=act.dtype, device=act.device)
        if self.where is None:
            return act + noise
        return act + noise * _expand(self.where.to(act.device), act)

    def take(self, rows: Int[Tensor, "row"]) -> AddNoise:
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
    """Paste the activation ``cache[hook]`` of another run (clean, corrupt, perturbed) back in."""
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


# ----------------------------------------------------------------------------- running
def run_with_interventions(
    bridge: Any,
    inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_model"],
    interventions: Iterable[Intervention] = (),
    *,
    start_at_layer: int | None = None,
    answer_pos: Int[Tensor, "batch"] | None = None,
) -> Float[Tensor, "batch pos d_vocab"] | Float[Tensor, "batch d_vocab"]:
    """One forward with every intervention hooked in; returns the logits.

    ``inputs`` are token ids, or with ``start_at_layer=L`` the residual stream entering block
    ``L`` (``L = n_layers``: the final residual, only the unembedding runs). A forward that
    starts at ``L`` runs the model's own blocks ``L..`` then its final LayerNorm and
    unembedding, exactly as the full forward would from that residual; hooks of blocks below
    ``L`` do not fire. With ``answer_pos`` only the logits at those positions are computed.
    Gradients flow as usual; wrap the call in ``torch.no_grad()`` when you need none.
    """
    interventions = list(interventions)
    hooks = [(check_hook(bridge, iv.hook), iv) for iv in interventions]
    with bridge.hooks(fwd_hooks=hooks):
        if start_at_layer is None:
            logits = bridge(inputs)
            if answer_pos is not None:
                logits = logits[torch.arange(logits.shape[0], device=logits.device), answer_pos.to(logits.device)]
            return logits
        n = n_layers(bridge)
        if not 0 <= start_at_layer <= n:
            check_layer(start_at_layer, n + 1, "start layer")
        resid = inputs
        for block in bridge.blocks[start_at_layer:]:
            out = block(resid)
            resid = out[0] if isinstance(out, tuple) else out
        if answer_pos is not None:
            resid = resid[torch.arange(resid.shape[0], device=resid.device), answer_pos.to(resid.device)]
        return bridge.unembed(bridge.ln_final(resid))


def cache_activations(
    bridge: Any,
    tokens: Int[Tensor, "batch pos"],
    hooks: Iterable[str],
    interventions: Iterable[Intervention] = (),
    *,
    detach: bool = True,
) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
    """Logits and the activations at ``hooks`` of one forward (after ``interventions``)."""
    store: dict[str, Tensor] = {}
    reads = [Read(h, store=store, detach=detach) for h in dict.fromkeys(hooks)]
    logits = run_with_interventions(bridge, tokens, [*interventions, *reads])
    return logits, store
