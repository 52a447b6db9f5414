"""Cross-layer and skip transcoders: the family's invariants, exact splicing, graphs that add up, saving.

A ReLU MLP written as a CLT whose features write only their own layer is exact (FVU 0,
accuracy and loss recovered 1); random float64 CLTs and skip transcoders give attribution
graphs that add up and reproduce the logits, and a CLT feature's edge is the change when its
writes to every layer are removed.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from interp.features import (
    CrossLayerTranscoder,
    DictionaryFormatError,
    DictionaryMismatchError,
    FeatureError,
    Transcoder,
    TranscoderConfig,
    attribution_graph,
    evaluate_replacement,
    graph_scores,
    load_transcoders,
    model_fingerprint,
    prompt_tokens,
    save_transcoders,
    train_transcoders_on_model,
)
from interp.intervene import Read, run_with_interventions
from interp.models import build_model, to_bridge

from .test_attribution_graph import TOL, frozen_values, random_transcoders
from .test_transcoder import RELU_MODEL, exact_transcoder


def random_clt(bridge, architecture: str = "topk", *, skip: bool = True, seed: int = 0) -> CrossLayerTranscoder:
    """A float64 CLT over every layer with random weights in its blocks, biases, thresholds and skip terms."""
    n, d = len(bridge.blocks), bridge.cfg.d_model
    cfg = TranscoderConfig.for_layer(
        0,
        d_in=n * d,
        d_sae=n * 4 * d,
        d_out=n * d,
        architecture=architecture,
        k=6,
        cross_layer=True,
        n_layers=n,
        skip=skip,
    )
    clt = Transcoder(cfg).to(torch.float64).initialize(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        clt.b_enc.normal_(0, 0.3, generator=gen)
        clt.b_dec.normal_(0, 0.2, generator=gen)
        clt.threshold.fill_(0.5)
        if clt.W_skip is not None:
            clt.W_skip.normal_(0, 0.05, generator=gen).mul_(clt.skip_mask)
    return clt.eval().requires_grad_(False)


def exact_clt(bridge) -> CrossLayerTranscoder:
    """Every MLP of a ReLU model as one CLT whose features write only their own layer."""
    per_layer = {L: exact_transcoder(bridge, L) for L in range(len(bridge.blocks))}
    n, d, f = len(per_layer), per_layer[0].d_in, per_layer[0].d_sae
    cfg = TranscoderConfig.for_layer(
        0,
        d_in=n * d,
        d_sae=n * f,
        d_out=n * d,
        architecture="jumprelu",
        cross_layer=True,
        n_layers=n,
        skip=False,
        jumprelu_init_threshold=0.0,
    )
    clt = Transcoder(cfg).to(torch.float64)
    with torch.no_grad():
        clt.W_enc.zero_()
        clt.W_dec.zero_()
        clt.threshold.zero_()
        for L, tc in per_layer.items():
            w_enc, b_enc, _ = clt.encoder(L)
            w_enc.copy_(tc.W_enc)
            b_enc.copy_(tc.b_enc)
            clt.decoder(L, L).copy_(tc.W_dec)
            clt.layer_b_dec(L).copy_(tc.b_dec)
    return clt.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def relu_bridge(graph, tiny_n_ctx):
    model = build_model(RELU_MODEL, len(graph.vocab), tiny_n_ctx, seed=3, device="cpu").to(torch.float64).eval()
    return to_bridge(model)


@pytest.fixture(scope="module")
def prompt(graph):
    ex = graph.examples("test_id")[0]
    return ex, prompt_tokens(graph, ex.input_tokens)


# ------------------------------------------------------------------------------ the family
def test_a_cross_layer_config_builds_a_clt_whose_blocks_stay_in_place(bridge, graph):
    cfg = TranscoderConfig.for_layer(0, architecture="batchtopk", k=4, expansion_factor=2, steps=30, batch_size=256)
    results = train_transcoders_on_model(bridge, graph, dataclasses.replace(cfg, cross_layer=True))
    clt = results[0].dictionary
    assert isinstance(clt, CrossLayerTranscoder) and all(r.dictionary is clt for r in results.values())
    n, d = len(bridge.blocks), bridge.cfg.d_model
    assert (clt.n_layers, clt.d_in, clt.d_layer_sae) == (n, n * d, 2 * d)
    assert float((clt.W_enc * (1 - clt.enc_mask)).abs().max()) == 0.0  # no feature reads another layer
    assert float((clt.W_dec * (1 - clt.dec_mask)).abs().max()) == 0.0  # nor writes an earlier one
    assert float((clt.W_skip * (1 - clt.skip_mask)).abs().max()) == 0.0
    assert float(clt.W_skip.abs().max()) > 0  # the skip term was trained
    assert float(clt.decoder(0, n - 1).abs().max()) > 0  # layer 0's features write the last MLP
    norms = clt.W_dec.norm(dim=-1)  # one norm for every row: scale_in / scale_out once the scales are folded in
    torch.testing.assert_close(norms, norms[:1].expand_as(norms), atol=1e-5, rtol=0)
    m = evaluate_replacement({L: r.dictionary for L, r in results.items()}, bridge, graph)
    assert m.fvu < 0.9 and m.loss_recovered > 0
    with pytest.raises(FeatureError, match="multiple of n_layers"):
        Transcoder(TranscoderConfig.for_layer(0, d_in=10, d_sae=12, d_out=10, k=2, cross_layer=True, n_layers=3))


def test_a_relu_mlp_written_as_a_clt_is_exact(relu_bridge, graph):
    clt = exact_clt(relu_bridge)
    m = evaluate_replacement(dict.fromkeys(range(clt.n_layers), clt), relu_bridge, graph)
    assert m.fvu < 1e-20
    assert m.accuracy_spliced == m.accuracy_clean
    assert m.loss_recovered == pytest.approx(1.0, abs=1e-9)
    assert abs(m.loss_zero - m.loss_clean) > 1e-3


# ---------------------------------------------------------------------------- graphs add up
@pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
def test_clt_and_skip_graphs_add_up_and_give_the_logits(bridge64, graph, prompt, architecture):
    ex, tokens = prompt
    logits = run_with_interventions(bridge64, tokens[None])[0, -1]
    clt = random_clt(bridge64, architecture)
    skip_tcs = random_transcoders(bridge64, architecture)
    for tc in skip_tcs.values():
        tc.W_skip = torch.nn.Parameter(torch.randn(tc.d_in, tc.d_out, dtype=torch.float64) * 0.05, False)
    for tcs in (dict.fromkeys(range(clt.n_layers), clt), skip_tcs):
        g = attribution_graph(bridge64, tcs, tokens, vocab=graph.vocab, answer=ex.target_tokens[0], batch_size=16)
        assert g.n_features > 20
        assert g.max_residual() < TOL
        assert g.bias[g.targets()].abs().max() > 1e-2
        torch.testing.assert_close(g.values[g.logit_index(0) :], logits[g.logit_tokens], atol=TOL, rtol=0)
        torch.testing.assert_close(g.values[: g.n_features], g.activations, atol=TOL, rtol=0)
    assert graph_scores(g)[1] < 1  # random transcoders leave errors


def test_a_clt_feature_edge_is_the_change_when_all_its_writes_are_removed(bridge64, graph, prompt):
    clt = random_clt(bridge64, "topk", skip=False)
    tcs = dict.fromkeys(range(clt.n_layers), clt)
    tokens = prompt[1]
    g = attribution_graph(bridge64, tcs, tokens, batch_size=16)
    cache: dict[str, torch.Tensor] = {}
    run_with_interventions(bridge64, tokens[None], [Read(f"blocks.{L}.hook_mlp_out", store=cache) for L in tcs])
    clean = {L: cache[f"blocks.{L}.hook_mlp_out"][0] for L in tcs}
    per_layer = {L: _LayerView(clt, L) for L in tcs}
    base = frozen_values(bridge64, per_layer, tokens, g, clean)
    torch.testing.assert_close(base, g.values[g.targets()], atol=TOL, rtol=0)
    sources = [i for i, (layer, _, _) in enumerate(g.active_features.tolist()) if layer == 0][:3]
    for i in sources:
        _, pos, feat = g.active_features[i].tolist()
        removed = {L: v.clone() for L, v in clean.items()}
        for out in range(clt.n_layers):
            removed[out][pos] -= g.activations[i] * clt.decoder(0, out)[feat]
        change = base - frozen_values(bridge64, per_layer, tokens, g, removed)
        torch.testing.assert_close(change, g.adjacency[g.targets(), i], atol=TOL, rtol=0)
        assert change[g.n_features :].abs().max() > 1e-6


class _LayerView:
    """What ``frozen_values`` needs of a transcoder: its input hook and pre-activations (one CLT layer)."""

    def __init__(self, clt: CrossLayerTranscoder, layer: int) -> None:
        self.hook_name = f"blocks.{layer}.ln2.hook_normalized"
        self.clt, self.layer = clt, layer

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return self.clt.layer_pre_acts(self.layer, x)


# ----------------------------------------------------------------------------- save / load
def test_a_clt_saves_in_circuit_tracers_layout_and_loads_back(bridge, tmp_path):
    clt = random_clt(bridge, "jumprelu").to(torch.float32)
    clt.meta["model_fingerprint"] = model_fingerprint(bridge)
    n = clt.n_layers
    folder = save_transcoders(dict.fromkeys(range(n), clt), tmp_path / "clt")
    index = json.loads((folder / "transcoders.json").read_text())
    assert (index["model_kind"], index["feature_input_hook"], index["layers"]) == (
        "cross_layer_transcoder",
        "ln2.hook_normalized",
        list(range(n)),
    )
    f, d = clt.d_layer_sae, clt.d_layer_in
    for i in range(n):
        with safe_open(str(folder / f"W_enc_{i}.safetensors"), framework="pt") as fh:
            assert set(fh.keys()) == {f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}", f"threshold_{i}", f"W_skip_{i}"}
            assert tuple(fh.get_tensor(f"W_enc_{i}").shape) == (f, d)
        with safe_open(str(folder / f"W_dec_{i}.safetensors"), framework="pt") as fh:
            assert tuple(fh.get_tensor(f"W_dec_{i}").shape) == (f, n - i, d)
    loaded = load_transcoders(folder, bridge)
    assert sorted(loaded) == list(range(n)) and len({id(v) for v in loaded.values()}) == 1
    x = torch.randn(7, n * d)
    torch.testing.assert_close(loaded[0](x), clt(x), atol=0, rtol=0)
    other = copy.deepcopy(bridge)
    with torch.no_grad():
        next(iter(other.parameters())).add_(1.0)
    with pytest.raises(DictionaryMismatchError, match="trained on model"):
        load_transcoders(folder, other)
    (folder / "W_dec_1.safetensors").unlink()
    with pytest.raises(DictionaryFormatError, match="W_dec_1.safetensors is missing"):
        load_transcoders(folder)
