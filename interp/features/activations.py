"""Activations to train a dictionary on: one hook point of a model, over a dataset's prompts.

A :class:`PromptSet` is the prompts of the chosen splits (each distinct prompt once: the
probe splits repeat training examples) with a mask of the chosen positions; only real
prompt tokens are ever selected, never padding or the answer. :func:`collect_activations`
reads the hook with the engine's :func:`~interp.intervene.cache_activations` and keeps the
selected rows, with trailing axes flattened (``blocks.0.attn.hook_z`` is ``head_index *
d_head`` wide). Because the model is causal, the activation at a prompt position depends
only on the prompt up to it, so the prompt alone is run.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.data import SPLITS, KGDataset, TokenBatch, make_batch
from interp.features.config import EmptyPromptSetError
from interp.intervene import UnknownHookError, as_bridge, cache_activations, check_vocab
from interp.models.protocol import Bridge, HookedModel

NOT_PER_POSITION = ("hook_pattern", "hook_attn_scores")
"""Hooks whose activation is not ``batch pos ...`` (attention patterns are ``batch head query key``)."""

CHUNK = 4096
"""Prompts per forward when collecting."""


def check_site(bridge: Bridge, hook_name: str) -> str:
    """``hook_name`` if the bridge has it and it is one activation per position; else a one-line error."""
    hooks = list(bridge.hook_dict)
    if hook_name not in bridge.hook_dict:
        close = difflib.get_close_matches(hook_name, hooks, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        examples = [
            h
            for h in (
                "blocks.0.hook_resid_post",
                "blocks.0.hook_mlp_out",
                "blocks.0.attn.hook_z",
                "blocks.0.hook_resid_mid",
                "blocks.0.mlp.hook_post",
            )
            if h in bridge.hook_dict
        ]
        raise UnknownHookError(
            f"unknown hook {hook_name!r}; {hint}the model has {len(hooks)} hooks such as {', '.join(examples)}"
        )
    if hook_name.endswith(NOT_PER_POSITION):
        raise UnknownHookError(
            f"{hook_name!r} is not one activation per position (attention patterns are batch x head x query x key); "
            "choose a residual, MLP or attention-output hook"
        )
    return hook_name


def flat(act: Tensor) -> Float[Tensor, "batch pos d_in"]:
    """A ``batch pos ...`` activation with its trailing axes flattened into one."""
    return act.reshape(act.shape[0], act.shape[1], -1)


# --------------------------------------------------------------------------- prompt sets
@dataclass
class PromptSet:
    """Distinct prompts of some splits and the positions of each selected for a dictionary."""

    batch: TokenBatch
    """The prompts (right-padded, answers included), each distinct prompt once."""
    mask: Bool[Tensor, "batch pos"]
    """True at the selected positions (real prompt tokens only)."""

    @property
    def tokens(self) -> Int[Tensor, "batch pos"]:
        """The prompt tokens: the batch's tokens up to the longest prompt."""
        return self.batch.tokens[:, : int(self.batch.prompt_len.max())]

    def __len__(self) -> int:
        return int(self.mask.sum())


def prompt_set(
    dataset: KGDataset,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
) -> PromptSet:
    """The distinct prompts of ``splits`` (None: all) and a mask of ``positions`` (None: every prompt token).

    A position index selects that token in every prompt long enough to have it; a position
    name (``"r1"``) is resolved by the dataset's task schema and selects it in the task's
    inferred prompts only (an atomic fact ``h r`` has no ``r1``).
    """
    names = tuple(SPLITS if splits is None else splits)
    by_name = any(isinstance(p, str) for p in positions or ())
    schema = dataset.schema if by_name else None
    seen: set[tuple[str, ...]] = set()
    examples = []
    for split in names:
        for ex in dataset.examples(split):
            key = tuple(ex.input_tokens)
            if key in seen or (schema is not None and not schema.is_prompt(ex)):
                continue
            seen.add(key)
            examples.append(ex)
    where = f"splits {', '.join(names)}"
    if not examples:
        raise EmptyPromptSetError(
            f"no prompts in {where}{' of the task shape' if by_name else ''}; choose other splits"
        )
    batch = make_batch(examples, dataset.vocab)
    width = int(batch.prompt_len.max())
    pos = torch.arange(width)[None, :]
    real = pos < batch.prompt_len[:, None]  # (batch, pos)
    if positions is None:
        return PromptSet(batch, real)
    index = [schema.position(p) if isinstance(p, str) else p for p in positions]  # type: ignore[union-attr]
    chosen = torch.zeros(width, dtype=torch.bool)
    for p in index:
        if p < width:
            chosen[p] = True
    mask = real & chosen[None, :]
    if not bool(mask.any()):
        raise EmptyPromptSetError(
            f"positions {list(positions)} select no prompt token in {where} (the longest prompt has {width} tokens)"
        )
    return PromptSet(batch, mask)


# ---------------------------------------------------------------------------- activations
@dataclass
class Activations:
    """The activations of one hook at the selected positions of a prompt set, one row each."""

    hook_name: str
    acts: Float[Tensor, "row d_in"]
    prompts: PromptSet
    example: Int[Tensor, " row"]
    """Which prompt of ``prompts.batch`` each row comes from."""
    position: Int[Tensor, " row"]
    """The prompt position of each row."""

    @property
    def d_in(self) -> int:
        """The width of each activation row."""
        return self.acts.shape[1]

    def __len__(self) -> int:
        return self.acts.shape[0]


@torch.no_grad()
def read_activation(bridge: Bridge, tokens: Int[Tensor, "batch pos"], hook_name: str) -> Tensor:
    """The activation at ``hook_name`` for ``tokens`` (``batch pos ...``, unflattened), in chunks."""
    parts = []
    for start in range(0, tokens.shape[0], CHUNK):
        _, store = cache_activations(bridge, tokens[start : start + CHUNK], [hook_name])
        parts.append(store[hook_name])
    return torch.cat(parts)


@torch.no_grad()
def collect_activations(
    model: HookedModel,
    dataset: KGDataset,
    hook_name: str,
    *,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
) -> Activations:
    """The activations at ``hook_name`` over the prompts of ``splits`` at ``positions`` (None: all)."""
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    check_site(bridge, hook_name)
    prompts = prompt_set(dataset, splits, positions)
    device = next(iter(bridge.parameters())).device if hasattr(bridge, "parameters") else torch.device("cpu")
    act = read_activation(bridge, prompts.tokens.to(device), hook_name)
    if act.ndim < 3 or tuple(act.shape[:2]) != tuple(prompts.tokens.shape):
        raise UnknownHookError(
            f"{hook_name!r} gives shape {tuple(act.shape)}, not one activation per position; choose another hook"
        )
    example, position = prompts.mask.nonzero(as_tuple=True)
    rows = flat(act)[example.to(act.device), position.to(act.device)]
    return Activations(hook_name, rows, prompts, example, position)


__all__ = ["Activations", "PromptSet", "check_site", "collect_activations", "flat", "prompt_set", "read_activation"]
