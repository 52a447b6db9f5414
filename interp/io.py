"""Files: atomic writes, and one reader of JSON and JSON lines with one-line errors.

Every file is written to a temporary sibling and renamed into place (``os.replace`` is
atomic on POSIX), so a crash or ``kill -9`` leaves either the old file or the new one.

Every JSON file grokscope reads (datasets, run configs, ``metrics.jsonl``, checkpoint
states, dictionary configs, graph and circuit JSON, cache manifests, ``progress.jsonl``)
goes through :func:`read_json` or :func:`read_json_lines`: a missing file, bytes that are
not UTF-8, text that is not JSON (with ``path:line``), nesting too deep to parse, and a
top level of the wrong type each raise one line that starts with the path, of the
:class:`~interp.errors.GrokscopeError` subclass the caller names::

    state = read_json(folder / "state.json", CheckpointError, what="checkpoint state", expect=dict)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from interp.errors import GrokscopeError

JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (stable key order, so same input gives same bytes)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------- reading
def read_bytes(path: str | Path, error: type[GrokscopeError], *, hint: str = "") -> bytes:
    """The bytes of ``path``; one line of ``error`` when it is missing, a folder or unreadable (``hint`` appended)."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.exists():
        raise error(f"{path} does not exist{tail}")
    if path.is_dir():
        raise error(f"{path} is a folder, not a file{tail}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err}){tail}") from None


def _decode(raw: bytes, where: str, error: type[GrokscopeError]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_text(path: str | Path, error: type[GrokscopeError], *, hint: str = "") -> str:
    """The UTF-8 text of ``path``; one line of ``error`` naming the path when it is missing or not UTF-8."""
    return _decode(read_bytes(path, error, hint=hint), str(path), error)


def _json_type(value: Any) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value), type(value).__name__)


def parse_json(
    text: str,
    where: str,
    error: type[GrokscopeError],
    *,
    what: str = "JSON file",
    expect: type | tuple[type, ...] | None = None,
    invalid: str = "not valid JSON",
    hint: str = "",
    line: int | None = None,
) -> Any:
    """``text`` parsed as JSON; one line of ``error`` starting with ``where`` (a path) otherwise.

    A syntax error is placed at ``where:LINE`` (``line``: the file line ``text`` starts on,
    for one row of a JSON-lines file) and described by ``invalid``; nesting too deep and a
    top level not of the type(s) ``expect`` are refused too (``what`` names the file in
    their messages). ``hint`` (how to fix it) ends every message.
    """
    tail = f"; {hint}" if hint else ""
    at = where if line is None else f"{where}:{line}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(
            f"{where}:{(line or 1) + err.lineno - 1}: {invalid} ({err.msg}, column {err.colno}){tail}"
        ) from None
    except RecursionError:
        raise error(f"{at}: nested too deeply to be a {what}{tail}") from None
    types = expect if isinstance(expect, tuple) else (expect,)
    if expect is not None and _json_type(value) not in {JSON_TYPES.get(t) for t in types}:
        wanted = " or ".join(dict.fromkeys(JSON_TYPES.get(t, t.__name__) for t in types))
        raise error(f"{at}: a {what} must be a JSON {wanted}, not {_json_type(value)}{tail}")
    return value


def read_json(
    path: str | Path,
    error: type[GrokscopeError],
    *,
    what: str = "JSON file",
    expect: type | tuple[type, ...] | None = None,
    invalid: str = "not valid JSON",
    hint: str = "",
) -> Any:
    """The JSON value in ``path``; one line of ``error`` (the caller's class) starting with the path otherwise.

    Refused: a missing file or a folder, bytes that are not UTF-8, text that is not JSON
    (``path:LINE: {invalid} (...)``), nesting too deep, and a top level that is not of the
    type(s) ``expect`` (``what`` names the file in that message). ``hint`` (how to fix it)
    ends every message.
    """
    text = read_text(path, error, hint=hint)
    return parse_json(text, str(path), error, what=what, expect=expect, invalid=invalid, hint=hint)


def read_json_lines(
    path: str | Path,
    error: type[GrokscopeError],
    *,
    what: str = "row",
    expect: type | tuple[type, ...] | None = dict,
    invalid: str = "not valid JSON",
    hint: str = "",
) -> list[tuple[int, Any]]:
    """The rows of a JSON-lines file as ``(line, value)`` pairs, blank lines skipped, each of type ``expect``
    (None: any); the refusals of :func:`read_json`, each at ``path:LINE``."""
    rows = []
    for line, raw in enumerate(read_bytes(path, error, hint=hint).split(b"\n"), 1):
        if raw.strip():
            text = _decode(raw, f"{path}:{line}", error)
            value = parse_json(text, str(path), error, what=what, expect=expect, invalid=invalid, hint=hint, line=line)
            rows.append((line, value))
    return rows
