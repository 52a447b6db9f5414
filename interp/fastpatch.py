"""Running a patching sweep's rows: which rows can change anything, and where each starts.

A row of a sweep (:func:`interp.patching.patch_sites`) is one (site, example) pair: the run
on the example with the site's hooks pasted from the source. By causality such a row equals
the unpatched run at every position before the first one its patch really changes, in every
block, and in every block before the site's. :func:`row_starts` finds that position per row;
rows whose patch changes nothing, or changes only positions after the answer, are not run
(their metric is the unpatched one, exactly).

Rows are grouped by (start block, start position) and each group runs once through
:func:`interp.intervene.suffix.run_suffix`: blocks from the start on, positions from the
start on, the unpatched run's keys and values before it.

One more case is exact by causality: when a row pastes the source's whole residual stream
(``hook_resid_pre``, ``hook_resid_mid`` or ``hook_resid_post`` of block ``L``) at position
``p`` and the two runs already agree at every position before ``p`` there, then at
positions ``0..p`` every later block computes exactly the source run (the rest of block
``L`` works per position). :func:`source_prefix_rows` marks such rows; they start at
``p + 1`` with the source run's keys and values for positions ``0..p``, in block ``L`` for
``hook_resid_pre`` and in block ``L + 1`` for the other two (:func:`source_prefix_block`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.intervene import Intervention, InterventionError
from interp.intervene.suffix import OUTSIDE_BLOCKS


def block_of(hook: str) -> int | None:
    """The block a hook belongs to (``blocks.3.attn.hook_z`` -> 3), None outside the blocks."""
    parts = hook.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


def site_mask(site: Any, act_shape: tuple[int, ...]) -> Tensor:
    """Which ``pos [head_index]`` entries of one example the site patches (per-head if ``act_shape`` has 4 axes)."""
    per_head = len(act_shape) == 4
    mask = torch.zeros(act_shape[1:3] if per_head else act_shape[1:2], dtype=torch.bool)
    index: tuple[Any, ...] = (slice(None) if site.pos is None else site.pos,)
    if per_head:
        index += (slice(None) if site.head is None else site.head,)
    elif site.head is not None:
        raise InterventionError(f"site {site} names a head but {site.hooks[0]} is not a per-head activation")
    mask[index] = True
    return mask


def kv_hooks(first_layer: int, n_layers: int) -> list[str]:
    """The key and value hooks of blocks ``first_layer..``."""
    return [f"blocks.{layer}.attn.hook_{kind}" for layer in range(first_layer, n_layers) for kind in ("k", "v")]


def optional_lookup(
    cache: Mapping[str, Tensor] | Any, hooks: Sequence[str], batch_pos: tuple[int, ...]
) -> dict[str, Tensor] | None:
    """``cache[h]`` for every hook, or None if the cache lacks one or one is not ``batch pos ...``."""
    out = {}
    for h in hooks:
        try:
            out[h] = cache[h]
        except KeyError:
            return None
        if tuple(out[h].shape[:2]) != tuple(batch_pos):
            return None
    return out


def row_starts(
    hooks: Sequence[str],
    masks: Mapping[str, Tensor],
    base: Mapping[str, Tensor],
    src: Mapping[str, Tensor],
    skip_noops: bool,
    n_pos: int,
) -> tuple[Bool[Tensor, "site batch"], Int[Tensor, "site batch"]]:
    """Whether each (site, example) row changes anything, and the first position it changes.

    ``masks[h]`` is ``site pos [head_index]``; with ``skip_noops`` an entry counts only where
    the pasted value differs from the one there, otherwise wherever the site patches.
    """
    n_sites, batch = next(iter(masks.values())).shape[0], next(iter(base.values())).shape[0]
    device = masks[hooks[0]].device
    touched = torch.zeros(n_sites, batch, n_pos, dtype=torch.bool, device=device)
    for h in hooks:
        act, axes = base[h], masks[h].ndim  # batch pos [head_index] feature axes
        if skip_noops:
            differs = (src[h].to(device=device, dtype=act.dtype) != act).flatten(axes).any(-1)
        else:
            differs = torch.ones(act.shape[:axes], dtype=torch.bool, device=device)
        hit = differs[None] & masks[h][:, None]  # site batch pos [head_index]
        touched |= hit.flatten(3).any(-1) if hit.ndim == 4 else hit
    return touched.any(-1), touched.int().argmax(-1)


def _in_or_after(hook: str, layer: int) -> bool:
    parts = hook.split(".")
    return hook not in OUTSIDE_BLOCKS and not (parts[0] == "blocks" and parts[1].isdigit() and int(parts[1]) < layer)


_RESIDUAL_SHIFT = {"hook_resid_pre": 0, "hook_resid_mid": 1, "hook_resid_post": 1}


def source_prefix_block(site: Any) -> int | None:
    """For a single-position site on one whole-residual hook of block ``L``, the block its
    source-prefix rows start in (``L`` for ``hook_resid_pre``, ``L + 1`` for ``hook_resid_mid``
    and ``hook_resid_post``); None for any other site."""
    if len(site.hooks) != 1 or site.pos is None:
        return None
    shift, block = _RESIDUAL_SHIFT.get(site.hooks[0].rsplit(".", 1)[-1]), block_of(site.hooks[0])
    return None if shift is None or block is None else block + shift


def source_prefix_rows(
    sites: Sequence[Any],
    base: Mapping[str, Tensor],
    src: Mapping[str, Tensor],
    start_pos: Int[Tensor, "site batch"],
    answer_pos: Int[Tensor, " batch"],
    interventions: Sequence[Intervention],
    n_layers: int,
) -> Bool[Tensor, "site batch"]:
    """Rows that paste the source's whole residual at their start position ``p`` (a site with
    a :func:`source_prefix_block`) where both runs agree at every position before ``p``, with a
    block to start in, a position after ``p`` still to compute and no intervention in the
    site's block or later.
    """
    out = torch.zeros(start_pos.shape, dtype=torch.bool, device=start_pos.device)
    agree: dict[str, Tensor] = {}
    for i, site in enumerate(sites):
        start = source_prefix_block(site)
        if start is None or start >= n_layers:
            continue
        if any(_in_or_after(iv.hook, site.layer) for iv in interventions):
            continue
        h = site.hooks[0]
        if h not in agree:  # batch pos: both runs agree at every position before pos
            same = (src[h].to(device=base[h].device, dtype=base[h].dtype) == base[h]).flatten(2).all(-1)
            agree[h] = torch.cat([torch.ones_like(same[:, :1]), same.int().cumprod(-1).bool()], -1)
        out[i] = agree[h][:, site.pos] & (start_pos[i] == site.pos) & (answer_pos > site.pos)
    return out


@dataclass(frozen=True)
class Group:
    """Rows that run together: one start block and position, and where their keys and values come from."""

    layer: int
    pos: int
    from_source: bool
    sites: Int[Tensor, " row"]
    examples: Int[Tensor, " row"]


def groups(
    layer_of: Int[Tensor, "site batch"],
    changed: Bool[Tensor, "site batch"],
    start_pos: Int[Tensor, "site batch"],
    from_source: Bool[Tensor, "site batch"],
    max_rows: int,
) -> Iterator[Group]:
    """The changed rows, by (start block, start position, keys from the source), in chunks of ``max_rows``."""
    start = start_pos + from_source.long()
    for layer in sorted(set(layer_of[changed].tolist())):
        in_layer = changed & (layer_of == layer)
        keys = sorted(set(zip(start[in_layer].tolist(), from_source[in_layer].tolist())))
        for pos, flag in keys:
            site_of, example_of = (in_layer & (start == pos) & (from_source == flag)).nonzero(as_tuple=True)
            for lo in range(0, len(site_of), max_rows):
                yield Group(layer, pos, flag, site_of[lo : lo + max_rows], example_of[lo : lo + max_rows])


__all__ = [
    "Group",
    "block_of",
    "groups",
    "kv_hooks",
    "optional_lookup",
    "row_starts",
    "site_mask",
    "source_prefix_rows",
    "source_prefix_block",
]
