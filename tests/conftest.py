"""Shared fixtures: composition, comparison and modular-addition models that really grokked, trained once.

``composition-tiny``, ``comparison-tiny-adamw`` (the comparison fixture: grokked
in-distribution) and ``modular-addition-tiny`` train in minutes on one CPU thread. Their runs live in an on-disk
cache (``interp.train.cache``: ``.pytest_cache/d/grokscope-runs`` at the repository root, or
``$GROKSCOPE_TEST_CACHE``) keyed by the run config and a hash of the training code: a cold run
trains each once, a warm run trains nothing, and a change to the trainer trains them again.
Parallel workers (pytest-xdist) share the cache: while one worker trains a run, another that
needs it trains the other run the session needs, if any, then waits.

Every worker runs torch on its share of the cores (``pytest_configure``), so two
workers never oversubscribe the machine; the fixture runs always train on one thread, so their
float trajectory, and with it the cache entry, is the same however the suite is run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from interp.runs import load_checkpoint
from interp.train import load_run_config
from interp.train.cache import cached_train


def pytest_configure(config):
    """Give each test process (an xdist worker, or the one process) its share of the cores:
    torch's threads, and through the environment those of the processes tests start."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


FIXTURE_RUNS = {
    "grokked_comparison_run_dir": "comparison-tiny-adamw",
    "grokked_run_dir": "composition-tiny",
    "grokked_modular_run_dir": "modular-addition-tiny",
}
"""The grokked runs the tests share: fixture name -> preset, the longest training first."""


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg, msg
    return msg


@pytest.fixture
def one_line():
    """``one_line(err)``: the error's message, checked to be a single non-empty line."""
    return _one_line


def fixture_config(preset: str):
    """The run config a grokked fixture trains: the preset on one thread, without a progress bar."""
    return load_run_config(preset, ["train.progress=false", "train.threads=1"])


def _cache_dir(config: pytest.Config, tmp_path_factory) -> Path:
    if os.environ.get("GROKSCOPE_TEST_CACHE"):
        return Path(os.environ["GROKSCOPE_TEST_CACHE"])
    if getattr(config, "cache", None) is not None:
        return config.cache.mkdir("grokscope-runs")
    return tmp_path_factory.getbasetemp() / "grokscope-runs"  # -p no:cacheprovider: this session only


def _grokked_run(fixture: str, request, tmp_path_factory) -> Path:
    """The cached run of ``FIXTURE_RUNS[fixture]``. While another worker trains it, this one
    trains the other runs the session needs (``needed_runs``), then waits for it."""
    cache = _cache_dir(request.config, tmp_path_factory)
    config = fixture_config(FIXTURE_RUNS[fixture])
    others = [fixture_config(FIXTURE_RUNS[f]) for f in getattr(request.config, "needed_runs", ()) if f != fixture]
    run_dir = cached_train(config, cache, wait=False)
    while run_dir is None and others:
        cached_train(others.pop(0), cache, wait=False)  # trains it, or finds it done or in training
        run_dir = cached_train(config, cache, wait=False)
    if run_dir is None:
        run_dir = cached_train(config, cache)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["grokked_step"] is not None, f"{config.name} did not grok in {summary['step']} steps: {summary}"
    return run_dir


@pytest.fixture(scope="session")
def grokked_run_dir(request, tmp_path_factory):
    """A run directory holding a composition run trained until test-ID accuracy >= 99% (read only: it is cached)."""
    return _grokked_run("grokked_run_dir", request, tmp_path_factory)


@pytest.fixture(scope="session")
def grokked_composition(grokked_run_dir):
    """The grokked composition model (``LoadedRun``: config, model, dataset, step) on the CPU."""
    return load_checkpoint(grokked_run_dir, device="cpu")


@pytest.fixture(scope="session")
def grokked_comparison_run_dir(request, tmp_path_factory):
    """A comparison run trained until test-ID accuracy >= 99% (``comparison-tiny-adamw``; OOD stays lower; read only)."""
    return _grokked_run("grokked_comparison_run_dir", request, tmp_path_factory)


@pytest.fixture(scope="session")
def grokked_comparison(grokked_comparison_run_dir):
    """The grokked comparison model (``LoadedRun``) on the CPU."""
    return load_checkpoint(grokked_comparison_run_dir, device="cpu")


@pytest.fixture(scope="session")
def grokked_modular_run_dir(request, tmp_path_factory):
    """A + b mod 53 trained until test accuracy >= 99% (``modular-addition-tiny``, Nanda's model; read only)."""
    return _grokked_run("grokked_modular_run_dir", request, tmp_path_factory)


@pytest.fixture(scope="session")
def grokked_modular(grokked_modular_run_dir):
    """The grokked modular-addition model (``LoadedRun``) on the CPU."""
    return load_checkpoint(grokked_modular_run_dir, device="cpu")


# ------------------------------------------------------------------------------ markers
SLOW_FIXTURES = frozenset(
    {
        "grokked_run_dir",
        "grokked_composition",
        "grokked_comparison_run_dir",
        "grokked_comparison",
        "grokked_modular_run_dir",
        "grokked_modular",
    }
)
"""Fixtures that train a model until it groks: a test that uses one (directly or through
another fixture) is ``slow``."""

SLOW_FOLDERS = ("notebooks", "browser")
"""Test files whose path contains one of these run notebooks or a browser: ``slow`` too."""


def runs_used(item: pytest.Item) -> set[str]:
    """The grokked-run fixtures a test uses: requested, or named by ``@pytest.mark.grokked_run(FIXTURE)``
    (a test that gets the run through ``request.getfixturevalue``, as the notebook tests do)."""
    marked = {mark.args[0] for mark in item.iter_markers("grokked_run")}
    return (set(item.fixturenames) | marked) & SLOW_FIXTURES


def pytest_collection_finish(session):
    """Note which grokked runs the selected tests need (a worker waiting for one trains another)."""
    needed = set().union(*(runs_used(item) for item in session.items))
    session.config.needed_runs = [f for f in FIXTURE_RUNS if f in needed]  # fixturenames hold the closure


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests, so that ``pytest -m "not slow"`` is the fast loop (tests that start
    Ray workers or kill a training process carry ``@pytest.mark.slow`` themselves)."""
    for item in items:
        path = str(item.path)
        if runs_used(item) or any(f in path for f in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)
    _order_for_the_runs(items)


def _order_for_the_runs(items: list[pytest.Item]) -> None:
    """Order the tests so that no worker waits idle for a grokked run: first one test of each run
    (the longest training first), so that every run starts training at once on its own worker;
    then the tests that need no run; then those that need one, the longest-training run's last.
    (xdist hands out tests, and ``xdist_group`` groups, in this order.)"""
    rank = {fixture: i for i, fixture in enumerate(FIXTURE_RUNS)}
    started: set[str] = set()

    def key(item: pytest.Item) -> tuple[int, int]:
        runs = [rank[f] for f in runs_used(item) if f in rank]
        if not runs:
            return (1, 0)
        first = min(runs)
        if first not in started:
            started.add(first)
            return (0, first)
        return (2, -first)

    keys = [key(item) for item in items]  # in collection order: the first test of each run starts it
    items[:] = [item for _, item in sorted(zip(keys, items, strict=True), key=lambda pair: pair[0])]
