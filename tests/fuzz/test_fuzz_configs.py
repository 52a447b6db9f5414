"""Fuzzing run configs: YAML / JSON files and ``--set`` overrides give a valid RunConfig or one line to fix.

Files: a preset written as YAML or JSON with a field replaced by any JSON-like value,
an unknown or non-string key added, lines replaced, bytes inserted (non-UTF-8 too) or the
text cut short. Overrides: dotted keys of every section (and near misses) with any value
text. A config that loads is sound (its dict form loads back equal); a refusal is a
:class:`ConfigError` whose one line starts with the file's path (for a file).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from interp.errors import ConfigError
from interp.train import RunConfig, load_run_config, presets
from tests.fuzz.conftest import check_error

PRESET = "composition-tiny"
BASE = presets()[PRESET].to_dict()
LEAVES = [(section, key) for section in ("data", "model", "train") for key in BASE[section]]

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def loads_back(cfg: RunConfig) -> None:
    assert isinstance(cfg, RunConfig)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@st.composite
def config_text(draw):
    data = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["leaf", "unknown", "section"]))
        if kind == "leaf":
            section, key = draw(st.sampled_from(LEAVES))
            if isinstance(data.get(section), dict):
                data[section][key] = draw(VALUES)
        elif kind == "unknown":
            target = draw(st.sampled_from(["", "data", "model", "train"]))
            key = draw(st.text(max_size=6) | st.integers(-3, 3) | st.booleans())
            (data[target] if target and isinstance(data.get(target), dict) else data)[key] = draw(VALUES)
        else:
            data[draw(st.sampled_from(["data", "model", "train", "name", "data_dir"]))] = draw(VALUES)
    as_json = draw(st.booleans())
    text = json.dumps(data, indent=1, default=str) if as_json else yaml.safe_dump(data, allow_unicode=True)
    raw = text.encode("utf-8")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["cut", "bytes", "line"]))
        if how == "cut":
            raw = raw[:at]
        elif how == "bytes":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=6)) + raw[at:]
        else:
            lines = raw.split(b"\n")
            lines[at % len(lines)] = draw(st.text(max_size=30)).encode("utf-8")
            raw = b"\n".join(lines)
    return (".json" if as_json else ".yaml"), raw


@given(config_text())
def test_config_files_load_or_fail_in_one_line_naming_the_file(file):
    suffix, raw = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"run{suffix}"
        path.write_bytes(raw)
        try:
            cfg = load_run_config(str(path))
        except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
            assert isinstance(err, ConfigError), f"{type(err).__name__}: {err}"
            check_error(err, path)
        else:
            loads_back(cfg)


KEYS = st.sampled_from(
    [f"{s}.{k}" for s, k in LEAVES] + ["name", "train", "train.", "model.nope", "data.x.y", "lr", ""]
)
OVERRIDE = st.builds(
    lambda k, sep, v: f"{k}{sep}{v}",
    KEYS | st.text(max_size=8),
    st.sampled_from(["=", "", "=="]),
    st.text(max_size=10) | st.sampled_from(["nan", "inf", "-1", "1e400", "0", "true", "none", "1,2", "3.5"]),
)


@given(st.lists(OVERRIDE, max_size=4))
def test_overrides_apply_or_fail_in_one_line(overrides):
    try:
        cfg = load_run_config(PRESET, overrides)
    except Exception as err:  # noqa: BLE001
        assert isinstance(err, ConfigError), f"{type(err).__name__}: {err}"
        msg = str(err)
        assert msg and "\n" not in msg and "\r" not in msg, msg
    else:
        loads_back(cfg)
