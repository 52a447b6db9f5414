"""Shared builders for the interpretability tests: the tiny graphs and models of ``tests/tiny.py``, clean/corrupt pairs."""

from __future__ import annotations

import pytest

from interp.counterfactuals import CounterfactualBatch, counterfactual_batch

from ..tiny import TINY_GRAPH, TINY_MODEL, bridge, bridge64, comparison_graph, graph, one_thread  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def tiny_n_ctx() -> int:
    return 5  # <h><r1><r2><t></a>


@pytest.fixture(scope="session")
def pairs(graph) -> dict[str, CounterfactualBatch]:
    """Clean/corrupt composition pairs per swapped token (12 each)."""
    return {swap: counterfactual_batch(graph, "train_inferred", swap, n=12, seed=0) for swap in ("h", "r1", "r2")}
