"""Pruning: from edge scores to a circuit, keeping only edges on a path from the input to the logits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuits.circuit import CircuitGraph
from circuits.space import CircuitError, ModelGraph


# ------------------------------------------------------------------------------- pruning
def _any_before(x: Bool[Tensor, "pos head_index"]) -> Bool[Tensor, "pos head_index"]:
    """True at ``p`` where ``x`` is true at some position ``<= p``."""
    return x.to(torch.int8).cummax(0).values.bool()


def connected(space: ModelGraph, keep: Bool[Tensor, "pos writer reader"]) -> Bool[Tensor, "pos writer reader"]:
    """The edges of ``keep`` that lie on a path from an embedding to the logits.

    A head's output at ``p`` depends on its query input at ``p`` and its key and value
    inputs at every ``p' <= p``; an MLP's output on its input at the same position.
    """
    keep = keep & space.allowed
    P, W, R = keep.shape
    H, L = space.n_heads, space.n_layers
    # forward: which writers carry something from an embedding
    alive = torch.zeros(P, W, dtype=torch.bool)
    alive[:, 0] = True
    for layer in range(L):
        base_r = layer * (3 * H + 1)
        fed = (keep & alive[:, :, None]).any(1)  # pos reader: has a live incoming edge
        q = fed[:, base_r : base_r + H]
        kv = _any_before(fed[:, base_r + H : base_r + 2 * H] | fed[:, base_r + 2 * H : base_r + 3 * H])
        heads_alive = q | kv
        alive[:, 1 + layer * (H + 1) : 1 + layer * (H + 1) + H] = heads_alive
        fed = (keep & alive[:, :, None]).any(1)
        alive[:, 1 + layer * (H + 1) + H] = fed[:, base_r + 3 * H]
    # backward: which readers lead to the logits
    useful_w = torch.zeros(P, W, dtype=torch.bool)
    useful_r = torch.zeros(P, R, dtype=torch.bool)
    useful_r[:, R - 1] = True
    for layer in reversed(range(L)):
        base_r = layer * (3 * H + 1)
        mlp_w = 1 + layer * (H + 1) + H
        useful_w[:, mlp_w] = (keep[:, mlp_w, :] & useful_r).any(-1)
        useful_r[:, base_r + 3 * H] = useful_w[:, mlp_w]
        head_w = slice(1 + layer * (H + 1), 1 + layer * (H + 1) + H)
        useful_w[:, head_w] = (keep[:, head_w, :] & useful_r[:, None, :]).any(-1)
        out_used = useful_w[:, head_w]  # pos head
        useful_r[:, base_r : base_r + H] = out_used
        later = _any_before(out_used.flip(0)).flip(0)  # used at some position >= p
        useful_r[:, base_r + H : base_r + 2 * H] = later
        useful_r[:, base_r + 2 * H : base_r + 3 * H] = later
    return keep & alive[:, :, None] & useful_r[:, None, :]


def prune(
    scores: Float[Tensor, "pos writer reader"],
    space: ModelGraph,
    *,
    top_n: int | None = None,
    threshold: float | None = None,
    positions: Sequence[str] | None = None,
    keep_connected: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> CircuitGraph:
    """The circuit of the ``top_n`` edges by ``|score|`` (or those with ``|score| >= threshold``).

    With ``keep_connected`` the edges that lie on no path from an embedding to the logits
    are dropped afterwards: they carry nothing of the input to the answer.
    """
    if (top_n is None) == (threshold is None):
        raise CircuitError("give exactly one of top_n or threshold")
    allowed = space.allowed
    mag = scores.abs().masked_fill(~allowed, -1.0)
    if top_n is not None:
        if top_n < 0:
            raise CircuitError(f"top_n {top_n} must be at least 0")
        keep = torch.zeros_like(allowed)
        if top_n > 0:
            flat = mag.flatten()
            idx = flat.topk(min(top_n, int(allowed.sum()))).indices
            keep.view(-1)[idx] = True
    else:
        keep = mag >= float(threshold)  # type: ignore[arg-type]
    keep &= allowed
    if keep_connected:
        keep = connected(space, keep)
    edges = {space.edge(*map(int, idx)): float(scores[tuple(idx)]) for idx in keep.nonzero()}
    labels = list(positions) if positions is not None else [str(p) for p in range(space.n_pos)]
    return CircuitGraph(
        space.n_layers, space.n_heads, labels, list(space.logit_positions), edges, meta=dict(meta or {})
    )
