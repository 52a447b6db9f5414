"""Attribution patching: the gradient estimate is the derivative of exact patching at zero.

Pasting ``a + t (a_src - a)`` instead of ``a`` changes the metric by ``f(t)``; attribution
patching estimates ``f(1)`` by ``f'(0) = (a_src - a) . dm/da``. Whatever the model, that
derivative must equal the central difference ``(f(t) - f(-t)) / 2t`` of exact patching up to
O(t^2): in float64 with ``t = 1e-4`` the difference is below 1e-8 relative, far below the
tolerance used, while a wrong node, sign or scale would be off by O(1).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from interp.attribution import attribution_agreement, attribution_patch
from interp.intervene import cache_activations
from interp.patching import activation_patch, logit_diff
from interp.sites import family

FAMILIES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "result")


def _hooks(bridge, name):
    fam = family(name)
    return [fam.hook(bridge, layer)[1] for layer in range(fam.n_layers(bridge))]


@pytest.mark.parametrize("name", FAMILIES)
def test_attribution_is_the_derivative_of_exact_patching(bridge64, pairs, name):
    p = pairs["h"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    hooks = _hooks(bridge64, name)
    with torch.no_grad():
        _, run = cache_activations(bridge64, p.corrupt, hooks)
        _, src = cache_activations(bridge64, p.clean, hooks)
    t = 1e-4
    plus = {h: run[h] + t * (src[h] - run[h]) for h in hooks}
    minus = {h: run[h] - t * (src[h] - run[h]) for h in hooks}
    f_plus = activation_patch(bridge64, p.corrupt, plus, metric, name)
    f_minus = activation_patch(bridge64, p.corrupt, minus, metric, name)
    derivative = (f_plus - f_minus) / (2 * t)
    estimate = attribution_patch(bridge64, p.corrupt, p.clean, metric, [name])[name]
    assert estimate.shape == derivative.shape
    scale = float(derivative.abs().max())
    assert scale > 1e-3
    assert_close(estimate, derivative.to(estimate), rtol=1e-6, atol=1e-6 * scale)


def test_identical_runs_attribute_nothing(bridge, pairs):
    p = pairs["r2"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    estimates = attribution_patch(bridge, p.clean, p.clean, metric, FAMILIES)
    for est in estimates.values():
        assert_close(est, torch.zeros_like(est), rtol=0, atol=0)


def test_per_example_estimates_average_to_the_mean(bridge, pairs):
    p = pairs["r1"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    per = attribution_patch(bridge, p.corrupt, p.clean, metric, ["z"], per_example=True)["z"]
    mean = attribution_patch(bridge, p.corrupt, p.clean, metric, ["z"])["z"]
    assert per.shape == (len(bridge.blocks), 3, 4, len(p))
    assert_close(per.mean(-1), mean, rtol=1e-6, atol=1e-7)


def test_agreement_with_exact_patching_is_measured(bridge, pairs):
    p = pairs["h"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    table = attribution_agreement(bridge, p.corrupt, p.clean, metric, ("resid_pre", "mlp_out", "z"))
    assert list(table["family"]) == ["resid_pre", "mlp_out", "z"]
    assert list(table["nodes"]) == [3 * 3, 3 * 3, 3 * 3 * 4]
    for r in table["pearson"]:
        assert not math.isnan(r) and -1 <= r <= 1
    assert bool((table["max_abs_effect"] > 0).all())
