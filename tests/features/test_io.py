"""Saving and loading: SAELens's file names, identical tensors and outputs, one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from interp.features import (
    DictionaryConfig,
    DictionaryFormatError,
    DictionaryMismatchError,
    load_dictionary,
    model_fingerprint,
    save_dictionary,
    train_dictionary,
)
from interp.intervene import UnknownHookError

from ..tiny import tiny_bridge
from .conftest import SITE


@pytest.fixture(scope="module")
def trained(resid_acts, bridge):
    """A small trained dictionary of each architecture, tagged with the tiny model's fingerprint."""
    meta = {"model_fingerprint": model_fingerprint(bridge), "run_dir": "/runs/tiny", "step": 7}
    return {
        arch: train_dictionary(
            DictionaryConfig(SITE, architecture=arch, k=4, expansion_factor=2, steps=30, batch_size=256),
            resid_acts,
            meta=meta,
        ).dictionary
        for arch in ("topk", "batchtopk", "jumprelu")
    }


@pytest.mark.parametrize("architecture", ("topk", "batchtopk", "jumprelu"))
def test_round_trip_is_identical(trained, resid_acts, bridge, tmp_path, architecture):
    sae = trained[architecture]
    folder = save_dictionary(sae, tmp_path / "sae")
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]  # no temporary left
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == architecture and cfg["d_in"] == 32 and cfg["d_sae"] == 64 and cfg["hook_name"] == SITE
    loaded = load_dictionary(folder, bridge)
    assert loaded.cfg == sae.cfg and loaded.meta == sae.meta
    assert loaded.tensors().keys() == sae.tensors().keys()
    for name, t in sae.tensors().items():
        assert torch.equal(loaded.tensors()[name], t), name
    assert torch.equal(loaded(resid_acts.acts), sae(resid_acts.acts))


def test_saving_again_replaces(trained, tmp_path):
    folder = save_dictionary(trained["topk"], tmp_path / "sae")
    save_dictionary(trained["jumprelu"], folder)
    assert load_dictionary(folder).architecture == "jumprelu"


def test_another_model_is_refused(trained, graph, tmp_path, one_line):
    folder = save_dictionary(trained["topk"], tmp_path / "sae")
    other = tiny_bridge(graph, 5, seed=3)  # same architecture, other weights
    with pytest.raises(DictionaryMismatchError) as err:
        load_dictionary(folder, other)
    msg = one_line(err.value)
    assert "was trained on model" in msg and "/runs/tiny, step 7" in msg
    assert load_dictionary(folder, other, check_weights=False).d_in == 32


def test_another_site_is_refused(trained, bridge, tmp_path, one_line):
    sae = trained["topk"]
    for hook, error, text in (
        ("blocks.0.mlp.hook_post", DictionaryMismatchError, "blocks.0.mlp.hook_post of this model is 128 wide"),
        ("blocks.7.hook_resid_post", UnknownHookError, "unknown hook 'blocks.7.hook_resid_post'"),
    ):
        folder = tmp_path / hook
        save_dictionary(sae, folder)
        data = json.loads((folder / "cfg.json").read_text())
        (folder / "cfg.json").write_text(json.dumps({**data, "hook_name": hook}))
        with pytest.raises(error) as err:
            load_dictionary(folder, bridge)
        assert text in one_line(err.value)


def _corrupt(folder, how):
    cfg = folder / "cfg.json"
    data = json.loads(cfg.read_text())
    if how == "not json":
        cfg.write_text("{not json")
    elif how == "not a dictionary config":
        cfg.write_text(json.dumps({"model": "gpt2"}))
    elif how == "unknown field":
        cfg.write_text(json.dumps({**data, "l1_coefficient": 5}))
    elif how == "wrong type":
        cfg.write_text(json.dumps({**data, "d_sae": "wide"}))
    elif how == "k above width":
        cfg.write_text(json.dumps({**data, "k": 1000}))
    elif how == "width disagrees with the weights":
        cfg.write_text(json.dumps({**data, "d_sae": 65}))
    elif how == "weights not safetensors":
        (folder / "sae_weights.safetensors").write_bytes(b"\x80\x04pickle")
    elif how == "weights missing":
        (folder / "sae_weights.safetensors").unlink()
    elif how == "cfg missing":
        cfg.unlink()


CORRUPTIONS = {
    "not json": "not valid JSON",
    "not a dictionary config": "not a grokscope dictionary config",
    "unknown field": "unknown field l1_coefficient",
    "wrong type": "d_sae must be an integer",
    "k above width": "k = 1000 is larger than the dictionary's width",
    "width disagrees with the weights": "do not match the config's",
    "weights not safetensors": "cannot be read as safetensors",
    "weights missing": "is missing; the dictionary folder is incomplete",
    "cfg missing": "cfg.json is missing",
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_a_folder_not_in_the_schema_is_one_line(trained, tmp_path, one_line, how):
    folder = save_dictionary(trained["batchtopk"], tmp_path / "sae")
    _corrupt(folder, how)
    with pytest.raises(DictionaryFormatError) as err:
        load_dictionary(folder)
    assert CORRUPTIONS[how] in one_line(err.value)


def test_fingerprint_ignores_precision_not_weights(graph, bridge, bridge64):
    assert model_fingerprint(bridge) == model_fingerprint(tiny_bridge(graph, 5))
    assert model_fingerprint(bridge) != model_fingerprint(bridge64)  # bridge64 has other weights (seed 1)
    assert model_fingerprint(bridge) == model_fingerprint(tiny_bridge(graph, 5, dtype=torch.float64))
