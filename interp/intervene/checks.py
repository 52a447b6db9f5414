"""Input checks of the intervention engine, and its one-line errors.

Every analysis validates what it is given before running anything: a model that can be
hooked (:func:`as_bridge`), token ids of the right shape inside the vocabulary and the
context, layers, positions and heads in range, hook names the model has. Each failure is
one line that says what to change.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data.vocab import UnknownTokenError
from interp.errors import GrokscopeError
from interp.models.family import CausalLM
from interp.models.protocol import Bridge, HookedModel


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
def as_bridge(model: HookedModel) -> Bridge:
    """A TransformerLens bridge for ``model``: a bridge is returned as is, a plain model (either family) is wrapped."""
    if isinstance(model, Bridge):
        return model
    if isinstance(model, CausalLM):
        from interp.models import to_bridge

        return to_bridge(model)
    raise InterventionError(
        f"expected a TransformerBridge, a GPT2LMHeadModel or a LlamaForCausalLM, got {type(model).__name__}; "
        "build one with interp.models.build_model / to_bridge"
    )


def n_layers(bridge: Bridge) -> int:
    """The number of blocks of ``bridge`` (``len(bridge.blocks)``), the layers an analysis sweeps."""
    return len(bridge.blocks)


def check_vocab(bridge: Bridge, vocab_size: int, what: str = "the dataset") -> None:
    """Refuse a model and a dataset whose vocabularies differ in size."""
    d_vocab = int(bridge.cfg.d_vocab)
    if d_vocab != vocab_size:
        raise VocabMismatchError(
            f"the model's vocabulary has {d_vocab} tokens but {what}'s has {vocab_size}; "
            "use the dataset the model was trained on (LoadedRun.dataset)"
        )


def check_tokens(bridge: Bridge, tokens: Tensor, name: str = "tokens") -> Int[Tensor, "batch pos"]:
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


def check_in_vocab(bridge: Bridge, ids: Tensor, name: str = "tokens") -> Tensor:
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
    """Refuse two token tensors of different shapes (``a_name`` and ``b_name`` name them in the one-line error)."""
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


def check_hook(bridge: Bridge, name: str) -> str:
    """``name`` if ``bridge`` has a hook of that name; otherwise a one-line ``UnknownHookError``."""
    if name not in bridge.hook_dict:
        raise UnknownHookError(f"unknown hook {name!r}; use TransformerLens names such as blocks.0.hook_resid_pre")
    return name


def answer_positions(tokens: Int[Tensor, "batch pos"], answer_pos: Tensor | int | None) -> Int[Tensor, " batch"]:
    """Where the answer is predicted, per example (default: the last position)."""
    batch, n_pos = tokens.shape
    if answer_pos is None:
        return torch.full((batch,), n_pos - 1, dtype=torch.long, device=tokens.device)
    out = torch.as_tensor(answer_pos, dtype=torch.long, device=tokens.device).expand(batch).clone()
    bad = (out < 0) | (out >= n_pos)
    if bool(bad.any()):
        check_position(int(out[bad][0]), n_pos, "answer position")
    return out
