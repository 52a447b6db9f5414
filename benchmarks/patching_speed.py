"""Time a full layer x position patching sweep: TransformerLens 4 against grokscope.

Both sweeps patch the clean run's activations (``--families``, default the residual stream
``blocks.L.hook_resid_pre``) into the corrupt run at every layer and prompt position (and
head) and score the logit difference of the clean and corrupt answers. TransformerLens's
``get_act_patch_*`` does one full forward per place; ``interp.patching.activation_patch``
stacks the patches into few forwards, each running only the blocks from the patched one on
and the positions from the first changed one on (the unpatched run's keys and values
before it; the last block only at the answer; a patch after a block's attention reads that
attention from the unpatched run and computes the block only where it pastes), and skips
patches that paste an unchanged value. The script checks that both give the same numbers, then prints a Markdown table
(median of ``--repeats``): wall-clock seconds, and this process's CPU seconds, which a
machine loaded by other work disturbs less (with ``--threads 1``).

Workloads (``--swap``): clean/corrupt composition pairs from the knowledge graph that differ
in the head entity (``h``: every position can differ, no patch is skippable), in the first
or second relation (``r1``, ``r2``), or a third of each (``mixed``, the paper's causal
tracing). The model is untrained: the timing does not depend on the weights.

    python benchmarks/patching_speed.py                       # defaults below, about a minute
    python benchmarks/patching_speed.py --layers 8 --d-model 768 --heads 12 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's sweep shows a progress bar

import torch  # noqa: E402
from _machine import describe  # noqa: E402

TL_NAMES = {
    "resid_pre": "get_act_patch_resid_pre",
    "resid_mid": "get_act_patch_resid_mid",
    "attn_out": "get_act_patch_attn_out",
    "mlp_out": "get_act_patch_mlp_out",
    "z": "get_act_patch_attn_head_out_by_pos",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=8, help="transformer blocks (default 8, the paper's)")
    p.add_argument("--d-model", type=int, default=256, help="residual width (default 256; the paper's is 768)")
    p.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    p.add_argument("--batch", type=int, default=96, help="clean/corrupt pairs (default 96)")
    p.add_argument(
        "--swap",
        nargs="+",
        default=["h", "mixed"],
        choices=["h", "r1", "r2", "mixed"],
        help="workloads: which token the corrupt prompt swaps (default: h mixed)",
    )
    p.add_argument(
        "--families",
        nargs="+",
        default=["resid_pre"],
        choices=sorted(TL_NAMES),
        help="hook families to sweep (default: resid_pre)",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per method; the median is reported")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: steady timings on a shared machine; 0 = torch's choice)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def pairs(dataset, swap: str, n: int, seed: int, device: str):
    from interp.counterfactuals import counterfactual_batch

    if swap != "mixed":
        b = counterfactual_batch(dataset, "train_inferred", swap, n=n, seed=seed, device=device)
        return b.clean, b.corrupt, b.clean_answer, b.corrupt_answer
    parts = [pairs(dataset, s, n // 3 + (i < n % 3), seed, device) for i, s in enumerate(("h", "r1", "r2"))]
    return tuple(torch.cat(t) for t in zip(*parts))


def timed(fn, device: str) -> tuple[float, float, torch.Tensor]:
    """(wall-clock seconds, this process's CPU seconds, result) of one call."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from importlib.metadata import version

    from transformer_lens import patching as tl_patching

    from interp.data import data_config, generate
    from interp.models import ModelConfig, build_model, to_bridge
    from interp.patching import activation_patch, logit_diff, tl_metric

    dataset = generate(data_config("composition-small", [f"seed={args.seed}"]))
    n_ctx = dataset.batch("train_inferred").tokens.shape[1]
    cfg = ModelConfig(n_layers=args.layers, d_model=args.d_model, n_heads=args.heads)
    bridge = to_bridge(build_model(cfg, len(dataset.vocab), n_ctx, seed=args.seed, device=args.device))

    rows = []
    for family in args.families:
        tl_fn = getattr(tl_patching, TL_NAMES[family])
        for swap in args.swap:
            clean, corrupt, clean_answer, corrupt_answer = pairs(dataset, swap, args.batch, args.seed, args.device)
            metric = logit_diff(clean_answer, corrupt_answer)
            answer_pos = torch.full((len(clean),), clean.shape[1] - 1, device=args.device)
            with torch.no_grad():
                _, clean_cache = bridge.run_with_cache(clean)

            def tl_sweep():  # called within this iteration only
                with torch.no_grad():
                    return tl_fn(bridge, corrupt, clean_cache, tl_metric(metric, answer_pos), reduce="mean")  # noqa: B023

            def our_sweep():
                return activation_patch(bridge, corrupt, clean_cache, metric, family)  # noqa: B023

            our_sweep()  # warm-up (first calls allocate)
            times: dict[str, list[tuple[float, float]]] = {"tl": [], "ours": []}
            results = {}
            for _ in range(args.repeats):  # interleaved, so load changes hit both alike
                for name, fn in (("tl", tl_sweep), ("ours", our_sweep)):
                    wall, cpu, results[name] = timed(fn, args.device)
                    times[name].append((wall, cpu))
                    print(f"{family} {swap} {name}: {wall:.3f} s wall, {cpu:.3f} s CPU", file=sys.stderr)
            torch.testing.assert_close(results["ours"], results["tl"].to(results["ours"]), rtol=1e-5, atol=1e-5)
            tl_s = [statistics.median(t[i] for t in times["tl"]) for i in (0, 1)]
            ours_s = [statistics.median(t[i] for t in times["ours"]) for i in (0, 1)]
            tl_name = f"TransformerLens {version('transformer-lens')} {TL_NAMES[family]}"
            rows.append((family, swap, tl_name, *tl_s, 1.0, 1.0))
            rows.append((family, swap, "grokscope activation_patch", *ours_s, tl_s[0] / ours_s[0], tl_s[1] / ours_s[1]))

    print(
        f"Full sweeps, layer x position (x head) = {args.layers} x {clean.shape[1]}, {args.batch} pairs, "
        f"model {args.layers} layers, d_model {args.d_model}, {args.heads} heads, vocab {len(dataset.vocab)}; "
        f"median of {args.repeats}; results agree (assert_close, rtol=atol=1e-5)."
    )
    print(f"Machine: {describe(args.device)}.\n")
    print("| family | corrupt swaps | method | wall s | CPU s | speedup (wall) | speedup (CPU) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for family, swap, method, wall, cpu, s_wall, s_cpu in rows:
        print(f"| {family} | {swap} | {method} | {wall:.3f} | {cpu:.3f} | {s_wall:.1f}x | {s_cpu:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
