"""The three dictionaries: exact reconstruction by an identity-like dictionary, sparsity rules, scaling folds."""

from __future__ import annotations

import pytest
import torch

from interp.features import DictionaryConfig, SparseDictionary
from interp.features.dictionary import batch_topk_mask
from interp.features.train import training_forward

from .conftest import SITE, identity_dictionary

ARCHS = ("topk", "batchtopk", "jumprelu")


def _random(architecture: str, d_in: int = 6, d_sae: int = 24, k: int = 4, seed: int = 0) -> SparseDictionary:
    cfg = DictionaryConfig(SITE, d_in=d_in, d_sae=d_sae, architecture=architecture, k=k)
    sae = (
        SparseDictionary(cfg)
        .to(torch.float64)
        .initialize(b_dec=torch.linspace(-1, 1, d_in, dtype=torch.float64), seed=seed)
    )
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-0.3, 0.3, d_sae, dtype=torch.float64))
        sae.threshold.fill_(0.2)
    return sae


@pytest.mark.parametrize("architecture", ARCHS)
def test_identity_dictionary_reconstructs_exactly(architecture):
    x = torch.randn(50, 3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sae = identity_dictionary(8, architecture)
    assert torch.equal(sae(x), x)  # relu(x) - relu(-x) = x, no rounding
    shifted = identity_dictionary(8, architecture, b_dec=torch.linspace(-2, 2, 8, dtype=torch.float64))
    torch.testing.assert_close(shifted(x), x, rtol=0, atol=1e-12)
    assert int((sae.encode(x) > 0).sum(-1).max()) <= 8


def test_identity_dictionary_in_training_is_exact():
    """BatchTopK's training rule keeps k * batch entries: with k = d_in that is every active one."""
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = training_forward(identity_dictionary(8, "batchtopk"), x)
    assert torch.equal(out.recon, x)


def test_topk_l0_is_k_in_every_row():
    sae = _random("topk")
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    active = (sae.encode(x) > 0).sum(-1)
    assert torch.equal(active, torch.full_like(active, 4))
    assert torch.equal(training_forward(sae, x).feature_acts, sae.encode(x))


def test_batchtopk_keeps_k_per_row_on_average_in_training():
    sae = _random("batchtopk")
    x = torch.randn(128, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    active = (training_forward(sae, x).feature_acts > 0).sum(-1)
    assert int(active.sum()) == 4 * 128  # mean L0 = k exactly
    assert int(active.min()) != int(active.max())  # rows differ: the budget is the batch's, not each row's


@pytest.mark.parametrize("spike", (False, True))
def test_two_stage_batch_topk_is_exact(spike):
    """The candidate search gives the plain top k * batch of the flattened batch, also when one row
    holds more than its candidates (then it falls back to the full search)."""
    acts = torch.randn(64, 256, generator=torch.Generator().manual_seed(6), dtype=torch.float64).relu()
    if spike:
        acts[3] += 100.0  # row 3 alone holds the batch's top 256 > 4k entries
    flat = acts.flatten()
    values, indices = flat.topk(4 * 64)
    expected = torch.zeros_like(flat).scatter(0, indices, values).view_as(acts)
    assert torch.equal(batch_topk_mask(acts, 4), expected)


@pytest.mark.parametrize("architecture", ("batchtopk", "jumprelu"))
def test_inference_is_a_threshold(architecture):
    sae = _random(architecture)
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pre = sae.pre_acts(x)
    assert torch.equal(sae.encode(x), torch.where(pre > 0.2, pre, torch.zeros_like(pre)))


@pytest.mark.parametrize("architecture", ARCHS)
def test_folding_a_scale_reads_raw_activations(architecture):
    """A dictionary trained on s * x, folded, gives on x its reconstruction of s * x divided by s."""
    sae = _random(architecture)
    folded = _random(architecture)
    folded.fold_scaling_factor(2.5)
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(folded.encode(x), sae.encode(2.5 * x) / 2.5, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(folded(x), sae(2.5 * x) / 2.5, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(folded.W_dec.norm(dim=-1), torch.ones(24, dtype=torch.float64), rtol=0, atol=1e-12)


def test_jumprelu_threshold_gradient_comes_only_from_its_window():
    """The straight-through estimator: the L0 penalty moves a feature's threshold only through
    pre-activations within half a bandwidth of it, and gives the encoder no gradient."""
    cfg = DictionaryConfig(SITE, d_in=2, d_sae=2, architecture="jumprelu", jumprelu_bandwidth=0.1, l0_coefficient=1.0)
    sae = SparseDictionary(cfg).to(torch.float64)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(2, dtype=torch.float64))
        sae.W_dec.copy_(torch.eye(2, dtype=torch.float64))
        sae.threshold.copy_(torch.tensor([0.5, 0.5], dtype=torch.float64))
    x = torch.tensor([[0.52, 2.0]], dtype=torch.float64)  # feature 0 near its threshold, feature 1 far above
    training_forward(sae, x).loss.backward()
    g = sae.threshold.grad
    assert float(g[0]) == pytest.approx(-1 / 0.1) and g[1] == 0  # d L0 / d threshold = -K(u) / bandwidth
    assert sae.W_enc.grad.abs().sum() == 0  # the reconstruction is perfect and L0 passes no gradient to pre
