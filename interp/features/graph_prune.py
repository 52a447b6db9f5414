"""Pruning an attribution graph by influence on the logits (circuit-tracer's rule), and its two scores.

Influence is computed on the *normalised* adjacency ``N`` (absolute direct effects, each
target's row divided by its sum): a node's influence is the probability-weighted sum over
logits of every path from it to the logit, ``w @ (N + N² + ...)`` with ``w`` the logit
probabilities. The series ends because the graph is acyclic (``N`` is nilpotent).

* nodes: keep the most influential nodes whose influence makes up ``node_threshold`` of the
  total (embeddings and logits always kept);
* edges: on the graph of the kept nodes, an edge's score is its normalised weight times its
  target's influence (plus the target's logit weight); keep the edges making up
  ``edge_threshold`` of the total; then drop, until nothing changes, feature and error nodes
  without an outgoing kept edge and feature nodes without an incoming one.

``cumulative_scores`` (circuit-tracer's ``influence`` in the JSON) is, per node, the share of
total influence of the nodes at least as influential as it: the node threshold keeps the
nodes whose cumulative score is below it.

Scores (:func:`graph_scores`): *replacement* is the share of the embeddings' and errors'
influence that is the embeddings'; *completeness* is the influence-weighted share of the
targets' inputs that do not come from error nodes. Both are 1 for a perfect replacement.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.features.attribution_graph import AttributionGraph, AttributionGraphError


class PruneResult(NamedTuple):
    """What ``prune_graph`` keeps: node and edge masks, and each node's cumulative influence score."""

    node_mask: Bool[Tensor, " node"]
    edge_mask: Bool[Tensor, "node node"]
    cumulative_scores: Float[Tensor, " node"]


def normalize_matrix(matrix: Float[Tensor, "node node"]) -> Float[Tensor, "node node"]:
    """``|matrix|`` with each row divided by its sum (rows of zeros stay zero)."""
    a = matrix.abs()
    return a / a.sum(dim=1, keepdim=True).clamp(min=1e-10)


def compute_influence(
    a: Float[Tensor, "node node"], weights: Float[Tensor, " node"], max_iter: int = 1000
) -> Float[Tensor, " node"]:
    """``weights @ (a + a² + a³ + ...)`` for a nilpotent ``a`` (an error if it does not end in ``max_iter`` steps)."""
    current = weights @ a
    influence = current.clone()
    for _ in range(max_iter):
        if not bool(current.any()):
            return influence
        current = current @ a
        influence += current
    raise AttributionGraphError(f"influence did not converge in {max_iter} steps; the adjacency matrix has a cycle")


def logit_weights(graph: AttributionGraph) -> Float[Tensor, " node"]:
    w = torch.zeros(graph.n_nodes, dtype=graph.adjacency.dtype)
    w[graph.n_nodes - graph.n_logits :] = graph.logit_probabilities.to(w.dtype)
    return w


def node_influence(graph: AttributionGraph) -> Float[Tensor, " node"]:
    """Every node's influence on the (probability-weighted) logits."""
    return compute_influence(normalize_matrix(graph.adjacency), logit_weights(graph))


def find_threshold(scores: Float[Tensor, " n"], threshold: float) -> Tensor:
    """The smallest score among the top scores that make up ``threshold`` of their total."""
    ordered = torch.sort(scores, descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    index = min(int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype))), len(ordered) - 1)
    return ordered[index]


def prune_graph(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    """Node and edge masks keeping ``node_threshold`` / ``edge_threshold`` of the influence (module docstring)."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise AttributionGraphError(f"{name} = {value} must lie in [0, 1]")
    n_kept = graph.n_pos + graph.n_logits  # embeddings and logits, always kept
    n_feat = graph.n_features
    weights = logit_weights(graph)
    influence = compute_influence(normalize_matrix(graph.adjacency), weights)
    node_mask = influence >= find_threshold(influence, node_threshold)
    node_mask[-n_kept:] = True
    pruned = graph.adjacency.clone()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    normalized = normalize_matrix(pruned)
    edge_scores = normalized * (compute_influence(normalized, weights) + weights)[:, None]
    edge_mask = edge_scores >= find_threshold(edge_scores.flatten(), edge_threshold)
    edge_mask &= pruned != 0
    while True:
        old = node_mask.clone()
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[:-n_kept] &= edge_mask[:, :-n_kept].any(0)  # features and errors need an outgoing edge
        node_mask[:n_feat] &= edge_mask[:n_feat].any(1)  # features need an incoming edge
        if bool((node_mask == old).all()):
            break
    order = torch.sort(influence, descending=True)
    cumulative = torch.zeros_like(influence)
    cumulative[order.indices] = order.values.cumsum(0) / order.values.sum().clamp(min=1e-30)
    return PruneResult(node_mask, edge_mask, cumulative)


def graph_scores(graph: AttributionGraph) -> tuple[float, float]:
    """``(replacement score, completeness score)`` of the unpruned graph (module docstring)."""
    weights = logit_weights(graph)
    normalized = normalize_matrix(graph.adjacency)
    influence = compute_influence(normalized, weights)
    err = slice(graph.n_features, graph.n_features + graph.n_layers * graph.n_pos)
    emb = slice(err.stop, err.stop + graph.n_pos)
    token_inf, error_inf = influence[emb].sum(), influence[err].sum()
    replacement = float(token_inf / (token_inf + error_inf).clamp(min=1e-30))
    non_error = 1 - normalized[:, err].sum(-1)
    output = influence + weights
    completeness = float((non_error * output).sum() / output.sum().clamp(min=1e-30))
    return replacement, completeness


__all__ = [
    "PruneResult",
    "compute_influence",
    "find_threshold",
    "graph_scores",
    "node_influence",
    "normalize_matrix",
    "prune_graph",
]
