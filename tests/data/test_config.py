"""Data configs: impossible settings fail at once with one line naming the field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from interp.configs import to_dict
from interp.data import (
    DATA_PRESETS,
    ComparisonConfig,
    ComplexConfig,
    CompositionConfig,
    config_from_dict,
    data_config,
    generate,
)
from interp.errors import ConfigError

SMALL = dict(n_entities=200, n_relations=40, out_degree=20, ood_fraction=0.05, test_id_fraction=0.01)


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (CompositionConfig, dict(SMALL, phi=30.0), "phi"),
        (CompositionConfig, dict(SMALL, phi=0.0), "phi"),
        (CompositionConfig, dict(SMALL, out_degree=41), "out_degree"),
        (CompositionConfig, dict(SMALL, ood_fraction=0.0), "ood_fraction"),
        (CompositionConfig, dict(SMALL, ood_fraction=1.0), "ood_fraction"),
        (CompositionConfig, dict(SMALL, test_id_fraction=1.0), "test_id_fraction"),
        (CompositionConfig, dict(SMALL, n_entities=0), "n_entities"),
        (CompositionConfig, dict(SMALL, n_relations=-3), "n_relations"),
        (CompositionConfig, dict(SMALL, probe_size=0), "probe_size"),
        (CompositionConfig, dict(SMALL, n_hops=1), "n_hops"),
        (CompositionConfig, dict(n_hops=4), "n_hops"),  # 2000 * 20**4 chains: over the 20M limit
        (CompositionConfig, dict(SMALL, seed=-1), "seed"),
        (ComparisonConfig, dict(phi=1000.0), "phi"),
        (ComparisonConfig, dict(n_attributes=0), "n_attributes"),
        (ComparisonConfig, dict(ood_fraction=1.0), "ood_fraction"),
        (ComparisonConfig, dict(n_entities=10, ood_fraction=0.1), "ood_fraction"),  # one OOD entity: no pairs
        (ComplexConfig, dict(train_id_ood_fraction=0.0), "train_id_ood_fraction"),
        (ComplexConfig, dict(n_hard_per_label=0), "n_hard_per_label"),
    ],
)
def test_impossible_config_is_one_line_naming_the_field(cls, kwargs, field, one_line):
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    msg = one_line(info.value)
    assert field in msg and "allowed" in msg, msg


def test_phi_message_gives_the_allowed_range(one_line):
    with pytest.raises(ConfigError) as info:
        CompositionConfig(**SMALL, phi=30.0)
    msg = one_line(info.value)
    # 20 * 0.95 * 0.99 = 18.81 ID chains per ID atomic fact
    assert msg.startswith("phi = 30.0 is out of range for this graph; allowed: (0, 18.8]"), msg
    CompositionConfig(**SMALL, phi=18.8)  # the bound itself is allowed


def test_phi_rechecked_exactly_after_generation(one_line):
    # Passes the expected-count check, but this seed's graph has only 7 ID chains left for 8 needed.
    cfg = CompositionConfig(
        n_entities=4,
        n_relations=2,
        out_degree=2,
        ood_fraction=0.25,
        test_id_fraction=0.1,
        phi=1.35,
        probe_size=10,
        seed=3,
    )
    with pytest.raises(ConfigError) as info:
        generate(cfg)
    assert one_line(info.value).startswith("phi = 1.35 is out of range for this graph"), str(info.value)


def test_too_many_hard_queries_is_a_config_error(one_line):
    with pytest.raises(ConfigError) as info:
        generate(data_config("complex-small", ["n_entities=60", "n_attributes=2"]))
    assert one_line(info.value).startswith("n_hard_per_label = 50 is out of range"), str(info.value)


def test_unknown_preset_lists_known_names(one_line):
    with pytest.raises(ConfigError) as info:
        data_config("composition-huge")
    msg = one_line(info.value)
    assert "composition-huge" in msg and all(name in msg for name in DATA_PRESETS)


def test_bad_override_names_the_field(one_line):
    with pytest.raises(ConfigError) as info:
        data_config("composition-small", ["n_entitys=5"])
    assert "n_entitys" in one_line(info.value)
    with pytest.raises(ConfigError) as info:
        data_config("composition-small", ["phi=100"])
    assert one_line(info.value).startswith("phi = 100.0 is out of range")


def test_presets_and_overrides():
    small = data_config("composition-small", ["seed=3", "phi=3.6"])
    assert (small.seed, small.phi, small.n_entities) == (3, 3.6, 200)
    assert DATA_PRESETS["composition-small"].seed == 0  # the preset itself is untouched
    assert data_config("composition") == CompositionConfig()
    assert data_config("comparison") == ComparisonConfig()
    assert data_config("complex") == ComplexConfig()
    assert {cfg.task for cfg in DATA_PRESETS.values()} == {"composition", "comparison", "complex", "algorithmic"}


@pytest.mark.parametrize("name", sorted(DATA_PRESETS))
def test_config_from_dict_round_trip(name):
    cfg = DATA_PRESETS[name]
    assert config_from_dict(to_dict(cfg)) == cfg
    assert type(config_from_dict(to_dict(cfg))) is type(cfg)


def test_config_from_dict_rejects_bad_task_and_fields(one_line):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"task": "arithmetic"})
    assert "task" in one_line(info.value)
    with pytest.raises(ConfigError) as info:
        config_from_dict({"task": "comparison", "n_relations": 3})
    assert "n_relations" in one_line(info.value)
    with pytest.raises(ConfigError):
        config_from_dict(dict(to_dict(CompositionConfig()), phi=-1.0))


def test_configs_validate_however_built():
    with pytest.raises(ConfigError):
        dataclasses.replace(CompositionConfig(), ood_fraction=1.5)


def test_config_files_read_exponent_floats(tmp_path):
    # YAML 1.1 reads 1e-05 as a string; a run's own config.json writes floats that way
    from interp.configs import load_config_file
    from interp.train import RunConfig, load_run_config

    (tmp_path / "run.yaml").write_text(
        "train:\n  lr: 3e-4\n  max_steps: 10\nmodel:\n  layer_norm_eps: 1e-05\n", encoding="utf-8"
    )
    data = load_config_file(tmp_path / "run.yaml")
    assert data["train"]["lr"] == 3e-4 and data["model"]["layer_norm_eps"] == 1e-05 and data["train"]["max_steps"] == 10
    cfg = load_run_config("composition-tiny", ["train.lr=1e-05"])
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert load_run_config(tmp_path / "config.json") == cfg
    assert RunConfig.from_dict(load_config_file(tmp_path / "config.json")) == cfg
