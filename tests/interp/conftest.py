"""Shared builders for the interpretability tests: tiny graphs, tiny models, clean/corrupt pairs.

Models are untrained but initialised with a wide ``init_range``, so that logits differ
clearly between prompts and patching effects are far above float32 rounding.
"""

from __future__ import annotations

import pytest
import torch

from interp.counterfactuals import CounterfactualBatch, counterfactual_batch
from interp.data import ComparisonConfig, CompositionConfig, KGDataset, generate
from interp.models import ModelConfig, build_model, to_bridge

TINY_GRAPH = CompositionConfig(
    n_entities=40, n_relations=10, out_degree=4, ood_fraction=0.1, phi=3.0,
    test_id_fraction=0.05, probe_size=60, seed=0,
)
TINY_MODEL = ModelConfig(n_layers=3, d_model=32, n_heads=4, init_range=0.15)
N_CTX = 5  # <h><r1><r2><t></a>


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine extra threads only contend.

    Per test (not per package), so that session fixtures defined elsewhere keep torch's default.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_bridge(dataset: KGDataset, *, dtype: torch.dtype = torch.float32, seed: int = 0):
    model = build_model(TINY_MODEL, len(dataset.vocab), N_CTX, seed=seed, device="cpu").to(dtype).eval()
    return to_bridge(model)


@pytest.fixture(scope="session")
def graph() -> KGDataset:
    return generate(TINY_GRAPH)


@pytest.fixture(scope="session")
def comparison_graph() -> KGDataset:
    return generate(ComparisonConfig(n_entities=30, n_attributes=3, n_values=10, phi=2.0, probe_size=60, seed=0))


@pytest.fixture(scope="session")
def bridge(graph):
    """A 3-layer, 4-head float32 bridge over the tiny graph's vocabulary."""
    return tiny_bridge(graph)


@pytest.fixture(scope="session")
def bridge64(graph):
    """The same architecture in float64, for tests that need tolerances below float32 rounding."""
    return tiny_bridge(graph, dtype=torch.float64, seed=1)


@pytest.fixture(scope="session")
def pairs(graph) -> dict[str, CounterfactualBatch]:
    """Clean/corrupt composition pairs per swapped token (12 each)."""
    return {swap: counterfactual_batch(graph, "train_inferred", swap, n=12, seed=0) for swap in ("h", "r1", "r2")}


