"""Shared datasets for the data tests: generated once per session from small configs."""

from __future__ import annotations

import pytest

from interp.data import CompositionConfig, KGDataset, data_config, generate

KHOP = CompositionConfig(
    n_entities=100,
    n_relations=20,
    out_degree=6,
    n_hops=3,
    ood_fraction=0.2,
    phi=5.0,
    test_id_fraction=0.05,
    probe_size=500,
)
"""A 3-hop graph small enough to enumerate its 21,600 chains in a test."""


@pytest.fixture(scope="session")
def composition() -> KGDataset:
    return generate(data_config("composition-small"))


@pytest.fixture(scope="session")
def khop() -> KGDataset:
    return generate(KHOP)


@pytest.fixture(scope="session")
def comparison() -> KGDataset:
    return generate(data_config("comparison-small"))


@pytest.fixture(scope="session")
def complex_ds() -> KGDataset:
    return generate(data_config("complex-small"))


@pytest.fixture
def khop_config() -> CompositionConfig:
    return KHOP
