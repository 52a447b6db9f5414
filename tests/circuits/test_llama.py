"""The main analyses on the llama family: the same invariants as on GPT-2, or a one-line refusal.

A tiny float64 llama (RoPE, RMSNorm, SwiGLU) on the tiny composition graph: the logit lens,
activation patching (against TransformerLens 4's own sweeps), causal tracing, attribution
patching, edge attribution, circuit ablation and discovery, attribution graphs and feature
logits keep the invariants their GPT-2 tests check; the explorer's in-page model (GPT-2's
forward pass in JavaScript) refuses a llama in one line.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.testing import assert_close
from transformer_lens import patching as tl

from circuits.ablation import ablation_reference, circuit_logits
from circuits.discover import find_circuit
from circuits.edges import edge_attribution
from circuits.graph import CircuitError, ModelGraph
from circuits.tasks import composition_task
from circuits.views.explorer.page import explorer_figures
from circuits.views.explorer.weights import export_weights
from interp.attribution import attribution_patch
from interp.counterfactuals import counterfactual_batch
from interp.features import Transcoder, TranscoderConfig, attribution_graph, prompt_tokens
from interp.intervene import cache_activations, run_with_interventions
from interp.intervene.suffix import suffix_supported
from interp.lens import dataset_lens, lens_logits
from interp.models import build_model, to_bridge
from interp.patching import activation_patch, logit_diff, tl_metric, top1
from interp.tracing import trace_counterfactual

from ..tiny import TINY_MODEL

LLAMA = dataclasses.replace(TINY_MODEL, family="llama", positions="rotary", activation="silu")
EXACT = {"rtol": 1e-9, "atol": 1e-9}
FLOAT32_SOFTMAX = {"rtol": 1e-6, "atol": 1e-6}
"""Llama's attention softmax rounds to float32 (in TransformerLens's bridge as in Hugging Face's eager
attention), so two float64 computations of one value that batch or order things differently agree
to ~1e-7, not to float64 rounding."""


@pytest.fixture(scope="module")
def llama(graph, tiny_n_ctx):
    """The plain float64 Hugging Face llama."""
    return build_model(LLAMA, len(graph.vocab), tiny_n_ctx, seed=4, device="cpu").double().eval()


@pytest.fixture(scope="module")
def llama64(llama):
    return to_bridge(llama)


@pytest.fixture(scope="module")
def llama_task(graph):
    return composition_task(graph, n=6)


def test_the_lens_reads_the_plain_model_and_ends_at_its_logits(llama, graph):
    lens = dataset_lens(llama, graph, ["bridge", "answer"], split="train_inferred", n=24)  # wrapped on the way in
    assert lens["answer"].rr.shape == (24, LLAMA.n_layers + 1, 3)
    tokens = graph.batch("train_inferred").tokens[:8, :3]
    with torch.no_grad():
        assert_close(lens_logits(llama, tokens)[:, -1], llama(input_ids=tokens).logits, **EXACT)


def test_a_forward_from_any_layer_is_the_full_forward(llama64, graph):
    """The blocks after a cached residual get their rotary (cos, sin) like the full forward's."""
    tokens = graph.batch("train_inferred").tokens[:8, :3]
    hooks = [f"blocks.{L}.hook_resid_pre" for L in range(LLAMA.n_layers)]
    with torch.no_grad():
        full, states = cache_activations(llama64, tokens, hooks)
        for layer, hook in enumerate(hooks):
            assert_close(run_with_interventions(llama64, states[hook], start_at_layer=layer), full, **EXACT)


@pytest.mark.parametrize("name", ["resid_pre", "attn_out", "mlp_out", "z"])
def test_patching_equals_transformer_lens_and_the_full_forward(llama64, graph, name):
    """No KV-reuse fast path for rotary attention: patching runs full forwards, equal to TransformerLens 4's."""
    p = counterfactual_batch(graph, "train_inferred", "h", n=12, seed=0)
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    assert not suffix_supported(llama64, [f"blocks.0.hook_{name}"], [], 0)
    sweeps = {
        "resid_pre": tl.get_act_patch_resid_pre,
        "attn_out": tl.get_act_patch_attn_out,
        "mlp_out": tl.get_act_patch_mlp_out,
        "z": tl.get_act_patch_attn_head_out_by_pos,
    }
    with torch.no_grad():
        _, clean_cache = llama64.run_with_cache(p.clean)
        expected = sweeps[name](llama64, p.corrupt, clean_cache, tl_metric(metric, p.answer_pos), reduce="mean")
    got = activation_patch(llama64, p.corrupt, p.clean, metric, name)
    assert_close(got, expected.to(got), **FLOAT32_SOFTMAX)
    assert_close(activation_patch(llama64, p.corrupt, p.clean, metric, name, reuse_kv=False), got, **EXACT)
    assert expected.abs().max() > 1e-2


def test_counterfactual_tracing_keeps_causality(llama64, graph):
    traces = trace_counterfactual(llama64, graph, "train_inferred", n=24, seed=0)
    n = LLAMA.n_layers
    for swap, trace in traces.items():
        q = {"h": 0, "r1": 1, "r2": 2}[swap]
        assert bool((trace[:, :q] == 0).all())  # nothing before the swapped token carries the swap
        pairs = counterfactual_batch(graph, "train_inferred", swap, n=24, seed=0)
        changed = (top1(llama64, pairs.corrupt) != top1(llama64, pairs.clean)).double().mean()
        assert float(trace[n, 2]) == pytest.approx(float(changed)) and float(trace[0, q]) == pytest.approx(
            float(changed)
        )
    assert max(float(t.max()) for t in traces.values()) > 0


def test_attribution_is_the_derivative_of_exact_patching(llama64, graph):
    p = counterfactual_batch(graph, "train_inferred", "r1", n=12, seed=1)
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    hooks = [f"blocks.{L}.attn.hook_z" for L in range(LLAMA.n_layers)]
    with torch.no_grad():
        _, run = cache_activations(llama64, p.corrupt, hooks)
        _, src = cache_activations(llama64, p.clean, hooks)
    t = 1e-3  # float32 softmax rounding / t against O(t^2): ~1e-4 relative at t = 1e-3
    plus = {h: run[h] + t * (src[h] - run[h]) for h in hooks}
    minus = {h: run[h] - t * (src[h] - run[h]) for h in hooks}
    derivative = (
        activation_patch(llama64, p.corrupt, plus, metric, "z")
        - activation_patch(llama64, p.corrupt, minus, metric, "z")
    ) / (2 * t)
    estimate = attribution_patch(llama64, p.corrupt, p.clean, metric, ["z"])["z"]
    scale = float(derivative.abs().max())
    assert scale > 1e-3
    assert_close(estimate, derivative.to(estimate), rtol=1e-3, atol=1e-3 * scale)  # a wrong node is off by O(1)


def test_the_whole_graph_is_the_model_and_the_empty_one_the_corrupt_run(llama64, llama_task):
    space = ModelGraph.of(llama64, llama_task.n_pos)
    ref = ablation_reference(llama64, llama_task.clean, "corrupt", corrupt=llama_task.corrupt)
    with torch.no_grad():
        clean, corrupt = llama64(llama_task.clean)[:, -1], llama64(llama_task.corrupt)[:, -1]
    assert_close(circuit_logits(llama64, llama_task.clean, space.allowed, ref), clean, **EXACT)
    assert_close(circuit_logits(llama64, llama_task.clean, torch.zeros_like(space.allowed), ref), corrupt, **EXACT)


def test_edge_attribution_adds_up_and_a_circuit_is_found(llama64, llama_task):
    run, src, metric = llama_task.clean, llama_task.corrupt, llama_task.metric()
    ig = edge_attribution(llama64, run, src, metric, method="eap-ig", ig_steps=32)
    target = ig.source_metric - ig.run_metric  # integrated gradients of the input embedding: complete
    assert abs(target) > 1e-2 and abs(float(ig.scores[:, 0, :].sum()) - target) < 1e-2 * abs(target)
    circuit = find_circuit(llama64, llama_task, ig_steps=2, target=0.8)
    assert (
        circuit.meta["faithfulness"] >= 0.8 and 0 < len(circuit) <= circuit.meta["evaluations"]["mean"]["total_edges"]
    )


def test_an_attribution_graph_adds_up_to_the_logits(llama64, graph):
    """Frozen RMSNorm scales and attention patterns make the rest linear, so the graph is exact."""
    tcs = {}
    for layer in range(LLAMA.n_layers):
        cfg = TranscoderConfig.for_layer(layer, d_in=32, d_sae=128, d_out=32, architecture="topk", k=6)
        tc = Transcoder(cfg).to(torch.float64).initialize(seed=layer)
        with torch.no_grad():
            tc.b_dec.normal_(0, 0.2, generator=torch.Generator().manual_seed(layer))
        tcs[layer] = tc.eval().requires_grad_(False)
    ex = graph.examples("test_id")[0]
    tokens = prompt_tokens(graph, ex.input_tokens)
    g = attribution_graph(llama64, tcs, tokens, vocab=graph.vocab, answer=ex.target_tokens[0], batch_size=16)
    assert g.max_residual() < 1e-9
    logits = run_with_interventions(llama64, tokens[None])[0, -1]
    assert_close(g.values[g.logit_index(0) :], logits[g.logit_tokens], rtol=0, atol=1e-9)


def test_the_explorer_refuses_a_llama_in_one_line(llama, graph, tmp_path, one_line):
    with pytest.raises(CircuitError) as err:
        export_weights(llama)
    assert "GPT-2" in one_line(err.value) and "LlamaForCausalLM" in one_line(err.value)
    with pytest.raises(CircuitError) as err:  # before computing anything for the page
        explorer_figures(
            tmp_path, llama, graph, ["h", "r1", "r2"], step=0, circuit_size=None, n_edges=None, metrics=[], curves=[]
        )
    assert "GPT-2" in one_line(err.value)
