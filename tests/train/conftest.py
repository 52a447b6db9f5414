"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from interp.train import train

from ..tiny import quick_config


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    train(quick_config("train.max_steps=20"), run_dir)
    return run_dir
