"""Activation patching: equal to TransformerLens 4, and the invariants any patching must keep."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.testing import assert_close
from transformer_lens import patching as tl

from interp.patching import (
    activation_patch,
    answer_prob,
    answer_rank,
    baseline_metric,
    logit_diff,
    named_metric,
    patch_sites,
    tl_metric,
    top1,
    top1_change,
)
from interp.sites import Site

TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32: batched vs one-by-one forwards round differently


def _tl_generic(name, setter, axes):
    return partial(tl.generic_activation_patch, patch_setter=setter, activation_name=name, index_axis_names=axes)


TL_SWEEPS = {
    "resid_pre": (tl.get_act_patch_resid_pre, {}),
    "resid_mid": (tl.get_act_patch_resid_mid, {}),
    "attn_out": (tl.get_act_patch_attn_out, {}),
    "mlp_out": (tl.get_act_patch_mlp_out, {}),
    "z": (tl.get_act_patch_attn_head_out_by_pos, {}),
    "z/all": (tl.get_act_patch_attn_head_out_all_pos, {"positions": "all"}),
    "resid_post": (_tl_generic("resid_post", tl.layer_pos_patch_setter, ["layer", "pos"]), {}),
    "result": (_tl_generic("result", tl.layer_pos_head_vector_patch_setter, ["layer", "pos", "head_index"]), {}),
}


CASES = [(name, "r1") for name in TL_SWEEPS] + [("resid_pre", "h"), ("mlp_out", "h"), ("z", "h")]
"""r1 pairs share position 0, so our sweep skips those patches; h pairs differ everywhere."""


@pytest.mark.parametrize(("name", "swap"), CASES)
def test_equals_transformer_lens(bridge, pairs, name, swap):
    p = pairs[swap]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    tl_sweep, kwargs = TL_SWEEPS[name]
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(p.clean)
        expected = tl_sweep(bridge, p.corrupt, clean_cache, tl_metric(metric, p.answer_pos), reduce="mean")
    got = activation_patch(bridge, p.corrupt, clean_cache, metric, name.split("/")[0], **kwargs)
    if kwargs.get("positions") == "all":
        got = got[:, 0]  # our pos axis has one entry: all positions at once
    assert got.shape == expected.shape
    assert_close(got, expected, **TOL)
    assert expected.abs().max() > 1e-2  # the comparison is not between zeros


@pytest.mark.parametrize("name", ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "result"])
def test_patching_clean_into_clean_reproduces_the_clean_metric(bridge, pairs, name):
    p = pairs["h"]
    metric = answer_prob(p.clean_answer)
    clean = baseline_metric(bridge, p.clean, metric).mean()
    got = activation_patch(bridge, p.clean, p.clean, metric, name, skip_noops=False)  # really run every patch
    assert_close(got, clean.expand_as(got), **TOL)


@pytest.mark.parametrize("name", ["resid", "resid_pre", "resid_mid", "resid_post"])
def test_patching_every_position_of_a_residual_gives_the_source_metric(bridge, pairs, name):
    """Corrupt residual at every position of one layer, pasted into the clean run: the corrupt run."""
    p = pairs["r1"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    corrupt = baseline_metric(bridge, p.corrupt, metric)
    clean = baseline_metric(bridge, p.clean, metric)
    got = activation_patch(bridge, p.clean, p.corrupt, metric, name, positions="all", per_example=True)
    assert got.shape[1] == 1
    assert_close(got, corrupt.expand_as(got), **TOL)
    assert (clean - corrupt).abs().max() > 1e-2


def test_batching_and_skipping_do_not_change_results(bridge, pairs):
    p = pairs["r2"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    default = activation_patch(bridge, p.corrupt, p.clean, metric, "z", per_example=True)
    # chunks of 7 rows straddle sites and examples
    chunked = activation_patch(bridge, p.corrupt, p.clean, metric, "z", per_example=True, max_rows=7, skip_noops=False)
    assert default.shape == (3, 3, 4, len(p))
    assert_close(default, chunked, **TOL)
    assert_close(default.mean(-1), activation_patch(bridge, p.corrupt, p.clean, metric, "z"), rtol=0, atol=0)


def test_positions_before_the_swap_cannot_matter(bridge, pairs):
    """By causality, patching positions before the first differing token changes nothing."""
    p = pairs["r2"]  # prompts differ at position 2 only
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    corrupt = baseline_metric(bridge, p.corrupt, metric).mean()
    got = activation_patch(bridge, p.corrupt, p.clean, metric, "resid_pre", skip_noops=False)
    assert_close(got[:, :2], corrupt.expand(3, 2), **TOL)
    assert (got[:, 2] - corrupt).abs().max() > 1e-2


def test_windowed_sites_patch_every_layer_of_the_window(bridge, pairs):
    p = pairs["h"]
    metric = answer_prob(p.clean_answer)
    windowed = activation_patch(bridge, p.corrupt, p.clean, metric, "mlp_out", window=3, layers=[1], positions=[0])
    hooks = tuple(f"blocks.{layer}.hook_mlp_out" for layer in range(3))
    explicit, _ = patch_sites(bridge, p.corrupt, p.clean, [Site(0, hooks, pos=0)], metric)
    assert_close(windowed[0, 0], explicit.mean(), **TOL)
    single = activation_patch(bridge, p.corrupt, p.clean, metric, "mlp_out", layers=[1], positions=[0])
    assert (windowed - single).abs().max() > 1e-4


def test_builtin_metrics(bridge, pairs):
    p = pairs["h"]
    with torch.no_grad():
        logits = bridge(p.clean)[:, -1]
    example = torch.arange(len(p))
    best = logits.argmax(-1)
    assert_close(answer_rank(best)(logits, example), torch.zeros(len(p)), rtol=0, atol=0)
    assert_close(answer_prob(best)(logits, example), logits.softmax(-1).amax(-1), **TOL)
    assert_close(top1_change(best)(logits, example), torch.zeros(len(p)), rtol=0, atol=0)
    assert torch.equal(top1(bridge, p.clean), best)
    diff = logits[example, p.clean_answer] - logits[example, p.corrupt_answer]
    named = named_metric("logit_diff", clean_answer=p.clean_answer, corrupt_answer=p.corrupt_answer)
    assert_close(named(logits, example), diff)
    # metrics index per-example data by the example each row belongs to
    rows = torch.tensor([2, 2, 0])
    assert_close(logit_diff(p.clean_answer, p.corrupt_answer)(logits[rows], rows), diff[rows])
