"""Grokking on the algorithmic tasks: seconds to grok per preset, Grokfast and the stability options.

Three questions, each a group of recipes trained in this run on this machine:

* ``presets``: the modular-addition presets (``modular-addition-tiny``, ``modular-addition-fast``;
  ``modular-addition``, Nanda's exact setup, only with ``--only nanda``: it takes hours on a
  CPU), with the cost of the progress measures per checkpoint (``interp.progress``) on the
  fast preset's checkpoints;
* ``grokfast``: Grokfast's own task (``modular-multiplication``: a * b mod 97, 50% of the
  pairs) with its EMA filter (alpha 0.98, lambda 2, weight decay 0.005) against the
  baseline (no filter, no weight decay), the baseline with Grokfast's weight decay, and the
  baseline with 3x the learning rate (users note that lambda 2 acts like ~3x the learning
  rate): the speed-up with the learning rate matched;
* ``stability``: ``modular-addition-fast`` without weight decay, with softmax (the control),
  StableMax, the orthogonal gradient (⊥Grad), and both (Prieto et al. 2025).

Grokked = the first evaluation at which held-out accuracy reaches the preset's threshold
(0.99; 0.95 for Grokfast's task, as Grokfast counts it). A run that does not grok within its
step cap is reported with where it got to, and a speed-up over it is a lower bound.

    python benchmarks/algorithmic_grokking.py [--only presets grokfast stability nanda] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import describe

from interp.progress import progress_measures
from interp.runs import list_checkpoints, read_metrics
from interp.train import load_run_config, train

NO_CHECKPOINTS = ["train.checkpoint_every=1000000", "train.checkpoint_sparse_every=1000000",
                  "train.checkpoint_dense_until=0"]  # fmt: skip
NO_DECAY = ["train.weight_decay=0.0"]

# group: [(recipe, preset, overrides)]
RECIPES = {
    "presets": [
        ("modular-addition-tiny", "modular-addition-tiny", []),
        ("modular-addition-fast", "modular-addition-fast", []),
    ],
    "grokfast": [
        ("baseline (lr 1e-3, wd 0)", "modular-multiplication", ["train.max_steps=4000"]),
        ("baseline, wd 0.005", "modular-multiplication", ["train.max_steps=4000", "train.weight_decay=0.005"]),
        (
            "baseline, wd 0.005, lr 3e-3",
            "modular-multiplication",
            ["train.max_steps=4000", "train.weight_decay=0.005", "train.lr=3e-3"],
        ),
        (
            "Grokfast EMA (alpha 0.98, lambda 2, wd 0.005)",
            "modular-multiplication",
            [
                "train.max_steps=4000",
                "train.weight_decay=0.005",
                "train.grokfast=ema",
                "train.grokfast_alpha=0.98",
                "train.grokfast_lamb=2.0",
            ],
        ),
    ],
    "stability": [
        ("softmax, wd 0 (control)", "modular-addition-fast", NO_DECAY),
        ("StableMax, wd 0", "modular-addition-fast", NO_DECAY + ["train.loss_function=stablemax"]),
        ("⊥Grad, wd 0", "modular-addition-fast", NO_DECAY + ["train.orthogonal_grad=true"]),
        (
            "StableMax + ⊥Grad, wd 0",
            "modular-addition-fast",
            NO_DECAY + ["train.loss_function=stablemax", "train.orthogonal_grad=true"],
        ),
        ("softmax, wd 1 (the preset)", "modular-addition-fast", []),
    ],
    "nanda": [("modular-addition (Nanda et al.)", "modular-addition", ["train.max_steps=16000"])],
}


def run(preset: str, overrides: list[str], threads: int | None, out: Path, checkpoints: bool):
    cfg = load_run_config(
        preset,
        overrides
        + ["train.progress=false", "train.tensorboard=false"]
        + ([f"train.threads={threads}"] if threads else [])
        + ([] if checkpoints else NO_CHECKPOINTS)
        + ["train.stop_after_grok=true"],
    )
    result = train(cfg, out)
    history = read_metrics(out)
    seconds = next((r["seconds"] for r in history if r["step"] == result.grokked_step), None)
    return cfg, result, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=["presets", "grokfast", "stability"], choices=list(RECIPES))
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's own)")
    args = ap.parse_args()
    print(f"machine: {describe('cpu')}; threads {args.threads or 'torch default'}\n", flush=True)
    for group in args.only:
        rows = []
        for name, preset, overrides in RECIPES[group]:
            with tempfile.TemporaryDirectory() as tmp:
                keep = group == "presets" and name == "modular-addition-fast"
                cfg, result, seconds = run(preset, overrides, args.threads, Path(tmp), checkpoints=keep)
                extra = ""
                if keep:
                    n = len(list_checkpoints(tmp))
                    start = time.perf_counter()
                    progress_measures(tmp, save=False)
                    extra = f"progress measures: {(time.perf_counter() - start) / n:.2f} s per checkpoint ({n})"
            rows.append((name, cfg, result, seconds, extra))
            print(
                f"[{group}: {name}] grokked at {result.grokked_step} ({seconds}s); last step {result.step}", flush=True
            )
        ref = rows[0]
        print(
            f"\n| {group} | task | steps to memorise | steps to grok | seconds to grok | final held-out acc | "
            "speed-up over the first row (steps) | notes |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for name, cfg, result, seconds, extra in rows:
            d = cfg.data
            task = f"{d.operation} mod {d.modulus}, {d.train_fraction:.0%} trained"
            if group == "presets":
                speed = "n/a"
            elif result.grokked and ref[2].grokked:
                speed = f"{ref[2].grokked_step / result.grokked_step:.1f}x"
            elif result.grokked:  # the reference never grokked: a lower bound
                speed = f">= {ref[2].step / result.grokked_step:.1f}x"
            else:
                speed = "-"
            grok = result.grokked_step or f"not within {result.step}"
            secs = f"{seconds:.0f}" if seconds else f"> {result.seconds:.0f}"
            print(
                f"| {name} | {task} | {result.memorized_step} | {grok} | {secs} | "
                f"{result.metrics.get('test_id'):.3f} | {speed} | {extra} |"
            )
        print(flush=True)


if __name__ == "__main__":
    main()
