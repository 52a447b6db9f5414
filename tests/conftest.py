"""Shared fixtures: a composition model that really grokked, trained once per test session.

Training the ``composition-tiny`` preset to grokking takes a minute or two on a laptop
CPU; every test that needs a grokked model shares this one run.
"""

from __future__ import annotations

import pytest
import torch

from interp.train import load_checkpoint, load_run_config, train

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


@pytest.fixture(scope="session")
def grokked_run_dir(tmp_path_factory):
    """A run directory holding a composition run trained until test-ID accuracy >= 99%."""
    run_dir = tmp_path_factory.mktemp("grokked") / "composition-tiny"
    cfg = load_run_config("composition-tiny", ["train.progress=false", f"train.threads={DEFAULT_THREADS}"])
    result = train(cfg, run_dir)
    assert result.grokked, f"composition-tiny did not grok in {result.step} steps: {result.metrics}"
    return run_dir


@pytest.fixture(scope="session")
def grokked_composition(grokked_run_dir):
    """The grokked composition model (``LoadedRun``: config, model, dataset, step) on the CPU."""
    return load_checkpoint(grokked_run_dir, device="cpu")
