"""How long the test suite takes a new user: README command 2 from a fresh clone, cold and warm.

Clones the repository's committed HEAD into a temporary folder (no ``.pytest_cache``: the
grokked fixture runs are not cached), then runs, one after the other:

1. README command 2 exactly as the README gives it (venv, install, the whole suite): cold;
2. its pytest part again in the same clone: warm (the cached fixture runs are reused);
3. the README's fast loop (``-m "not slow"``), warm.

Prints one table (wall seconds of each command, and pytest's own count and time) and the
15 slowest tests of the cold run, as pytest printed them.

    python benchmarks/suite_time.py [--repo .] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name, cpu_vector_unit

SUMMARY = re.compile(r"^=*\s*(\d+ passed.*) in ([\d.]+)s", re.M)


def readme_commands(readme: str) -> tuple[str, str]:
    """README command 2 (set-up and the whole suite) and the fast-loop pytest command."""
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    command2 = next(b for b in blocks if b.startswith("# 2.")).splitlines()[1].strip()
    fast = re.search(r"`(\.venv/bin/python -m pytest [^`]*-m \"not slow\"[^`]*)`", readme)
    if fast is None:
        sys.exit('README.md names no fast-loop command (`.venv/bin/python -m pytest ... -m "not slow"`)')
    return command2, fast.group(1)


def run(command: str, cwd: Path, log: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    log.write_text(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"`{command}` exited with {proc.returncode}; its output is in {log}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--keep", type=Path, default=None, help="clone here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if subprocess.run(["git", "status", "--porcelain"], cwd=args.repo, capture_output=True, text=True).stdout.strip():
        print("note: the working tree has uncommitted changes; the clone measures the committed HEAD", file=sys.stderr)
    root = args.keep or Path(tempfile.mkdtemp(prefix="suite-time-"))
    clone = root / "grokscope"
    if clone.exists():
        sys.exit(f"{clone} exists; give --keep an empty folder")
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(args.repo), str(clone)], check=True)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    command2, fast = readme_commands((clone / "README.md").read_text())
    pytest_part = command2.split("&&")[-1].strip()
    rows = []
    outputs = {}
    for label, command in (
        ("README command 2, cold clone", command2),
        ("its pytest part again, warm cache", pytest_part),
        ("fast loop, warm", fast),
    ):
        seconds, out = run(command, clone, root / f"{len(rows)}.log")
        outputs[label] = out
        found = SUMMARY.findall(out)
        counts, pytest_s = (found[-1][0], float(found[-1][1])) if found else ("?", float("nan"))
        rows.append((label, command, seconds, pytest_s, counts))
    print(
        f"machine: {cpu_name()} ({cpu_vector_unit()}), {os.cpu_count()} cores; Python {platform.python_version()}; commit {head}\n"
    )
    print("| run | command | wall (s) | pytest (s) | result |")
    print("|---|---|---:|---:|---|")
    for label, command, seconds, pytest_s, counts in rows:
        print(f"| {label} | `{command}` | {seconds:.0f} | {pytest_s:.0f} | {counts} |")
    cold = outputs["README command 2, cold clone"]
    slowest = re.findall(r"^\s*[\d.]+s (?:setup|call|teardown) .*$", cold, re.M)
    print("\nslowest tests of the cold run:\n" + ("\n".join(slowest) if slowest else "(pytest printed no durations)"))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
