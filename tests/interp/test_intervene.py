"""The intervention engine: pieces compose in one forward, partial forwards equal full ones."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from interp.intervene import (
    AddNoise,
    Patch,
    Read,
    activation_gradients,
    cache_activations,
    gaussian_noise,
    mean_ablation,
    position_mask,
    resample_ablation,
    restore,
    run_with_interventions,
    zero_ablation,
)
from interp.metrics import logit_diff, run_metric

TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32 forwards that differ only in batching / op order


def _layers(bridge) -> int:
    return len(bridge.blocks)


def test_no_interventions_is_the_plain_forward(bridge, pairs):
    tokens = pairs["h"].clean
    with torch.no_grad():
        assert_close(run_with_interventions(bridge, tokens), bridge(tokens), rtol=0, atol=0)


@pytest.mark.parametrize("answer_only", [False, True])
def test_forward_from_any_layer_equals_full_forward(bridge, pairs, answer_only):
    tokens = pairs["r1"].clean
    n = _layers(bridge)
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    with torch.no_grad():
        full, states = cache_activations(bridge, tokens, hooks)
        pos = torch.full((len(tokens),), tokens.shape[1] - 1)
        for layer, hook in enumerate(hooks):
            got = run_with_interventions(
                bridge, states[hook], start_at_layer=layer, answer_pos=pos if answer_only else None
            )
            want = full[torch.arange(len(tokens)), pos] if answer_only else full
            assert_close(got, want, **TOL)
            if layer < n:  # and equals TransformerLens's own start_at_layer
                assert_close(
                    got,
                    bridge(states[hook], start_at_layer=layer)[..., -1, :]
                    if answer_only
                    else bridge(states[hook], start_at_layer=layer),
                    **TOL,
                )


def test_read_matches_run_with_cache(bridge, pairs):
    tokens = pairs["h"].clean
    hooks = ["hook_embed", "blocks.1.hook_resid_mid", "blocks.2.attn.hook_z", "blocks.0.attn.hook_result"]
    with torch.no_grad():
        _, ours = cache_activations(bridge, tokens, hooks)
        _, theirs = bridge.run_with_cache(tokens)
    for h in hooks:
        assert_close(ours[h], theirs[h], rtol=0, atol=0)


def test_pieces_apply_in_list_order(bridge, pairs):
    """Noise then restore = the clean run; restore then noise = noise on the clean values."""
    tokens = pairs["h"].clean
    hook = "blocks.1.hook_resid_pre"
    with torch.no_grad():
        clean, cache = cache_activations(bridge, tokens, [hook])
        noise = gaussian_noise(hook, cache[hook].shape, 1.0, seed=3)
        restored = run_with_interventions(bridge, tokens, [noise, restore(cache, hook)])
        noised = run_with_interventions(bridge, tokens, [noise])
        restore_then_noise = run_with_interventions(bridge, tokens, [restore(cache, hook), noise])
    assert_close(restored, clean, **TOL)
    assert_close(restore_then_noise, noised, **TOL)
    assert (noised - clean).abs().max() > 1e-2  # the noise did something


def test_noise_and_patches_touch_only_masked_positions(bridge, pairs):
    tokens = pairs["h"].clean
    batch, n_pos = tokens.shape
    mask = position_mask(batch, n_pos, [1])
    with torch.no_grad():
        _, base = cache_activations(bridge, tokens, ["hook_embed"])
        _, noised = cache_activations(
            bridge, tokens, ["hook_embed"], [gaussian_noise("hook_embed", base["hook_embed"].shape, 1.0, mask, seed=0)]
        )
    diff = (noised["hook_embed"] - base["hook_embed"]).abs().amax(-1)
    assert bool((diff[:, 1] > 0).all())
    assert bool((diff[:, [0, 2]] == 0).all())


def test_noise_is_reproducible_from_its_seed():
    a = gaussian_noise("hook_embed", (4, 3, 8), 2.0, seed=7)
    b = gaussian_noise("hook_embed", (4, 3, 8), 2.0, seed=7)
    c = gaussian_noise("hook_embed", (4, 3, 8), 2.0, seed=8)
    assert torch.equal(a.noise, b.noise) and not torch.equal(a.noise, c.noise)


def test_zero_ablating_attention_leaves_resid_mid_equal_to_resid_pre(bridge, pairs):
    tokens = pairs["r2"].clean
    n = _layers(bridge)
    zeros = [zero_ablation(f"blocks.{layer}.hook_attn_out") for layer in range(n)]
    hooks = [f"blocks.{layer}.{h}" for layer in range(n) for h in ("hook_resid_pre", "hook_resid_mid")]
    with torch.no_grad():
        _, acts = cache_activations(bridge, tokens, hooks, zeros)
    for layer in range(n):
        assert_close(acts[f"blocks.{layer}.hook_resid_mid"], acts[f"blocks.{layer}.hook_resid_pre"], **TOL)


def test_mean_and_resample_ablation(bridge, pairs):
    tokens = pairs["h"].clean
    hook = "blocks.0.hook_mlp_out"
    with torch.no_grad():
        _, ref = cache_activations(bridge, tokens, [hook])
        _, mean = cache_activations(bridge, tokens, [hook], [mean_ablation(hook, ref[hook])])
        _, res1 = cache_activations(bridge, tokens, [hook], [resample_ablation(hook, ref[hook], seed=5)])
        _, res2 = cache_activations(bridge, tokens, [hook], [resample_ablation(hook, ref[hook], seed=5)])
    assert_close(mean[hook], ref[hook].mean(0, keepdim=True).expand_as(ref[hook]), **TOL)
    assert torch.equal(res1[hook], res2[hook])
    # a resample is a permutation of the reference's examples
    ref_rows = sorted(map(tuple, ref[hook].flatten(1).tolist()))
    assert sorted(map(tuple, res1[hook].flatten(1).tolist())) == ref_rows


def test_patching_resid_mid_changes_the_residual_not_only_the_mlp_input(bridge, pairs):
    """resid_mid of the last block taken from another run makes the output that run's."""
    p = pairs["h"]
    hook = f"blocks.{_layers(bridge) - 1}.hook_resid_mid"
    with torch.no_grad():
        clean, cache = cache_activations(bridge, p.clean, [hook])
        patched = run_with_interventions(bridge, p.corrupt, [restore(cache, hook)])
    assert_close(patched, clean, **TOL)


def test_take_selects_rows_and_keeps_broadcast_values():
    value = torch.arange(4.0)[:, None, None].expand(4, 3, 2)
    where = position_mask(4, 3, [0, 2])
    patch = Patch("hook_embed", value=value, where=where).take(torch.tensor([3, 3, 1]))
    assert patch.value[:, 0, 0].tolist() == [3.0, 3.0, 1.0] and patch.where.shape == (3, 3)
    assert zero_ablation("hook_embed").take(torch.tensor([0, 1])).value.ndim == 0
    noise = AddNoise("hook_embed", noise=torch.ones(1, 3, 2)).take(torch.tensor([0, 0, 0]))
    assert noise.noise.shape == (1, 3, 2)


def test_read_can_keep_the_graph(bridge, pairs):
    store: dict = {}
    logits = run_with_interventions(bridge, pairs["h"].clean, [Read("blocks.1.attn.hook_z", store=store, detach=False)])
    (grad,) = torch.autograd.grad(logits[:, -1].sum(), [store["blocks.1.attn.hook_z"]])
    assert grad.shape == store["blocks.1.attn.hook_z"].shape and grad.abs().sum() > 0


def test_activation_gradients_are_the_derivative_of_the_forward(bridge64, pairs):
    """The engine's backward: the gradient at a hook, dotted with a direction, is the central difference
    of forwards with that direction added there (float64: O(t^2) far below the tolerance)."""
    p = pairs["h"]
    hooks = ["blocks.1.hook_resid_pre", f"blocks.{_layers(bridge64) - 1}.hook_resid_mid", "blocks.2.attn.hook_z"]
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    grads_before = [q.grad for q in bridge64.parameters()]
    acts, grads, values = activation_gradients(bridge64, p.clean, hooks, lambda logits: run_metric(metric, logits))
    gen = torch.Generator().manual_seed(0)
    t = 1e-4
    for hook in hooks:
        direction = torch.randn(acts[hook].shape, generator=gen, dtype=acts[hook].dtype)

        def f(s, hook=hook, direction=direction):
            with torch.no_grad():
                return run_metric(
                    metric, run_with_interventions(bridge64, p.clean, [AddNoise(hook, noise=s * direction)])
                )

        central = (f(t) - f(-t)) / (2 * t)
        estimate = (grads[hook] * direction).flatten(1).sum(-1)
        assert_close(estimate, central, rtol=1e-6, atol=1e-8, msg=hook)
        assert central.abs().max() > 1e-3, hook  # not a comparison of zeros
        assert_close(acts[hook], cache_activations(bridge64, p.clean, [hook])[1][hook], rtol=0, atol=0)
    assert_close(values, f(0.0), rtol=1e-12, atol=1e-12)
    # the weights get no gradient, and nothing is left attached to the graph
    assert all(q.grad is g for q, g in zip(bridge64.parameters(), grads_before))
    assert not any(x.requires_grad for x in [values, *acts.values(), *grads.values()])


def test_activation_gradients_respect_causality(bridge, pairs):
    """Positions after the answer position cannot reach it: their gradients are exactly zero."""
    p = pairs["r1"]
    hook = "blocks.1.hook_resid_pre"
    first = torch.zeros(len(p), dtype=torch.long)
    _, grads, _ = activation_gradients(
        bridge,
        p.clean,
        [hook],
        lambda logits: run_metric(logit_diff(p.clean_answer, p.corrupt_answer), logits),
        answer_pos=first,
    )
    assert bool((grads[hook][:, 1:] == 0).all())
    assert grads[hook][:, 0].abs().max() > 0
