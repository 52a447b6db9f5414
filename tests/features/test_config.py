"""The dictionary config: SAELens names, derived widths, one-line range errors."""

from __future__ import annotations

import pytest

from interp.errors import ConfigError, GrokscopeError
from interp.features import DictionaryConfig

from ..typecheck import unchecked

BAD = {
    # name: (kwargs, text the message must contain)
    "k larger than d_sae": ({"d_sae": 8, "k": 9}, "k = 9 is larger than the dictionary's width d_sae = 8"),
    "k larger than the expanded width": ({"d_in": 4, "expansion_factor": 2, "k": 9}, "d_sae = 8"),
    "d_sae below 1": ({"d_sae": 0}, "d_sae = 0 is out of range"),
    "k below 1": ({"k": 0}, "k = 0 is out of range"),
    "architecture": ({"architecture": "gated"}, "architecture = 'gated' is not allowed"),
    "lr": ({"lr": 0.0}, "lr = 0.0 is out of range"),
    "no length": ({"steps": None}, "set steps or epochs"),
    "split": ({"splits": ("train", "dev")}, "unknown split 'dev'"),
    "no splits": ({"splits": ()}, "splits is empty"),
    "no positions": ({"positions": ()}, "positions is empty"),
    "negative position": ({"positions": (-1,)}, "position -1 must be an index >= 0"),
    "repeated position": ({"positions": (1, 1)}, "repeat an entry"),
    "bandwidth": ({"architecture": "jumprelu", "jumprelu_bandwidth": 0.0}, "jumprelu_bandwidth = 0.0 is out of range"),
    "hook": ({"hook_name": ""}, "hook_name must be a TransformerLens hook name"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_is_one_line(name, one_line):
    kwargs, text = BAD[name]
    kwargs = {"hook_name": "blocks.0.hook_resid_post", **kwargs}
    with pytest.raises(ConfigError) as err, unchecked(name == "architecture"):  # an unknown Literal option
        DictionaryConfig(**kwargs)
    assert isinstance(err.value, GrokscopeError)
    assert text in one_line(err.value)


def test_jumprelu_has_no_k_limit():
    """JumpReLU's sparsity comes from its L0 penalty: k is not checked against the width."""
    assert DictionaryConfig("blocks.0.hook_resid_post", d_sae=4, k=16, architecture="jumprelu").d_sae == 4


def test_resolved_width_and_steps():
    cfg = DictionaryConfig("blocks.0.hook_resid_post", expansion_factor=4, epochs=2.0, batch_size=100)
    r = cfg.resolved(32)
    assert (r.d_in, r.d_sae) == (32, 128)
    assert r.n_steps(1000) == 20  # two passes of ten batches
    assert DictionaryConfig("x", d_sae=7, k=4).resolved(3).d_sae == 7


def test_dict_round_trip_and_unknown_field(one_line):
    cfg = DictionaryConfig("blocks.0.hook_resid_post", d_in=8, positions=(1, "r1"), splits=("train",))
    assert DictionaryConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as err:
        DictionaryConfig.from_dict({**cfg.to_dict(), "l1_coefficient": 1.0})
    assert "unknown field l1_coefficient" in one_line(err.value)
