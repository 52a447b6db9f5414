"""Shared builders for the circuits tests: tiny graphs and models, a tiny run.

Tiny untrained models (3 layers, 4 heads, wide ``init_range``) check the invariants;
``tiny_run_dir`` is a few seconds of training with several checkpoints, for the formation
code and the report (``views/conftest.py``); the grokked models of the scientific tests
(``grokked_composition``, ``grokked_comparison``) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest

from circuits.tasks import Task, comparison_task, composition_task
from interp.models import ModelConfig
from interp.train import RunConfig, TrainConfig, train

from ..tiny import (  # noqa: F401 (fixtures)
    TINY_GRAPH,
    bridge,
    bridge64,
    comparison_graph,
    graph,
    one_thread,
    single_thread,
    tiny_bridge,
)


@pytest.fixture(scope="session")
def tiny_n_ctx() -> int:
    return 7  # <attr><q><e1><mask><e2><label></a>, the longest prompt here


@pytest.fixture(scope="session")
def task(graph) -> Task:
    """Composition prompts against h/r1/r2 counterfactuals (a few of each)."""
    return composition_task(graph, n=6)


@pytest.fixture(scope="session")
def comparison_bridge(comparison_graph, tiny_n_ctx):
    return tiny_bridge(comparison_graph, tiny_n_ctx, seed=2)


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
            max_steps=40,
            batch_size=64,
            lr=3e-3,
            warmup_steps=5,
            eval_every=10,
            eval_size=100,
            checkpoint_every=10,
            checkpoint_dense_until=40,
            checkpoint_sparse_every=100,
            device="cpu",
            threads=1,
            tensorboard=False,
            progress=False,
            stop_after_grok=False,
        ),
    )
    with single_thread():
        train(cfg, run_dir)
    return run_dir
