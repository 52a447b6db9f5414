"""The one JSON reader: every way a file can be wrong is one line, of the caller's error class, naming the path."""

from __future__ import annotations

import pytest

from interp.errors import CheckpointError, DatasetFormatError, GrokscopeError
from interp.io import atomic_write_json, read_json, read_json_lines


class MyError(GrokscopeError):
    pass


def test_a_good_file_reads_back_what_was_written(tmp_path):
    value = {"a": [1, 2.5, None, True], "b": {"c": "é"}}
    path = atomic_write_json(tmp_path / "x.json", value, indent=2)
    assert read_json(path, MyError) == read_json(path, MyError, expect=dict) == value
    (tmp_path / "rows.jsonl").write_text('{"step": 1}\n\n{"step": 2}\n', encoding="utf-8")
    assert read_json_lines(tmp_path / "rows.jsonl", MyError) == [(1, {"step": 1}), (3, {"step": 2})]


CASES = {
    "missing": (None, "{path} does not exist"),
    "not UTF-8": (b'{"a": "\xff"}', "{path}: not UTF-8 text (invalid start byte at byte 7)"),
    "not JSON": (b'{\n  "a": 1,\n  "b" 2\n}', "{path}:3: not valid JSON (Expecting ':' delimiter, column 7)"),
    "empty": (b"", "{path}:1: not valid JSON (Expecting value, column 1)"),
    "too deep": (b"[" * 100_000 + b"]" * 100_000, "{path}: nested too deeply to be a state file"),
    "wrong type": (b"[1, 2]", "{path}: a state file must be a JSON object, not array"),
    "null": (b"null", "{path}: a state file must be a JSON object, not null"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_damage_is_one_line_of_the_callers_class(tmp_path, one_line, case):
    content, expected = CASES[case]
    path = tmp_path / "state.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_json(path, CheckpointError, what="state file", expect=dict)
    assert one_line(err.value) == expected.format(path=path)


def test_the_caller_words_a_syntax_error_and_adds_a_hint(tmp_path, one_line):
    path = tmp_path / "manifest.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(MyError) as err:
        read_json(path, MyError, invalid="corrupted cache manifest", hint="delete it")
    assert (
        one_line(err.value)
        == f"{path}:1: corrupted cache manifest (Expecting property name enclosed in double quotes, column 2); delete it"
    )
    with pytest.raises(MyError, match="is a folder, not a file; delete it"):
        read_json(tmp_path, MyError, hint="delete it")


def test_number_types_are_json_types(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("true", encoding="utf-8")
    with pytest.raises(MyError, match="a file must be a JSON number, not boolean"):
        read_json(path, MyError, what="file", expect=int)
    path.write_text("2.5", encoding="utf-8")
    assert read_json(path, MyError, expect=(int, float)) == 2.5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"step": 1}\n{"step": 2\n', "{path}:2: corrupted row (Expecting ',' delimiter, column 11)"),
        (b'{"step": 1}\n\n[3]\n', "{path}:3: a metrics row must be a JSON object, not array"),
        (b'{"step": 1}\n\xfe\n', "{path}:2: not UTF-8 text (invalid start byte at byte 0)"),
        (b'{"step": 1}\n{"a":\n1}\n', "{path}:2: corrupted row (Expecting value, column 6)"),
    ],
)
def test_json_lines_name_the_line(tmp_path, one_line, content, expected):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetFormatError) as err:
        read_json_lines(path, DatasetFormatError, what="metrics row", invalid="corrupted row")
    assert one_line(err.value) == expected.format(path=path)
