"""The dictionary family is one interface: a registry of classes, one loop that trains every member.

Toy data with a known sparse structure: each row is a non-negative combination of two of
24 random unit directions, so a dictionary of 64 features can reconstruct it, and a
transcoder can predict a second, linear read-out of the same sparse code.
"""

from __future__ import annotations

import copy

import pytest
import torch

from interp.features import (
    ARCHITECTURES,
    BatchTopKDictionary,
    BatchTopKTranscoder,
    DictionaryConfig,
    DictionaryMismatchError,
    FeatureError,
    JumpReLUDictionary,
    JumpReLUTranscoder,
    SparseDictionary,
    TopKDictionary,
    TopKTranscoder,
    Transcoder,
    TranscoderConfig,
    fit,
    reconstruction_metrics,
)

from .conftest import SITE

CLASSES = {
    "topk": (TopKDictionary, TopKTranscoder),
    "batchtopk": (BatchTopKDictionary, BatchTopKTranscoder),
    "jumprelu": (JumpReLUDictionary, JumpReLUTranscoder),
}
TRAIN = {"k": 3, "d_sae": 64, "steps": 300, "batch_size": 256, "lr": 1e-2, "l0_coefficient": 0.1}


@pytest.fixture(scope="module")
def toy() -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``x`` (2,000 rows of width 16) and targets ``y`` (width 12) driven by one sparse code."""
    gen = torch.Generator().manual_seed(0)
    n, n_true = 2000, 24
    code = torch.zeros(n, n_true)
    active = torch.rand(n, n_true, generator=gen).argsort(-1)[:, :2]
    code.scatter_(1, active, 0.5 + torch.rand(n, 2, generator=gen))
    directions = torch.nn.functional.normalize(torch.randn(n_true, 16, generator=gen), dim=-1)
    read_out = torch.nn.functional.normalize(torch.randn(n_true, 12, generator=gen), dim=-1)
    return code @ directions, code @ read_out


def test_the_registries_map_every_architecture_to_its_class():
    assert SparseDictionary.registry == {name: classes[0] for name, classes in CLASSES.items()}
    assert Transcoder.registry == {name: classes[1] for name, classes in CLASSES.items()}
    assert sorted(SparseDictionary.registry) == sorted(ARCHITECTURES)
    for name, (dictionary, transcoder) in CLASSES.items():
        assert SparseDictionary.class_for(name) is dictionary and Transcoder.class_for(name) is transcoder
        assert dictionary.architecture == transcoder.architecture == name
        assert issubclass(transcoder, Transcoder) and issubclass(transcoder, dictionary)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_abstract_classes_build_the_configs_member(architecture):
    sae = SparseDictionary(DictionaryConfig(SITE, d_in=4, d_sae=8, k=2, architecture=architecture))
    tc = Transcoder(TranscoderConfig.for_layer(0, d_in=4, d_sae=8, d_out=3, k=2, architecture=architecture))
    assert type(sae) is CLASSES[architecture][0] and type(tc) is CLASSES[architecture][1]
    assert isinstance(tc, SparseDictionary) and (tc.d_in, tc.d_out) == (4, 3) and sae.d_out == sae.d_in == 4
    assert (sae.hook_name_out, tc.hook_name_out) == (SITE, "blocks.0.hook_mlp_out")
    for module in (sae, tc):  # copies and state dicts keep the class (the abstract class's __new__ picks it)
        clone = copy.deepcopy(module)
        assert type(clone) is type(module)
        clone.load_state_dict(module.state_dict())


def test_an_unknown_architecture_or_the_wrong_class_is_one_line():
    for family in (SparseDictionary, Transcoder):
        with pytest.raises(FeatureError) as err:
            family.class_for("gated")
        assert str(err.value) == "unknown architecture 'gated'; choose one of ['batchtopk', 'jumprelu', 'topk']"
    with pytest.raises(FeatureError, match="TopKDictionary is the 'topk' architecture, not 'jumprelu'") as err:
        TopKDictionary(DictionaryConfig(SITE, d_in=4, d_sae=8, architecture="jumprelu"))
    assert "\n" not in str(err.value)
    with pytest.raises(FeatureError, match="a transcoder needs a TranscoderConfig with d_out"):
        Transcoder(TranscoderConfig.for_layer(0, d_in=4, d_sae=8, k=2))


@pytest.mark.parametrize("kind", ("dictionary", "transcoder"))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_member_trains_through_the_one_loop(toy, architecture, kind):
    x, y = toy
    if kind == "dictionary":
        module = SparseDictionary(DictionaryConfig(SITE, d_in=16, architecture=architecture, **TRAIN))
        target = x
        result = fit(module, x)
    else:
        cfg = TranscoderConfig.for_layer(0, d_in=16, d_out=12, architecture=architecture, **TRAIN)
        module, target = Transcoder(cfg), y
        result = fit(module, x, y)
    trained = result.dictionary
    assert trained is module and type(trained) is CLASSES[architecture][kind == "transcoder"]
    assert not trained.training and not any(p.requires_grad for p in trained.parameters())
    error = (trained(x) - target).pow(2).sum(-1).mean()
    fvu = float(error / (target - target.mean(0)).pow(2).sum(-1).mean())
    assert fvu < 0.1, (architecture, kind, fvu)
    assert result.history[-1]["step"] == 300 and result.history[-1]["fvu"] < 0.15
    if kind == "dictionary":
        assert reconstruction_metrics(trained, x)["fvu"] == pytest.approx(fvu, rel=1e-4)
    l0 = float((trained.encode(x) > 0).sum(-1).float().mean())
    assert 1.0 <= l0 <= 12.0, (architecture, kind, l0)  # sparse: a few of the 64 features per row


def test_fit_refuses_rows_of_another_width_in_one_line(toy):
    x, y = toy
    sae = SparseDictionary(DictionaryConfig(SITE, d_in=12, architecture="topk", **TRAIN))
    with pytest.raises(DictionaryMismatchError, match="maps width 12 to 12; the rows are 16 -> 16 wide"):
        fit(sae, x)
    tc = Transcoder(TranscoderConfig.for_layer(0, d_in=16, d_out=16, architecture="topk", **TRAIN))
    with pytest.raises(DictionaryMismatchError, match="transcoder maps width 16 to 16; the rows are 16 -> 12 wide"):
        fit(tc, x, y)
