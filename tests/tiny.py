"""Tiny graphs, untrained models and a quick run config shared by the tests.

Models are untrained but initialised with a wide ``init_range``, so that logits differ
clearly between prompts and patching effects are far above float32 rounding. A test
package's conftest imports the fixtures it wants from here and sets ``tiny_n_ctx``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from interp.data import ComparisonConfig, CompositionConfig, KGDataset, generate
from interp.models import ModelConfig, build_model, to_bridge
from interp.train import RunConfig, load_run_config

TINY_GRAPH = CompositionConfig(
    n_entities=40,
    n_relations=10,
    out_degree=4,
    ood_fraction=0.1,
    phi=3.0,
    test_id_fraction=0.05,
    probe_size=60,
    seed=0,
)
TINY_COMPARISON = ComparisonConfig(n_entities=30, n_attributes=3, n_values=10, phi=2.0, probe_size=60, seed=0)
TINY_MODEL = ModelConfig(n_layers=3, d_model=32, n_heads=4, init_range=0.15)

# A run small enough to train many times: a tiny graph and model, a checkpoint every 10 steps.
QUICK = [
    "data.n_entities=40",
    "data.n_relations=8",
    "data.out_degree=4",
    "data.phi=2",
    "data.test_id_fraction=0.1",
    "model.n_layers=2",
    "model.d_model=32",
    "model.n_heads=2",
    "train.batch_size=32",
    "train.eval_every=10",
    "train.checkpoint_every=10",
    "train.checkpoint_dense_until=30",
    "train.checkpoint_sparse_every=20",
    "train.max_steps=50",
    "train.stop_after_grok=false",
    "train.progress=false",
    "train.threads=1",
]


def quick_config(*extra: str) -> RunConfig:
    """``composition-tiny`` with the :data:`QUICK` overrides, then ``extra`` ones."""
    return load_run_config("composition-tiny", QUICK + list(extra))


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (module and session fixtures run before ``one_thread``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tiny_bridge(dataset: KGDataset, n_ctx: int, *, dtype: torch.dtype = torch.float32, seed: int = 0):
    model = build_model(TINY_MODEL, len(dataset.vocab), n_ctx, seed=seed, device="cpu").to(dtype).eval()
    return to_bridge(model)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine extra threads only contend.

    Per test (not per package), so that session fixtures defined elsewhere keep torch's default.
    """
    with single_thread():
        yield


@pytest.fixture(scope="session")
def graph() -> KGDataset:
    return generate(TINY_GRAPH)


@pytest.fixture(scope="session")
def comparison_graph() -> KGDataset:
    return generate(TINY_COMPARISON)


@pytest.fixture(scope="session")
def bridge(graph, tiny_n_ctx):
    """A 3-layer, 4-head float32 bridge over the tiny composition graph's vocabulary."""
    return tiny_bridge(graph, tiny_n_ctx)


@pytest.fixture(scope="session")
def bridge64(graph, tiny_n_ctx):
    """The same architecture in float64, for tolerances far below float32 rounding."""
    return tiny_bridge(graph, tiny_n_ctx, dtype=torch.float64, seed=1)
