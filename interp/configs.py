"""Typed configuration plumbing shared by every config dataclass in grokscope.

Each concern (data, model, training, analysis) is one dataclass; a run config nests
them. This module turns plain dictionaries (from YAML, JSON or a checkpoint) and
``key=value`` overrides from the command line into those dataclasses, checking every
field's type on the way, so that a typo or a wrong type fails at load time with a
one-line :class:`~interp.errors.ConfigError` that names the field.

Range checks live in each dataclass's ``__post_init__`` (use :func:`check_range`), so
they run however the config was built.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from interp.errors import ConfigError
from interp.io import read_text

T = TypeVar("T")


def check_range(
    name: str,
    value: float | int,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise a one-line ConfigError unless ``low (<|<=) value (<|<=) high``."""
    ok = True
    if low is not None:
        ok &= value > low if low_open else value >= low
    if high is not None:
        ok &= value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ConfigError(f"{name} = {value!r} is out of range; allowed: {interval}")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(name: str, tp: Any, value: Any, *, from_string: bool) -> Any:
    """Check (and, for command-line strings, convert) ``value`` against the annotation ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{name} = {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None or (from_string and value in ("none", "None", "null")):
            if type(None) in args:
                return None
            raise ConfigError(f"{name} must be set; got None")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, arg, value, from_string=from_string)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{name}: bad value {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        if from_string and isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list; got {value!r}")
        items = [_coerce(f"{name}[{i}]", item_tp, v, from_string=from_string) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping; got {value!r}")
        return dict(value)
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of {tp.__name__} fields; got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_string and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false; got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer; got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if from_string and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number; got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if from_string and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be a number; got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string; got {value!r}")
    return value


def field_name(prefix: str, key: Any) -> str:
    """``prefix + key`` as a message shows it: as is when printable, else quoted (one line whatever the key)."""
    name = f"{prefix}{key}"
    return name if name.isprintable() else repr(name)


def from_dict(cls: type[T], data: Any, *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping, rejecting unknown keys and wrong types (and a non-mapping)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__} must be a mapping of fields; got {data!r:.60}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=repr)  # YAML keys need not be strings
    if unknown:
        raise ConfigError(
            f"unknown field {field_name(prefix, unknown[0])} in {cls.__name__}; known fields: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(f"{prefix}{k}", hints[k], v, from_string=False) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain JSON-ready mapping of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def apply_overrides(obj: T, overrides: list[str] | tuple[str, ...], *, prefix: str = "") -> T:
    """Return a copy of config ``obj`` with ``key=value`` (dotted keys for nested) applied.

    Values are parsed against the field's annotation: ``--set n_entities=300``,
    ``--set train.lr=1e-3``, ``--set model.share_layers=true``.
    """
    data = dataclasses.asdict(obj)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (for example n_entities=300)")
        key, raw = item.split("=", 1)
        key = key.strip()
        path = key.split(".")
        key = prefix + key
        cls: Any = type(obj)
        target = data
        for depth, part in enumerate(path):
            hints = typing.get_type_hints(cls)
            if part not in hints:
                known = ", ".join(sorted(hints))
                raise ConfigError(f"unknown field {key!r} in {cls.__name__}; known fields: {known}")
            if depth == len(path) - 1:
                target[part] = _coerce(key, hints[part], raw.strip(), from_string=True)
            else:
                cls = hints[part]
                if not _is_dataclass_type(cls):
                    raise ConfigError(
                        f"{prefix}{'.'.join(path[: depth + 1])} has no sub-fields; use {prefix}{path[0]}=VALUE"
                    )
                target = target[part]
    return from_dict(type(obj), data, prefix=prefix)


def _yaml_loader() -> type:
    """PyYAML's safe loader, reading ``1e-05`` as a float (YAML 1.2 and JSON do; YAML 1.1 needs a dot)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"
        ),
        list("-+0123456789."),
    )
    return Loader


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a mapping (one-line error on bad syntax)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = read_text(path, ConfigError)
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())  # one line
        raise ConfigError(f"{path}{where}: not valid YAML/JSON ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of fields at the top level")
    return data
