"""Hypothesis profiles for the fuzz tests of every reader of outside input, and their shared checks.

``grokscope-fuzz`` (the default) runs a bounded number of examples per test, derandomized
(the same examples on every run, no example database), so that ``pytest`` in CI is fast
and reproducible; ``HYPOTHESIS_PROFILE=slow pytest tests/fuzz`` runs many more, still
derandomized. Neither profile has a deadline (a loaded machine must not fail a test).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hypothesis import HealthCheck, settings

from interp.errors import GrokscopeError

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
settings.register_profile("grokscope-fuzz", max_examples=25, **_COMMON)
settings.register_profile("slow", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "grokscope-fuzz"))


def check_error(err: BaseException, where: Path | str, *, line: bool = False) -> str:
    """``err`` is grokscope's own error, with a one-line message that starts by naming a path under ``where``.

    With ``line``, the path is followed by ``:LINE``.
    """
    assert isinstance(err, GrokscopeError), f"{type(err).__name__} is not a GrokscopeError: {err}"
    msg = str(err)
    assert msg and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert msg.startswith(str(where)), f"does not name the file under {where}: {msg}"
    if line:
        rest = msg[len(str(where)) :].split(":", 2)
        assert len(rest) >= 2 and rest[1].isdigit(), f"no :LINE after the path: {msg}"
    return msg


def damage_bytes(path: Path, kind: str, where: float, blob: bytes, text: str) -> bool:
    """Damage ``path`` by ``kind``: ``truncate`` it at ``where`` (a fraction), insert ``blob`` there (``bytes``),
    replace the line there by ``text`` (``line``) or ``remove`` it. False (nothing done) for any other kind."""
    data = path.read_bytes()
    cut = int(where * len(data))
    if kind == "truncate":
        path.write_bytes(data[:cut])
    elif kind == "bytes":
        path.write_bytes(data[:cut] + blob + data[cut:])
    elif kind == "line":
        lines = data.split(b"\n")
        lines[min(int(where * len(lines)), len(lines) - 1)] = text.encode("utf-8")
        path.write_bytes(b"\n".join(lines))
    elif kind == "remove":
        path.unlink()
    else:
        return False
    return True


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (a reader must leave it as it found it)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
