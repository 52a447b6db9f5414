"""Causal tracing: counterfactual swaps (the paper) and Gaussian noise with restoration (ROME)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from interp.counterfactuals import counterfactual_batch
from interp.patching import top1
from interp.tracing import embedding_std, trace_counterfactual, trace_noise

TOL = {"rtol": 1e-5, "atol": 1e-6}


def test_counterfactual_trace(bridge, graph):
    traces = trace_counterfactual(bridge, graph, "train_inferred", n=24, seed=0)
    n = len(bridge.blocks)
    assert set(traces) == {"h", "r1", "r2"}
    for swap, trace in traces.items():
        q = {"h": 0, "r1": 1, "r2": 2}[swap]
        assert trace.shape == (n + 1, 3)
        assert bool(((trace >= 0) & (trace <= 1)).all())
        # nothing before the swapped token can carry the swap (causality) ...
        assert bool((trace[:, :q] == 0).all())
        # ... nor the embeddings of the other positions
        assert bool((trace[0, [p for p in range(3) if p != q]] == 0).all())
        # the final state at the answer position is the perturbed run's output
        pairs = counterfactual_batch(graph, "train_inferred", swap, n=24, seed=0)
        changed = (top1(bridge, pairs.corrupt) != top1(bridge, pairs.clean)).float().mean()
        assert_close(trace[n, 2], changed, rtol=0, atol=1e-6)
        # and the swapped token's embedding is the whole perturbation
        assert_close(trace[0, q], changed, rtol=0, atol=1e-6)
        assert changed > 0


def test_noise_trace_restorations(bridge, pairs):
    p = pairs["r1"]
    n = len(bridge.blocks)
    trace = trace_noise(bridge, p.clean, p.clean_answer, [1], n_samples=2, seed=0)
    assert trace.scores.shape == (n + 1, 3)
    assert abs(trace.clean_prob - trace.noised_prob) > 1e-3  # the noise hurts
    assert trace.noise_std == 3.0 * embedding_std(bridge)
    # restoring the final residual at the answer position, or the noised embedding, is the clean run
    assert_close(trace.scores[n, 2], torch.tensor(trace.clean_prob), **TOL)
    assert_close(trace.scores[0, 1], torch.tensor(trace.clean_prob), **TOL)
    # restoring a position before the noise restores nothing
    assert_close(trace.scores[:, 0], torch.full((n + 1,), trace.noised_prob), **TOL)


def test_noise_trace_is_reproducible(bridge, pairs):
    p = pairs["h"]
    a = trace_noise(bridge, p.clean, p.clean_answer, [0], kind="mlp_out", window=3, seed=4)
    b = trace_noise(bridge, p.clean, p.clean_answer, [0], kind="mlp_out", window=3, seed=4)
    c = trace_noise(bridge, p.clean, p.clean_answer, [0], kind="mlp_out", window=3, seed=5)
    assert torch.equal(a.scores, b.scores) and a.noised_prob == b.noised_prob
    assert (a.scores - c.scores).abs().max() > 0


def test_windowed_restoration_of_mlp_and_attention(bridge, pairs):
    p = pairs["h"]
    n = len(bridge.blocks)
    for kind in ("mlp_out", "attn_out"):
        single = trace_noise(bridge, p.clean, p.clean_answer, [0], kind=kind, window=1, seed=0)
        window = trace_noise(bridge, p.clean, p.clean_answer, [0], kind=kind, window=n * 2, seed=0)
        assert single.scores.shape == window.scores.shape == (n, 3)
        # a window wider than the model restores every layer: the same score at every layer
        assert_close(window.scores, window.scores[:1].expand(n, 3), **TOL)
        assert (single.scores - window.scores).abs().max() > 1e-6
