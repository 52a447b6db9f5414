"""Transcoders: config, training, scoring by splicing into the forward, save / load and one-line errors.

A ReLU MLP *is* a transcoder (``W_enc = W_in``, ``W_dec = W_out``, threshold 0): that exact
transcoder must score FVU 0 and recover accuracy and loss exactly 1, whatever the model.
"""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import ConfigError
from interp.features import (
    DictionaryFormatError,
    DictionaryMismatchError,
    Transcoder,
    TranscoderConfig,
    evaluate_replacement,
    evaluate_transcoder,
    load_transcoder,
    load_transcoders,
    save_transcoder,
    save_transcoders,
    splice_interventions,
    train_transcoders_on_model,
)
from interp.intervene import UnknownHookError, run_with_interventions
from interp.models import ModelConfig, build_model, to_bridge

RELU_MODEL = ModelConfig(n_layers=2, d_model=16, n_heads=2, activation="relu", init_range=0.15)


def exact_transcoder(bridge, layer: int, *, dtype: torch.dtype = torch.float64) -> Transcoder:
    """The MLP of ``layer`` of a ReLU model written as a transcoder (JumpReLU with threshold 0 is ReLU)."""
    mlp = bridge.blocks[layer].mlp
    d_model, d_mlp = mlp.W_in.shape
    cfg = TranscoderConfig.for_layer(
        layer, d_in=d_model, d_sae=d_mlp, d_out=d_model, architecture="jumprelu", jumprelu_init_threshold=0.0
    )
    tc = Transcoder(cfg).to(dtype)
    with torch.no_grad():
        tc.W_enc.copy_(mlp.W_in)
        tc.b_enc.copy_(mlp.b_in)
        tc.W_dec.copy_(mlp.W_out)
        tc.b_dec.copy_(mlp.b_out)
        tc.threshold.zero_()
    return tc.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def relu_bridge(graph, tiny_n_ctx):
    model = build_model(RELU_MODEL, len(graph.vocab), tiny_n_ctx, seed=3, device="cpu").to(torch.float64).eval()
    return to_bridge(model)


@pytest.fixture(scope="module")
def trained(bridge, graph):
    cfg = TranscoderConfig.for_layer(
        0, architecture="topk", k=4, expansion_factor=4, steps=150, batch_size=256, lr=1e-2, skip=False
    )  # no skip term: TopK then keeps exactly k per row (with one, rows the skip term explains may keep fewer)
    return train_transcoders_on_model(bridge, graph, cfg, log_every=50)


# ------------------------------------------------------------------------------ config
def test_config_names_the_mlp_of_a_layer_and_moves_between_layers():
    cfg = TranscoderConfig.for_layer(2, k=8)
    assert (cfg.hook_name, cfg.hook_name_out, cfg.layer) == ("blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out", 2)
    moved = cfg.at_layer(0)
    assert (moved.hook_name, moved.hook_name_out, moved.k) == (
        "blocks.0.ln2.hook_normalized",
        "blocks.0.hook_mlp_out",
        8,
    )
    assert TranscoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="hook_name_out"):
        TranscoderConfig("blocks.0.ln2.hook_normalized")
    with pytest.raises(ConfigError, match="layer"):
        TranscoderConfig.for_layer(-1)


# ---------------------------------------------------------------------------- exactness
def test_a_relu_mlp_written_as_a_transcoder_is_exact(relu_bridge, graph):
    tcs = {layer: exact_transcoder(relu_bridge, layer) for layer in range(RELU_MODEL.n_layers)}
    one = evaluate_transcoder(tcs[1], relu_bridge, graph)
    both = evaluate_replacement(tcs, relu_bridge, graph)
    for m in (one, both):
        assert m.fvu < 1e-20
        assert m.accuracy_spliced == m.accuracy_clean
        assert m.loss_spliced == pytest.approx(m.loss_clean, abs=1e-10)
        assert m.loss_recovered == pytest.approx(1.0, abs=1e-9)
        assert abs(m.loss_zero - m.loss_clean) > 1e-3  # the baseline really differs, so recovery is not vacuous


def test_splicing_every_mlp_changes_the_logits_unless_the_transcoders_are_exact(relu_bridge, graph):
    tokens = torch.tensor([graph.vocab.encode(list(ex.input_tokens)) for ex in graph.examples("test_id")[:6]])
    clean = run_with_interventions(relu_bridge, tokens)
    tcs = {layer: exact_transcoder(relu_bridge, layer) for layer in range(RELU_MODEL.n_layers)}
    torch.testing.assert_close(
        run_with_interventions(relu_bridge, tokens, splice_interventions(tcs)), clean, atol=1e-10, rtol=0
    )
    with torch.no_grad():
        tcs[0].b_dec[0] += 0.5  # not a uniform shift, which LayerNorm would centre away
    assert (run_with_interventions(relu_bridge, tokens, splice_interventions(tcs)) - clean).abs().max() > 1e-3


# ----------------------------------------------------------------------------- training
def test_training_predicts_the_mlp_output_far_better_than_its_mean(trained, bridge, graph):
    assert sorted(trained) == [0, 1, 2]
    for layer, result in trained.items():
        tc = result.dictionary
        assert (tc.hook_name, tc.hook_name_out) == (
            f"blocks.{layer}.ln2.hook_normalized",
            f"blocks.{layer}.hook_mlp_out",
        )
        m = evaluate_transcoder(tc, bridge, graph)
        assert m.fvu < 0.5  # the mean (b_dec alone) has FVU 1
        assert m.l0 == pytest.approx(4.0)  # TopK: exactly k per row
        assert m.fvu == pytest.approx(result.history[-1]["fvu"], rel=0.5)
        assert m.loss_recovered > 0


def test_save_and_load_round_trip_and_refuse_other_models(trained, bridge, bridge64, tmp_path):
    tcs = {layer: r.dictionary for layer, r in trained.items()}
    save_transcoders(tcs, tmp_path / "set")
    index = json.loads((tmp_path / "set" / "transcoders.json").read_text())
    assert (index["feature_input_hook"], index["feature_output_hook"], index["layers"]) == (
        "ln2.hook_normalized",
        "hook_mlp_out",
        [0, 1, 2],
    )
    cfg = json.loads((tmp_path / "set" / "layer_1" / "cfg.json").read_text())
    assert (cfg["hook_name_out"], cfg["d_out"], cfg["metadata"]["model_fingerprint"]) == (
        "blocks.1.hook_mlp_out",
        32,
        tcs[1].meta["model_fingerprint"],
    )
    loaded = load_transcoders(tmp_path / "set", bridge)
    x = torch.randn(7, 32)
    for layer, tc in tcs.items():
        torch.testing.assert_close(loaded[layer](x), tc(x), atol=0, rtol=0)
    with pytest.raises(DictionaryMismatchError, match="trained on model"):
        load_transcoder(tmp_path / "set" / "layer_0", bridge64)
    with pytest.raises(DictionaryFormatError, match="cfg.json is missing"):
        load_transcoder(tmp_path, bridge)


def test_a_transcoder_for_another_layer_or_hook_is_refused(trained, bridge, tmp_path):
    tc = trained[0].dictionary
    save_transcoder(tc, tmp_path / "tc")
    cfg_file = tmp_path / "tc" / "cfg.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["hook_name_out"] = "blocks.1.hook_mlp_out"  # reads layer 0, writes layer 1
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DictionaryMismatchError, match="of one block"):
        load_transcoder(tmp_path / "tc", bridge)
    cfg["hook_name_out"], cfg["hook_name"] = "blocks.7.hook_mlp_out", "blocks.7.ln2.hook_normalized"
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(UnknownHookError, match="unknown hook 'blocks.7"):
        load_transcoder(tmp_path / "tc", bridge)
