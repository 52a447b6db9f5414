"""Seconds to train a sparse dictionary at one site of the grokked default model to FVU <= 0.1.

Trains (or reuses, in ``--run-dir``) the ``composition-small`` preset until it groks, reads
the activations at ``--site`` over every split and prompt position (each distinct prompt
once), then trains one dictionary per ``--architectures`` entry and times it. The timed part
is the dictionary's training (activation collection is timed separately); every dictionary
is then scored on all prompts: L0, FVU, dead features, and answer accuracy recovered when
its reconstruction is spliced in at the site (zero ablation as the baseline).

Prints a Markdown table and the machine line. The target (issue 15): FVU <= 0.1 in <= 60 s
on 2 CPU cores.

    python benchmarks/dictionary_speed.py --run-dir runs/composition-small [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from _machine import describe

from interp.features import DictionaryConfig, collect_activations, evaluate_dictionary, train_dictionary
from interp.intervene import as_bridge
from interp.runs import load_checkpoint
from interp.train import load_run_config, train_or_resume

TARGET_FVU = 0.1
TARGET_SECONDS = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--run-dir", default=None, help="run folder of composition-small (trained there if empty; default: a temp dir)"
    )
    p.add_argument("--site", default="blocks.1.hook_resid_post", help="hook point (default: the middle residual state)")
    p.add_argument(
        "--architectures",
        nargs="+",
        default=["batchtopk", "topk", "jumprelu"],
        choices=["batchtopk", "topk", "jumprelu"],
    )
    p.add_argument("--expansion-factor", type=int, default=8, help="d_sae / d_in (default 8)")
    p.add_argument("--k", type=int, default=16, help="TopK / BatchTopK k (default 16)")
    p.add_argument("--l0-coefficient", type=float, default=None, help="JumpReLU's L0 penalty (default: the config's)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    p.add_argument("--batch-size", type=int, default=None, help="activations per step (default: the config's)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="use the run's latest checkpoint as it is (grokked or not), without training further",
    )
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default 2, the target's; 0 = torch's choice)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = args.run_dir or tempfile.mkdtemp(prefix="dictionary_speed_")
    if not args.no_train:
        start = time.perf_counter()
        result = train_or_resume(load_run_config("composition-small", ["train.progress=false"]), run_dir)
        print(
            f"[model] composition-small in {run_dir}: step {result.step}, grokked {result.grokked} "
            f"({time.perf_counter() - start:.0f} s including any earlier run reused)",
            flush=True,
        )
    run = load_checkpoint(run_dir, device="cpu")
    bridge = as_bridge(run.model)
    start = time.perf_counter()
    acts = collect_activations(bridge, run.dataset, args.site)
    collect_s = time.perf_counter() - start
    print(f"[activations] {len(acts)} rows x {acts.d_in} at {args.site} in {collect_s:.1f} s", flush=True)

    overrides = {
        k: v
        for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("l0_coefficient", args.l0_coefficient))
        if v is not None
    }
    rows = []
    for arch in args.architectures:
        cfg = DictionaryConfig(
            args.site, architecture=arch, k=args.k, expansion_factor=args.expansion_factor, **overrides
        )
        trained = train_dictionary(cfg, acts)
        m = evaluate_dictionary(trained.dictionary, bridge, run.dataset)
        k = str(cfg.k) if arch != "jumprelu" else f"- (L0 coef. {cfg.l0_coefficient:g})"
        ok = m.fvu <= TARGET_FVU and trained.seconds <= TARGET_SECONDS
        rows.append(
            f"| {args.site} | {arch} | {trained.dictionary.d_sae} | {k} | {trained.steps} x {min(cfg.batch_size, len(acts))} "
            f"| {trained.seconds:.1f} | {m.fvu:.3f} | {m.l0:.1f} | {m.dead_features} | {m.accuracy_recovered:.3f} "
            f"| {m.loss_recovered:.3f} | {'yes' if ok else 'no'} |"
        )
        print(
            f"[{arch}] {trained.seconds:.1f} s, fvu {m.fvu:.3f}, l0 {m.l0:.1f}, dead {m.dead_features}, "
            f"accuracy {m.accuracy_clean:.3f} -> {m.accuracy_spliced:.3f} (zero-ablated {m.accuracy_zero:.3f})",
            flush=True,
        )

    print(
        f"\nmachine: {describe('cpu')}; model: composition-small step {run.step} (d_model {acts.d_in}), "
        f"{len(acts)} activations ({collect_s:.1f} s to collect)\n"
    )
    print(
        "| site | architecture | d_sae | k | steps x batch | seconds | fvu | l0 | dead | accuracy recovered "
        f"| loss recovered | FVU <= {TARGET_FVU} in <= {TARGET_SECONDS:.0f} s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
