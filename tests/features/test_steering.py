"""Steering: no edit changes nothing, a feature set to its own value changes nothing, and edits act as designed."""

from __future__ import annotations

import pytest
import torch

from interp.features import DictionaryConfig, DictionaryMismatchError, FeatureError, SparseDictionary
from interp.features.das import DAS, das_pairs, interchange_accuracy, state_hook, train_das
from interp.features.steering import add_direction, set_features, set_subspace, steer, steer_variable
from interp.intervene import cache_activations, run_with_interventions

from .conftest import SITE, identity_dictionary


def _random_dictionary(d_in: int, hook: str = SITE) -> SparseDictionary:
    cfg = DictionaryConfig(hook, d_in=d_in, d_sae=4 * d_in, architecture="topk", k=5)
    return SparseDictionary(cfg).double().initialize(seed=2).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def tokens(graph):
    return das_pairs(graph, "bridge", "train", n=10).clean


def test_no_edit_changes_nothing(bridge64, tokens):
    plain = run_with_interventions(bridge64, tokens)[:, -1]
    assert torch.equal(steer(bridge64, tokens, SITE, 1, lambda x: x), plain)
    x = torch.randn(4, bridge64.cfg.d_model, dtype=torch.float64)
    assert torch.equal(add_direction(x, torch.randn(bridge64.cfg.d_model, dtype=torch.float64), 0.0), x)


def test_a_feature_clamped_to_its_own_value_changes_nothing_with_the_error_kept(bridge64, tokens):
    sae = _random_dictionary(bridge64.cfg.d_model)  # reconstructs badly: the error term must carry the rest
    _, store = cache_activations(bridge64, tokens, [SITE])
    x = store[SITE][:, 1]
    f = sae.encode(x)
    assert (sae.decode(f) - x).abs().max() > 0.1
    which = torch.zeros_like(f, dtype=torch.bool)
    which[:, f[0].argmax()] = True
    assert torch.equal(set_features(sae, x, f, which), x)
    edit = lambda a: set_features(sae, a, sae.encode(a), torch.ones_like(sae.encode(a), dtype=torch.bool))  # noqa: E731
    assert torch.equal(steer(bridge64, tokens, SITE, 1, edit), run_with_interventions(bridge64, tokens)[:, -1])


def test_setting_a_feature_moves_the_activation_along_its_decoder_row(bridge64):
    d = bridge64.cfg.d_model
    sae = identity_dictionary(d)  # feature i is +e_i, feature d + i is -e_i
    x = torch.randn(3, d, dtype=torch.float64).abs() + 0.1
    which = torch.zeros(3, 2 * d, dtype=torch.bool)
    which[:, 5] = True
    values = torch.full((3, 2 * d), 7.0, dtype=torch.float64)
    want = x.clone()
    want[:, 5] = 7.0
    torch.testing.assert_close(set_features(sae, x, values, which), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        add_direction(x, sae.W_dec[5], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))[:, 5],
        x[:, 5] + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
    )


def test_setting_subspace_coordinates_changes_only_the_subspace():
    das = DAS(16, 3, seed=4, dtype=torch.float64)
    basis = das.basis()
    x = torch.randn(5, 16, dtype=torch.float64)
    coords = torch.randn(5, 3, dtype=torch.float64)
    new = set_subspace(basis, x, coords)
    torch.testing.assert_close(new @ basis, coords)
    rest = torch.eye(16, dtype=torch.float64) - basis @ basis.T
    torch.testing.assert_close(new @ rest, x @ rest)
    torch.testing.assert_close(set_subspace(basis, x, x @ basis), x, rtol=0, atol=1e-12)


def test_steering_the_bridge_with_a_full_dimension_das_is_the_interchange(bridge, graph):
    d = bridge.cfg.d_model
    pairs = das_pairs(graph, "bridge", "train", n=20)
    fit = train_das(bridge, pairs, layer=1, position="r1", d=d, steps=0)
    hook = state_hook(bridge, 1)
    res = steer_variable(
        bridge,
        graph,
        "bridge",
        hook=hook,
        dictionary=identity_dictionary(d, dtype=torch.float32, hook_name=hook),
        das=fit,
        split="train",
        n=30,
    )
    assert set(res.success) == {"none", "interchange", "feature", "das_mean", "das_interchange"}
    assert res.success["das_interchange"] == res.success["interchange"]
    assert all(0.0 <= v <= 1.0 for v in res.success.values()) and res.n > 0 and res.position == 1
    assert interchange_accuracy(bridge, fit.das, pairs, layer=1, position=1) == interchange_accuracy(
        bridge, None, pairs, layer=1, position=1
    )


def test_bad_input_is_one_line(bridge, graph, one_line):
    d = bridge.cfg.d_model
    with pytest.raises(DictionaryMismatchError, match="trained at") as err:
        steer_variable(bridge, graph, "bridge", hook="blocks.0.hook_resid_pre", dictionary=identity_dictionary(d))
    one_line(err.value)
    fit = train_das(bridge, das_pairs(graph, "bridge", "train", n=5), layer=2, position=1, d=2, steps=0)
    with pytest.raises(FeatureError, match="DAS was trained at") as err:
        steer_variable(bridge, graph, "bridge", hook="blocks.0.hook_resid_pre", das=fit)
    one_line(err.value)
    with pytest.raises(FeatureError, match="unknown position") as err:
        steer_variable(bridge, graph, "bridge", hook=SITE, position="e2")
    one_line(err.value)
