"""Shared builders for the dictionary tests: the tiny graph and untrained models of ``tests/tiny.py``, identity dictionaries."""

from __future__ import annotations

import pytest
import torch

from interp.features import DictionaryConfig, SparseDictionary, collect_activations

from ..tiny import TINY_GRAPH, TINY_MODEL, bridge, bridge64, comparison_graph, graph, one_thread  # noqa: F401 (fixtures)

SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="session")
def tiny_n_ctx() -> int:
    return 5  # <h><r1><r2><t></a>


@pytest.fixture(scope="session")
def resid_acts(bridge, graph):
    """Activations of the tiny float32 model at ``blocks.1.hook_resid_post``, every split and prompt position."""
    return collect_activations(bridge, graph, SITE)


def identity_dictionary(
    d_in: int,
    architecture: str = "topk",
    *,
    b_dec: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    hook_name: str = SITE,
) -> SparseDictionary:
    """A dictionary that reconstructs every input exactly: features ``+e_i`` and ``-e_i``, threshold 0.

    ``relu(x) - relu(-x) = x``; at most ``d_in`` of the ``2 d_in`` features are active, so TopK
    with ``k = d_in`` keeps all of them.
    """
    cfg = DictionaryConfig(
        hook_name, d_in=d_in, d_sae=2 * d_in, architecture=architecture, k=d_in, jumprelu_init_threshold=0.0
    )
    sae = SparseDictionary(cfg).to(dtype)
    eye = torch.eye(d_in, dtype=dtype)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.copy_(torch.zeros(d_in, dtype=dtype) if b_dec is None else b_dec)
        sae.threshold.zero_()
    return sae.eval().requires_grad_(False)
