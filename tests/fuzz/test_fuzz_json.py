"""Fuzzing the one JSON reader: any bytes give a value of the expected type or one line naming the file.

The inputs are JSON values written out and then damaged (cut short, bytes inserted, a line
replaced), and raw bytes; ``read_json`` and ``read_json_lines`` return what a strict
reading gives or raise the caller's GrokscopeError whose one line starts with the path
(``path:LINE`` for a syntax error).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from interp.errors import GrokscopeError
from interp.io import read_json, read_json_lines
from tests.fuzz.conftest import check_error, damage_bytes
from tests.fuzz.test_fuzz_configs import VALUES


class FuzzError(GrokscopeError):
    pass


def _content(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    values = draw(st.lists(VALUES, min_size=1, max_size=4))
    return "\n".join(json.dumps(v, indent=draw(st.sampled_from([None, 1]))) for v in values).encode("utf-8")


@st.composite
def damaged(draw) -> bytes:
    data = _content(draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(data)
        kind = draw(st.sampled_from(["truncate", "bytes", "line", "none"]))
        damage_bytes(
            path, kind, draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=8)), draw(st.text(max_size=10))
        )
        return path.read_bytes()


@given(damaged(), st.sampled_from([None, dict, list, (dict, list)]))
def test_read_json_returns_the_value_or_one_line(data, expect):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.json"
        path.write_bytes(data)
        try:
            value = read_json(path, FuzzError, expect=expect)
        except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
            assert isinstance(err, FuzzError)
            check_error(err, path)
            return
        assert value == json.loads(data.decode("utf-8")) or value != value  # NaN is not equal to itself
        if expect is not None:
            assert isinstance(value, expect)


@given(damaged())
def test_read_json_lines_returns_rows_or_one_line(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_bytes(data)
        try:
            rows = read_json_lines(path, FuzzError)
        except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
            assert isinstance(err, FuzzError)
            msg = check_error(err, path)
            if "not valid JSON" in msg or "not UTF-8" in msg:
                check_error(err, path, line=True)
            return
        lines = data.split(b"\n")
        assert [line for line, _ in rows] == [i + 1 for i, raw in enumerate(lines) if raw.strip()]
        assert all(isinstance(row, dict) for _, row in rows)
