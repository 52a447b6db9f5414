"""The repository is clean under ruff's lint rules and formatter (configured in pyproject.toml), and no
source file outgrows one screenful of modules: 400 lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # ARCHITECTURE.md: "Source files stay under 400 lines"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check():
    proc = _ruff("check")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_ruff_format():
    """Every file is as ``ruff format`` writes it (``ruff format FILE`` fixes one)."""
    proc = _ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_no_source_file_is_over_400_lines():
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.py"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    files = [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]
    assert len(files) > 100, f"git ls-files found only {len(files)} Python files in {ROOT}"
    lengths = {name: len((ROOT / name).read_text(encoding="utf-8").splitlines()) for name in files}
    over = sorted((n, name) for name, n in lengths.items() if n > MAX_LINES)
    assert not over, f"source files over {MAX_LINES} lines (split them along a seam): " + ", ".join(
        f"{name} ({n})" for n, name in reversed(over)
    )
