"""Skip transcoders and dead-feature resampling: the skip term trains, folds and saves; old files read as before."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import ConfigError
from interp.features import (
    Transcoder,
    TranscoderConfig,
    evaluate_replacement,
    load_transcoders,
    save_transcoders,
    train_transcoder,
)
from interp.features.resample import resample_dead
from interp.features.transcoder import LEGACY


def test_configs_without_the_new_fields_read_as_before_and_save_without_them():
    old = TranscoderConfig.for_layer(1, k=4, **LEGACY).to_dict()
    assert not set(LEGACY) & set(old)  # a transcoder as format 1 knew them: its cfg.json has only format 1's fields
    read = TranscoderConfig.from_dict(old)
    assert (read.skip, read.resample_every, read.cross_layer) == (False, None, False)
    new = TranscoderConfig.for_layer(1, k=4)
    assert new.skip is True and new.to_dict()["skip"] is True
    assert TranscoderConfig.from_dict(new.to_dict()) == new
    with pytest.raises(ConfigError, match="cross_layer=True"):
        TranscoderConfig.for_layer(0, n_layers=3)
    with pytest.raises(ConfigError, match="resample_every"):
        TranscoderConfig.for_layer(0, resample_every=0)


def test_the_skip_term_takes_the_linear_part_of_a_map():
    """Target = a linear map of the input plus one sparse feature: the skip term learns the linear map."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=gen)
    lin = torch.randn(8, 6, generator=gen) / 3
    y = x @ lin + torch.relu(x[:, :1]) * torch.randn(6, generator=gen)
    base = dict(d_sae=16, k=2, architecture="topk", steps=400, batch_size=512, lr=1e-2)
    with_skip = train_transcoder(TranscoderConfig.for_layer(0, **base), x, y)
    without = train_transcoder(TranscoderConfig.for_layer(0, skip=False, **base), x, y)
    assert with_skip.history[-1]["fvu"] < 0.25 * without.history[-1]["fvu"], (
        with_skip.history[-1],
        without.history[-1],
    )
    tc = with_skip.dictionary
    torch.testing.assert_close(tc(x), tc.decode(tc.encode(x)) + x @ tc.W_skip)
    assert without.dictionary.W_skip is None
    # the scales are folded in: the saved transcoder reads raw activations
    fvu = float((tc(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    assert fvu == pytest.approx(with_skip.history[-1]["fvu"], rel=0.3, abs=0.02)


def test_skip_transcoders_save_load_and_splice(bridge, graph, tmp_path):
    d = bridge.cfg.d_model
    tcs = {}
    for layer in range(len(bridge.blocks)):
        tc = Transcoder(TranscoderConfig.for_layer(layer, d_in=d, d_sae=2 * d, d_out=d, k=4)).initialize(seed=layer)
        with torch.no_grad():
            tc.W_skip.normal_(0, 0.1, generator=torch.Generator().manual_seed(layer))
        tcs[layer] = tc.eval().requires_grad_(False)
    folder = save_transcoders(tcs, tmp_path / "set")
    assert json.loads((folder / "layer_0" / "cfg.json").read_text())["skip"] is True
    loaded = load_transcoders(folder, bridge)
    x = torch.randn(5, d)
    for layer, tc in tcs.items():
        torch.testing.assert_close(loaded[layer](x), tc(x), atol=0, rtol=0)
    m = evaluate_replacement(loaded, bridge, graph)
    no_skip = {L: tc for L, tc in loaded.items()}
    for tc in no_skip.values():
        tc.W_skip.zero_()
    assert m.loss_spliced != evaluate_replacement(no_skip, bridge, graph).loss_spliced  # the splice uses the skip


def test_resampling_revives_features_that_can_never_fire():
    cfg = TranscoderConfig.for_layer(0, d_in=8, d_sae=32, d_out=8, k=2, architecture="batchtopk", skip=False)
    tc = Transcoder(cfg).initialize(seed=0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=gen)
    error = torch.randn(256, 8, generator=gen)
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:10] = True
    with torch.no_grad():
        tc.b_enc[:10] = -100.0  # negative pre-activation everywhere: no gradient can reach them
    assert bool((tc.pre_acts(x)[:, :10] < 0).all())
    kept = tc.W_enc[:, 10:].clone()
    assert resample_dead(tc, x, error, dead) == 10
    assert bool((tc.pre_acts(x)[:, :10] > 0).any(0).all())  # each fires on its own row at least
    torch.testing.assert_close(tc.W_dec.norm(dim=-1), torch.ones(32))
    assert torch.equal(tc.W_enc[:, 10:], kept)  # live features untouched
