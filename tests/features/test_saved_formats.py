"""Files written by an earlier grokscope (format version 1) load, compute what they computed, and save unchanged.

``data/saved_v1`` holds a dictionary of each architecture and a set of two transcoders
(JumpReLU and BatchTopK, ``d_in = 4``, ``d_sae = 8``) with random weights, and in
``expected.safetensors`` an input ``x`` with each one's ``encode(x)`` and ``forward(x)`` as
grokscope computed them when it wrote the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interp.features import load_dictionary, load_transcoders, save_dictionary, save_transcoders

DATA = Path(__file__).parent / "data" / "saved_v1"
META = {"model_fingerprint": "0123456789abcdef", "run_dir": "/runs/tiny", "step": 7}


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "expected.safetensors"))


@pytest.mark.parametrize("architecture", ("topk", "batchtopk", "jumprelu"))
def test_saved_dictionaries_compute_what_they_computed(expected, architecture):
    sae = load_dictionary(DATA / architecture)
    assert (sae.architecture, sae.hook_name, sae.d_in, sae.d_sae, sae.meta) == (
        architecture,
        "blocks.0.hook_resid_post",
        4,
        8,
        META,
    )
    x = expected["x"]
    assert torch.equal(sae.encode(x), expected[f"{architecture}.encode"])
    assert torch.equal(sae(x), expected[f"{architecture}.forward"])


@pytest.mark.parametrize("architecture", ("topk", "batchtopk", "jumprelu"))
def test_saved_dictionaries_save_to_the_same_bytes(tmp_path, architecture):
    folder = save_dictionary(load_dictionary(DATA / architecture), tmp_path / architecture)
    for name in ("cfg.json", "sae_weights.safetensors"):
        assert (folder / name).read_bytes() == (DATA / architecture / name).read_bytes(), name


def test_saved_transcoders_compute_what_they_computed_and_save_the_same(expected, tmp_path):
    tcs = load_transcoders(DATA / "transcoders")
    assert sorted(tcs) == [0, 1]
    assert [tcs[layer].architecture for layer in (0, 1)] == ["jumprelu", "batchtopk"]
    x = expected["x"]
    for layer, tc in tcs.items():
        assert (tc.hook_name, tc.hook_name_out) == (
            f"blocks.{layer}.ln2.hook_normalized",
            f"blocks.{layer}.hook_mlp_out",
        )
        assert torch.equal(tc.encode(x), expected[f"transcoder{layer}.encode"])
        assert torch.equal(tc(x), expected[f"transcoder{layer}.forward"])
    folder = save_transcoders(tcs, tmp_path / "set")
    for name in ("transcoders.json", "layer_0/cfg.json", "layer_1/sae_weights.safetensors"):
        assert (folder / name).read_bytes() == (DATA / "transcoders" / name).read_bytes(), name
