"""Attribution graphs add up, reproduce the logits, and each edge is the effect of its source alone.

Float64 tiny models with random transcoders (many active features, large errors) so that
every path of the local replacement model carries weight; a ReLU model whose MLPs are
exactly transcoders (``test_transcoder.exact_transcoder``) has zero error nodes.
"""

from __future__ import annotations

import pytest
import torch

from interp.features import (
    AttributionGraphError,
    DictionaryMismatchError,
    Transcoder,
    TranscoderConfig,
    attribution_graph,
    graph_scores,
    prompt_tokens,
    prune_graph,
)
from interp.features.graph_prune import compute_influence, normalize_matrix
from interp.intervene import Patch, Read, run_with_interventions
from interp.models import build_model, to_bridge

from .test_transcoder import RELU_MODEL, exact_transcoder

TOL = 1e-9  # float64; values are O(1)


def random_transcoders(bridge, architecture: str = "topk", *, seed: int = 0) -> dict[int, Transcoder]:
    out = {}
    for layer in range(len(bridge.blocks)):
        d = bridge.cfg.d_model
        cfg = TranscoderConfig.for_layer(
            layer, d_in=d, d_sae=4 * d, d_out=d, architecture=architecture, k=6, jumprelu_init_threshold=0.5
        )
        tc = Transcoder(cfg).to(torch.float64).initialize(seed=seed + layer)
        with torch.no_grad():
            tc.b_enc.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
            tc.b_dec.normal_(0, 0.2, generator=torch.Generator().manual_seed(seed + 1))
            tc.threshold.fill_(0.5)
        out[layer] = tc.eval().requires_grad_(False)
    return out


@pytest.fixture(scope="module")
def prompt(graph):
    ex = graph.examples("test_id")[0]
    return ex, prompt_tokens(graph, ex.input_tokens)


@pytest.fixture(scope="module", params=["topk", "jumprelu"])
def built(request, bridge64, graph, prompt):
    tcs = random_transcoders(bridge64, request.param)
    ex, tokens = prompt
    return tcs, attribution_graph(bridge64, tcs, tokens, vocab=graph.vocab, answer=ex.target_tokens[0], batch_size=16)


def frozen_values(bridge, tcs, tokens, g, mlp_out: dict[int, torch.Tensor]) -> torch.Tensor:
    """Feature pre-activations and logits of ``g``'s targets in the frozen model with the MLP outputs given."""
    cache: dict[str, torch.Tensor] = {}
    hooks = ["ln_final.hook_scale"] + [
        f"blocks.{L}.{h}" for L in range(g.n_layers) for h in ("ln1.hook_scale", "attn.hook_pattern", "ln2.hook_scale")
    ]
    run_with_interventions(bridge, tokens[None], [Read(h, store=cache) for h in hooks])
    xs: dict[str, torch.Tensor] = {}
    ivs = [Patch(h, value=cache[h]) for h in hooks]
    ivs += [Patch(f"blocks.{L}.hook_mlp_out", value=v[None]) for L, v in mlp_out.items()]
    ivs += [Read(tc.hook_name, store=xs) for tc in tcs.values()]
    logits = run_with_interventions(bridge, tokens[None], ivs)[0, -1]
    pre = [tcs[L].pre_acts(xs[tcs[L].hook_name][0])[p, f] for L, p, f in g.active_features.tolist()]
    return torch.cat([torch.stack(pre), logits[g.logit_tokens]])


# ----------------------------------------------------------------------------- adds up
def test_every_target_is_its_incoming_edges_plus_its_bias(built):
    _, g = built
    assert g.n_features > 20 and g.n_logits >= 1
    assert g.max_residual() < TOL
    # the bias is a real, separately computed term, not the remainder
    assert g.bias[g.targets()].abs().max() > 1e-2
    assert g.adjacency[g.targets()].abs().sum(-1).min() > 0


def test_the_logit_nodes_are_the_models_logits(built, bridge64, prompt):
    _, g = built
    logits = run_with_interventions(bridge64, prompt[1][None])[0, -1]
    torch.testing.assert_close(g.values[g.logit_index(0) :], logits[g.logit_tokens], atol=TOL, rtol=0)
    torch.testing.assert_close(g.logit_probabilities, torch.softmax(logits, -1)[g.logit_tokens], atol=1e-12, rtol=0)


def test_feature_activations_are_their_pre_activations(built):
    _, g = built
    torch.testing.assert_close(g.values[: g.n_features], g.activations, atol=TOL, rtol=0)
    assert bool((g.activations > 0).all())


def test_an_edge_is_the_change_when_only_its_source_is_removed(built, bridge64, prompt):
    """Remove one feature's (or error's) write from its MLP output, hold every other MLP output at its
    value: each target changes by exactly its edge from that source (the replacement is linear)."""
    tcs, g = built
    tokens = prompt[1]
    cache: dict[str, torch.Tensor] = {}
    run_with_interventions(bridge64, tokens[None], [Read(f"blocks.{L}.hook_mlp_out", store=cache) for L in tcs])
    clean = {L: cache[f"blocks.{L}.hook_mlp_out"][0] for L in tcs}
    base = frozen_values(bridge64, tcs, tokens, g, clean)
    torch.testing.assert_close(base, g.values[g.targets()], atol=TOL, rtol=0)
    low = [i for i, (layer, _, _) in enumerate(g.active_features.tolist()) if layer == 0][:3]
    sources = [(i, *g.active_features[i].tolist()) for i in low]
    for i, layer, pos, feat in sources:
        removed = {L: v.clone() for L, v in clean.items()}
        removed[layer][pos] -= g.activations[i] * tcs[layer].W_dec[feat]
        change = base - frozen_values(bridge64, tcs, tokens, g, removed)
        torch.testing.assert_close(change, g.adjacency[g.targets(), i], atol=TOL, rtol=0)
        assert change.abs().max() > 1e-4
    removed = {L: v.clone() for L, v in clean.items()}
    removed[1][2] -= g.errors[1, 2]
    torch.testing.assert_close(
        base - frozen_values(bridge64, tcs, tokens, g, removed),
        g.adjacency[g.targets(), g.error_index(1, 2)],
        atol=TOL,
        rtol=0,
    )


def test_no_edge_goes_backwards_in_layers_or_positions(built):
    _, g = built
    a = g.adjacency
    layer, pos = g.active_features[:, 0], g.active_features[:, 1]
    ff = a[: g.n_features, : g.n_features]
    assert bool((ff[layer[:, None] <= layer[None, :]] == 0).all())
    assert bool((ff[pos[:, None] < pos[None, :]] == 0).all())
    assert bool((a[g.n_features : g.logit_index(0)] == 0).all())  # errors and embeddings have no inputs


def test_exact_transcoders_leave_zero_error_and_a_perfect_replacement(graph, tiny_n_ctx, prompt):
    bridge = to_bridge(
        build_model(RELU_MODEL, len(graph.vocab), tiny_n_ctx, seed=3, device="cpu").to(torch.float64).eval()
    )
    tcs = {L: exact_transcoder(bridge, L) for L in range(RELU_MODEL.n_layers)}
    g = attribution_graph(bridge, tcs, prompt[1])
    assert g.errors.abs().max() < 1e-12
    assert g.max_residual() < TOL
    logits = run_with_interventions(bridge, prompt[1][None])[0, -1]
    torch.testing.assert_close(g.values[g.logit_index(0) :], logits[g.logit_tokens], atol=TOL, rtol=0)
    replacement, completeness = graph_scores(g)
    assert replacement == pytest.approx(1.0, abs=1e-9) and completeness == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------------------ pruning
def test_influence_is_the_sum_over_all_paths(built):
    _, g = built
    a = normalize_matrix(g.adjacency)
    w = torch.zeros(g.n_nodes, dtype=a.dtype)
    w[g.logit_index(0) :] = g.logit_probabilities
    closed = w @ (torch.linalg.inv(torch.eye(g.n_nodes, dtype=a.dtype) - a) - torch.eye(g.n_nodes, dtype=a.dtype))
    torch.testing.assert_close(compute_influence(a, w), closed, atol=1e-10, rtol=1e-8)


def test_pruning_keeps_inputs_and_outputs_and_only_connected_features(built):
    _, g = built
    full = prune_graph(g, 1.0, 1.0)
    small = prune_graph(g, 0.5, 0.9)
    assert bool(small.node_mask[g.embedding_index(0) :].all())
    assert int(small.node_mask[: g.n_features].sum()) < int(full.node_mask[: g.n_features].sum())
    kept_feat = small.node_mask[: g.n_features].nonzero().flatten()
    assert bool(small.edge_mask[kept_feat].any(1).all()) and bool(small.edge_mask[:, kept_feat].any(0).all())
    assert not bool(small.edge_mask[~small.node_mask].any()) and not bool(small.edge_mask[:, ~small.node_mask].any())
    # thresholds of 1 keep every nonzero edge between kept nodes, and every feature that reaches a logit directly
    both = full.node_mask[:, None] & full.node_mask[None, :]
    assert bool((full.edge_mask == ((g.adjacency != 0) & both)).all())
    to_logit = (g.adjacency[g.logit_index(0) :, : g.n_features] != 0).any(0)
    assert bool(full.node_mask[: g.n_features][to_logit].all())
    assert float(small.cumulative_scores.max()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_one_line(bridge64, bridge, graph, prompt):
    tcs = random_transcoders(bridge64)
    tokens = prompt[1]
    with pytest.raises(AttributionGraphError, match="the prompt is empty"):
        attribution_graph(bridge64, tcs, torch.zeros(0, dtype=torch.long))
    with pytest.raises(AttributionGraphError, match="the prompt is empty"):
        prompt_tokens(graph, [])
    with pytest.raises(AttributionGraphError, match=r"missing layers \[2\]"):
        attribution_graph(bridge64, {0: tcs[0], 1: tcs[1]}, tokens)
    with pytest.raises(AttributionGraphError, match="key it by its layer"):
        attribution_graph(bridge64, {0: tcs[1], 1: tcs[0], 2: tcs[2]}, tokens)
    tcs[0].meta["model_fingerprint"] = "0123456789abcdef"
    with pytest.raises(DictionaryMismatchError, match="trained on model 0123456789abcdef"):
        attribution_graph(bridge64, tcs, tokens)
    with pytest.raises(AttributionGraphError, match="pass vocab="):
        attribution_graph(bridge64, tcs, tokens, answer="<e_1>", check_weights=False)
    for err in (AttributionGraphError, DictionaryMismatchError):
        assert "\n" not in str(err("x"))
