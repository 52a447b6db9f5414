"""The KV-reuse suffix forward of patching sweeps: equal to the full forward and to TransformerLens 4."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import interp.patching as patching
from interp.intervene import AddNoise, Patch, Read, gaussian_noise
from interp.intervene.suffix import suffix_supported
from interp.patching import activation_patch, baseline_metric, logit_diff, patch_sites, tl_metric
from interp.sites import Site

from .test_patching import TL_SWEEPS

FAMILIES = ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "result", "resid"]
EXACT = {"rtol": 0, "atol": 1e-10}  # float64: the two forwards differ only by rounding
TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32 against TransformerLens's one-forward-per-place sweep


@pytest.fixture
def suffix_runs(monkeypatch):
    """The keyword arguments of every group of rows that ran through the suffix forward (not the full one)."""
    calls = []
    run = patching.run_suffix

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return run(*args, **kwargs)

    monkeypatch.setattr(patching, "run_suffix", counted)
    return calls


def _both(bridge, *args, **kwargs):
    reused = activation_patch(bridge, *args, per_example=True, **kwargs)
    full = activation_patch(bridge, *args, per_example=True, reuse_kv=False, **kwargs)
    return reused, full


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("swap", ["h", "r1"])
def test_kv_reuse_equals_the_full_forward(bridge64, pairs, suffix_runs, name, swap):
    p = pairs[swap]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    reused, full = _both(bridge64, p.corrupt, p.clean, metric, name, skip_noops=False)  # every row really runs
    assert {kw["start_pos"] for kw in suffix_runs} >= {1, 2}  # rows started after position 0, from both caches
    assert_close(reused, full, **EXACT)
    assert (full - full[:1, :1]).abs().max() > 1e-2  # the sweep is not constant


@pytest.mark.parametrize("name", [n for n in TL_SWEEPS if n != "z/all"])
def test_kv_reuse_at_first_and_last_position_equals_transformer_lens(bridge, pairs, suffix_runs, name):
    p = pairs["h"]  # prompts differ at every position: no row is skipped
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    tl_sweep, _ = TL_SWEEPS[name]
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(p.clean)
        expected = tl_sweep(bridge, p.corrupt, clean_cache, tl_metric(metric, p.answer_pos), reduce="mean")
    last = p.clean.shape[1] - 1
    got = activation_patch(bridge, p.corrupt, clean_cache, metric, name, positions=[0, last])
    assert suffix_runs
    assert_close(got, expected[:, [0, last]], **TOL)
    assert expected[:, [0, last]].abs().max() > 1e-2
    # a source cache without keys and values: the rows start at their own position
    only = {h: clean_cache[h] for h in clean_cache.keys() if ".hook_k" not in h and ".hook_v" not in h}
    assert_close(activation_patch(bridge, p.corrupt, only, metric, name, positions=[0, last]), got, **TOL)


def test_interventions_in_the_patched_blocks_are_applied(bridge64, pairs, suffix_runs):
    """ROME-style noise on the embeddings plus an edit inside a later block, patched per position."""
    p = pairs["h"]
    batch, n_pos = p.clean.shape
    d_model = int(bridge64.cfg.d_model)
    noise = [
        gaussian_noise("hook_embed", (batch, n_pos, d_model), 0.5, seed=1, dtype=torch.float64),
        AddNoise("blocks.2.hook_resid_mid", noise=torch.randn(batch, n_pos, d_model, dtype=torch.float64)),
        Patch("blocks.1.attn.hook_z", value=torch.zeros(()), where=torch.tensor([False, True, False]).expand(batch, 3)),
    ]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    for name in ("resid_pre", "mlp_out", "z"):
        reused, full = _both(bridge64, p.clean, p.clean, metric, name, interventions=noise)
        assert_close(reused, full, **EXACT)
        noisy = baseline_metric(bridge64, p.clean, metric, interventions=noise)
        assert (full - noisy).abs().max() > 1e-2  # restoring clean states moves the noisy run
    assert suffix_runs


def test_per_example_answer_positions(bridge64, pairs, suffix_runs):
    """Answers read at position 1 or 2: a patch after an example's answer leaves it unchanged."""
    p = pairs["h"]
    answer_pos = torch.arange(len(p)) % 2 + 1
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    for name in ("resid_pre", "attn_out", "result"):
        reused, full = _both(bridge64, p.corrupt, p.clean, metric, name, answer_pos=answer_pos, skip_noops=False)
        assert_close(reused, full, **EXACT)
        base = baseline_metric(bridge64, p.corrupt, metric, answer_pos=answer_pos)
        after = reused[:, 2][..., answer_pos == 1] if reused.ndim == 3 else reused[:, 2, :, answer_pos == 1]
        assert_close(after, base[answer_pos == 1].expand_as(after), rtol=0, atol=0)
    assert suffix_runs


def test_windows_and_all_position_sites(bridge64, pairs, suffix_runs):
    p = pairs["r2"]  # the prompts differ at position 2 only: all-position rows start there
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    hooks = ("blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out", "blocks.2.attn.hook_result")
    sites = [Site(0, hooks, pos=1), Site(0, hooks), Site(1, hooks[1:], pos=2), Site(0, ("blocks.0.hook_resid_pre",))]
    reused, base = patch_sites(bridge64, p.corrupt, p.clean, sites, metric)
    full, _ = patch_sites(bridge64, p.corrupt, p.clean, sites, metric, reuse_kv=False)
    assert_close(reused, full, **EXACT)
    assert 2 in {kw["start_pos"] for kw in suffix_runs}
    assert_close(reused[0], base, rtol=0, atol=0)  # position 1 is the same in both prompts: skipped
    assert (reused[1] - base).abs().max() > 1e-2


def test_suffix_forward_refuses_what_it_cannot_compute(bridge, pairs):
    hooks = ["blocks.1.hook_resid_pre"]
    assert suffix_supported(bridge, hooks, [gaussian_noise("hook_embed", (1, 3, 32), 1.0)], 1)
    assert suffix_supported(bridge, hooks, [Read("blocks.0.hook_mlp_out")], 1)  # before the patched blocks
    assert not suffix_supported(bridge, hooks, [Read("blocks.2.hook_mlp_out")], 1)
    assert not suffix_supported(bridge, ["blocks.1.attn.hook_q"], [], 1)
    assert not suffix_supported(bridge, hooks, [Patch("ln_final.hook_normalized")], 1)
    bridge.set_use_split_qkv_input(True)
    try:
        assert not suffix_supported(bridge, hooks, [], 1)
    finally:
        bridge.set_use_split_qkv_input(False)
    with bridge.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", lambda act, hook: act)]):
        assert not suffix_supported(bridge, hooks, [], 1)
    assert suffix_supported(bridge, hooks, [], 1)


def test_kv_reuse_on_a_shared_layer_model_without_weight_processing(graph, pairs, suffix_runs):
    """Cross-layer sharing: the bridge keeps the raw weights (LayerNorm scales and all)."""
    from interp.models import ModelConfig, build_model, to_bridge

    cfg = ModelConfig(n_layers=4, d_model=32, n_heads=4, init_range=0.15, share_layers=True)
    shared = to_bridge(build_model(cfg, len(graph.vocab), 5, seed=2, device="cpu").double().eval())
    p = pairs["h"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    for name in ("resid_pre", "result"):
        reused, full = _both(shared, p.corrupt, p.clean, metric, name)
        assert_close(reused, full, **EXACT)
    assert suffix_runs


@pytest.mark.parametrize(
    ("name", "at"),
    [
        ("resid_mid", "hook_resid_mid"),
        ("attn_out", "hook_attn_out"),
        ("mlp_out", "hook_mlp_out"),
        ("z", "attn.hook_z"),
        ("resid_post", "hook_resid_post"),
    ],
)
def test_patches_after_the_attention_resume_inside_their_block(bridge64, pairs, suffix_runs, name, at):
    """Such a patch leaves its block's attention as in the unpatched run: read, not recomputed."""
    p = pairs["h"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    reused, full = _both(bridge64, p.corrupt, p.clean, metric, name, skip_noops=False)
    assert_close(reused, full, **EXACT)
    # rows at position 0 of the whole-residual families start one block later, from the
    # source's keys and values (test below); every other row resumes inside its block
    seen = [kwargs["resume_at"] for kwargs in suffix_runs]
    assert seen and set(seen) == ({at, None} if name.startswith("resid") else {at})
    # an intervention in a block makes that block start at its residual again
    suffix_runs.clear()
    batch, n_pos = p.clean.shape
    edit = [
        AddNoise(
            "blocks.1.hook_resid_pre", noise=torch.randn(batch, n_pos, int(bridge64.cfg.d_model), dtype=torch.float64)
        )
    ]
    reused, full = _both(bridge64, p.corrupt, p.clean, metric, name, interventions=edit, skip_noops=False)
    assert_close(reused, full, **EXACT)
    seen = [kwargs["resume_at"] for kwargs in suffix_runs]
    assert None in seen and at in seen


@pytest.mark.parametrize("name", ["resid_mid", "resid_post"])
@pytest.mark.parametrize("swap", ["h", "r1"])
def test_pasting_the_whole_residual_after_an_agreeing_prefix_starts_a_block_later(
    bridge64, pairs, suffix_runs, name, swap
):
    """Past block L's attention the positions are independent: pasting the source's residual at
    p, where both runs agree before p, makes positions 0..p the source run in every later block."""
    p = pairs[swap]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    reused, full = _both(bridge64, p.corrupt, p.clean, metric, name, skip_noops=False)
    assert_close(reused, full, **EXACT)
    first = {"h": 0, "r1": 1}[swap]  # the first position the prompts differ at
    n_layers = len(bridge64.blocks)
    # the rows at positions up to that one (before it they paste an equal value), in every block
    # but the last, start in the next block one position on
    later = {(kw["start_layer"], kw["start_pos"]) for kw in suffix_runs if kw["resume_at"] is None}
    assert later == {(layer, q + 1) for layer in range(1, n_layers) for q in range(first + 1)}
