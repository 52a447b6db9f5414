"""Report build time with the per-checkpoint analyses computed once, against the code before them.

``grokscope report RUN`` analyses the final checkpoint (logit lens, causal tracing, circuit),
the explorer's checkpoints (lens, tracing, edge scores) and circuit formation's checkpoints
(the key states' causal strength and MRR). Since :mod:`interp.checkpoint_analyses` each
checkpoint's lens and tracing grids are computed once, kept in ``RUN/analyses``, and read by
all three. This script builds the report of a copy of ``RUN``

* with the code of ``--reference`` (a commit before the change; run from a temporary git worktree),
* with this checkout's code, on a copy without ``analyses/`` (cold),
* again on the same copy (warm: every per-checkpoint analysis read back),

each in a fresh process on ``--threads`` torch threads, and prints the times.

    python benchmarks/report_time.py RUN_DIR [--reference 523ddbe] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe

ROOT = Path(__file__).resolve().parents[1]
BUILD = """
import sys, torch
torch.set_num_threads(int(sys.argv[3]))
try:
    from circuits.views.report import write_report
except ImportError:  # the code before circuits.views
    from circuits.report import write_report
write_report(sys.argv[1], sys.argv[2])
"""


def build(code_root: Path, run_dir: Path, out: Path, threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", BUILD, str(run_dir), str(out), str(threads)], cwd=code_root, env=env,
                   check=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--reference", default="523ddbe", help="a commit before the per-checkpoint analyses")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref_tree = tmp / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", str(ref_tree), args.reference], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            for name, code, fresh in (
                (f"before ({args.reference})", ref_tree, True),
                ("now, cold (no analyses kept)", ROOT, True),
                ("now, warm (analyses kept)", ROOT, False),
            ):
                run = tmp / "run"
                if fresh:
                    shutil.rmtree(run, ignore_errors=True)
                    shutil.copytree(args.run_dir, run, ignore=shutil.ignore_patterns("analyses", "report*"))
                seconds = build(code, run, tmp / "report.html", args.threads)
                rows.append((name, seconds))
                print(f"[{name}] {seconds:.0f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT, capture_output=True)
    print(f"\nmachine: {describe('cpu')}; torch threads {args.threads}; run {args.run_dir.name}\n")
    print("| code | report build | against before |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.0f} s | {rows[0][1] / seconds:.2f}x |")


if __name__ == "__main__":
    main()
