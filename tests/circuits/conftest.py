"""Shared builders for the circuits tests: tiny graphs and models, a tiny run, Chromium.

Tiny untrained models (3 layers, 4 heads, wide ``init_range``) check the invariants;
``tiny_run_dir`` is a few seconds of training with several checkpoints, for the report
and formation code; the grokked composition model of the scientific tests,
``grokked_composition``, is in ``tests/conftest.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# This test package is itself named ``circuits`` (tests mirror the package layout), so under
# pytest ``import circuits`` finds it, not the package under test. Its submodules are found
# in the package under test: tests import ``circuits.graph`` etc., never ``from circuits import``.
sys.modules[__package__].__path__.append(str(Path(__file__).resolve().parents[2] / "circuits"))

from interp.data import ComparisonConfig, CompositionConfig, KGDataset, generate
from interp.models import ModelConfig, build_model, to_bridge
from interp.train import RunConfig, TrainConfig, train

from circuits.tasks import Task, comparison_task, composition_task

from .browser import find_chromium, install_chromium
from .helpers import single_thread

TINY_GRAPH = CompositionConfig(
    n_entities=40, n_relations=10, out_degree=4, ood_fraction=0.1, phi=3.0,
    test_id_fraction=0.05, probe_size=60, seed=0,
)
TINY_COMPARISON = ComparisonConfig(n_entities=30, n_attributes=3, n_values=10, phi=2.0, probe_size=60, seed=0)
TINY_MODEL = ModelConfig(n_layers=3, d_model=32, n_heads=4, init_range=0.15)



@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine extra threads only contend."""
    with single_thread():
        yield


def tiny_bridge(dataset: KGDataset, *, dtype: torch.dtype = torch.float32, seed: int = 0, n_ctx: int = 7):
    model = build_model(TINY_MODEL, len(dataset.vocab), n_ctx, seed=seed, device="cpu").to(dtype).eval()
    return to_bridge(model)


@pytest.fixture(scope="session")
def graph() -> KGDataset:
    return generate(TINY_GRAPH)


@pytest.fixture(scope="session")
def comparison_graph() -> KGDataset:
    return generate(TINY_COMPARISON)


@pytest.fixture(scope="session")
def bridge(graph):
    """A 3-layer, 4-head float32 bridge over the tiny composition graph."""
    return tiny_bridge(graph)


@pytest.fixture(scope="session")
def bridge64(graph):
    """The same architecture in float64, for tolerances far below float32 rounding."""
    return tiny_bridge(graph, dtype=torch.float64, seed=1)


@pytest.fixture(scope="session")
def task(graph) -> Task:
    """Composition prompts against h/r1/r2 counterfactuals (a few of each)."""
    return composition_task(graph, n=6)


@pytest.fixture(scope="session")
def comparison_bridge(comparison_graph):
    return tiny_bridge(comparison_graph, seed=2)


@pytest.fixture(scope="session")
def comparison_small_task(comparison_graph) -> Task:
    return comparison_task(comparison_graph, n=6)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A few seconds of training on the tiny graph, with four checkpoints."""
    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    cfg = RunConfig(
        name="tiny",
        data=TINY_GRAPH,
        model=ModelConfig(n_layers=2, d_model=32, n_heads=2),
        train=TrainConfig(
            max_steps=40, batch_size=64, lr=3e-3, warmup_steps=5, eval_every=10, eval_size=100,
            checkpoint_every=10, checkpoint_dense_until=40, checkpoint_sparse_every=100, device="cpu",
            threads=1, tensorboard=False, progress=False, stop_after_grok=False,
        ),
    )
    with single_thread():
        train(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_report(tiny_run_dir, tmp_path_factory):
    """The HTML report of the tiny run (its path; the circuit JSON sits next to it)."""
    from circuits.report import write_report

    with single_thread():
        return write_report(tiny_run_dir, tmp_path_factory.mktemp("report") / "report.html", n=30)




@pytest.fixture(scope="session")
def chromium() -> str:
    """A Chromium binary; installed with apt-get (Debian's ``chromium``) when missing. Never skipped."""
    path = find_chromium() or install_chromium()
    if path is None:
        pytest.fail("no Chromium found and `apt-get install -y chromium` failed; install Debian's chromium package")
    return path
