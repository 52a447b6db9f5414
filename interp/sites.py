"""Patch sites and hook families: *where* a patching sweep pastes the source run's activations.

A :class:`Site` is one place to patch: one or more hooks (a window of consecutive layers, as
in ROME's windowed restoration), a position or all of them, a head or all of them. A hook
:class:`Family` names the same hook in every layer (``resid_pre``, ``resid_mid``,
``resid_post``, ``attn_out``, ``mlp_out``, the per-head ``z`` and ``result``; ``resid`` is
the ``n_layers + 1`` residual states of the logit lens). :func:`family_sites` lays a family
out as the layer x position (x head) grid of sites that :func:`interp.patching.patch_sites`
sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from interp.intervene import InterventionError, check_layer, check_position, n_layers
from interp.models.protocol import Bridge


@dataclass(frozen=True)
class Site:
    """One place to patch: one or more hooks (a window of layers), a position and a head.

    ``layer`` is the first block whose hooks are patched: the patched forward starts there.
    ``pos`` / ``head`` ``None`` patch every position / head.
    """

    layer: int
    hooks: tuple[str, ...]
    pos: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class Family:
    """A hook family: the hook name of each of its layers, and whether it is per head."""

    name: str
    template: str
    heads: bool = False

    def n_layers(self, bridge: Bridge) -> int:
        """How many layers the family has on ``bridge``: ``n_layers``, plus one for ``resid``."""
        return n_layers(bridge) + (1 if self.name == "resid" else 0)

    def hook(self, bridge: Bridge, layer: int) -> tuple[int, str]:
        """(block the hook belongs to, hook name) of ``layer``."""
        n = n_layers(bridge)
        if self.name == "resid":  # state l = residual after l blocks
            if layer < n:
                return layer, f"blocks.{layer}.hook_resid_pre"
            return n - 1, f"blocks.{n - 1}.hook_resid_post"
        return layer, self.template.format(layer=layer)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("resid", "blocks.{layer}.hook_resid_pre"),
        Family("resid_pre", "blocks.{layer}.hook_resid_pre"),
        Family("resid_mid", "blocks.{layer}.hook_resid_mid"),
        Family("resid_post", "blocks.{layer}.hook_resid_post"),
        Family("attn_out", "blocks.{layer}.hook_attn_out"),
        Family("mlp_out", "blocks.{layer}.hook_mlp_out"),
        Family("z", "blocks.{layer}.attn.hook_z", heads=True),
        Family("result", "blocks.{layer}.attn.hook_result", heads=True),
    )
}
"""Hook families by name. ``resid`` has n_layers + 1 layers: state l is the residual after l blocks."""


def family(name: str) -> Family:
    """The hook family called ``name`` (a key of ``FAMILIES``); unknown names are a one-line error."""
    if name not in FAMILIES:
        raise InterventionError(f"unknown hook family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def window_layers(layer: int, window: int, n: int) -> range:
    """ROME's window of ``window`` layers around ``layer``, clipped to 0..n-1."""
    return range(max(0, layer - window // 2), min(n, layer - (-window // 2)))


def family_sites(
    bridge: Bridge,
    family_name: str,
    n_pos: int,
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | Literal["all"] | None = None,
    window: int = 1,
) -> tuple[list[Site], list[int], list[int | None], int]:
    """The sites of a sweep over a hook family: (sites, layers, positions, n_heads)."""
    fam = family(family_name)
    n_fam = fam.n_layers(bridge)
    layer_list = list(range(n_fam)) if layers is None else [check_layer(int(L), n_fam) for L in layers]
    if not layer_list:
        raise InterventionError("no layers to patch; give at least one layer")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InterventionError(f"window {window!r} must be a positive number of layers")
    if positions == "all":
        pos_list: list[int | None] = [None]
    elif positions is None:
        pos_list = list(range(n_pos))
    else:
        pos_list = [check_position(int(p), n_pos) for p in positions]
    n_heads = int(bridge.cfg.n_heads) if fam.heads else 0
    sites = []
    for L in layer_list:
        hooks = [fam.hook(bridge, j) for j in window_layers(L, window, n_fam)]
        start = min(block for block, _ in hooks)
        names = tuple(name for _, name in hooks)
        for p in pos_list:
            for h in range(n_heads) if fam.heads else [None]:
                sites.append(Site(start, names, p, h))
    return sites, layer_list, pos_list, n_heads


__all__ = ["FAMILIES", "Family", "Site", "family", "family_sites", "window_layers"]
