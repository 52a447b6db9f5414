"""Shared fixtures: a composition and a comparison model that really grokked, trained once per session.

Training the ``composition-tiny`` preset to grokking takes a few minutes on a laptop CPU,
``comparison-tiny-adamw`` (the comparison fixture: grokked in-distribution, the previous
``comparison-tiny`` recipe) a few more; every test that needs a grokked model shares these runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interp.runs import load_checkpoint
from interp.train import load_run_config, train

# torch's own thread count, read before any test changes it: the shared grokked run uses it
DEFAULT_THREADS = torch.get_num_threads()


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg, msg
    return msg


@pytest.fixture
def one_line():
    """``one_line(err)``: the error's message, checked to be a single non-empty line."""
    return _one_line


def _train_until_grokked(preset: str, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("grokked") / preset
    cfg = load_run_config(preset, ["train.progress=false", f"train.threads={DEFAULT_THREADS}"])
    result = train(cfg, run_dir)
    assert result.grokked, f"{preset} did not grok in {result.step} steps: {result.metrics}"
    return run_dir


@pytest.fixture(scope="session")
def grokked_run_dir(tmp_path_factory):
    """A run directory holding a composition run trained until test-ID accuracy >= 99%."""
    return _train_until_grokked("composition-tiny", tmp_path_factory)


@pytest.fixture(scope="session")
def grokked_composition(grokked_run_dir):
    """The grokked composition model (``LoadedRun``: config, model, dataset, step) on the CPU."""
    return load_checkpoint(grokked_run_dir, device="cpu")


@pytest.fixture(scope="session")
def grokked_comparison_run_dir(tmp_path_factory):
    """A comparison run trained until test-ID accuracy >= 99% (``comparison-tiny-adamw``; OOD stays lower)."""
    return _train_until_grokked("comparison-tiny-adamw", tmp_path_factory)


@pytest.fixture(scope="session")
def grokked_comparison(grokked_comparison_run_dir):
    """The grokked comparison model (``LoadedRun``) on the CPU."""
    return load_checkpoint(grokked_comparison_run_dir, device="cpu")


# ------------------------------------------------------------------------------ markers
SLOW_FIXTURES = frozenset(
    {"grokked_run_dir", "grokked_composition", "grokked_comparison_run_dir", "grokked_comparison"}
)
"""Fixtures that train a model until it groks: a test that uses one (directly or through
another fixture) is ``slow``."""

SLOW_FOLDERS = ("notebooks", "browser")
"""Test files whose path contains one of these run notebooks or a browser: ``slow`` too."""


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests, so that ``pytest -m "not slow"`` is the fast loop (tests that start
    Ray workers or kill a training process carry ``@pytest.mark.slow`` themselves)."""
    for item in items:
        path = str(item.path)
        if SLOW_FIXTURES.intersection(item.fixturenames) or any(f in path for f in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)
