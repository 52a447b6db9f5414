"""Edge attribution (EAP, EAP-IG) against exact edge patching, at the paper's model size.

Trains a GPT-2 of ``--layers`` x ``--d-model`` x ``--heads`` (default the paper's 8 x 768 x 12)
briefly with AdamW (``--train-steps``, default 200) on the ``composition-small`` graph, so that the
model is no longer random (the script prints its loss before and after), then on
``--pairs`` clean/corrupt pairs that swap the head entity:

* times ``circuits.edges.edge_attribution`` (EAP and EAP-IG) over every edge of the graph;
* times exact edge patching (``circuits.edges.edge_patch``, one patched forward per edge and
  example) on every edge of ``--exact-writers`` writers drawn at random (edge_patch runs one
  sweep per writer, so whole writers keep its per-writer cost as in a full run), and
  extrapolates its time to every edge (each edge and example is its own row);
* compares the scores' magnitudes on those edges: Spearman rank correlation of ``|score|``.

    python benchmarks/eap_speed.py                               # defaults below
    python benchmarks/eap_speed.py --layers 3 --d-model 128 --heads 4 --train-steps 0   # quick

Prints a Markdown table: seconds, the speedup over exact patching of every edge, Spearman.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
from _machine import describe


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=8, help="transformer blocks (default 8, the paper's)")
    p.add_argument("--d-model", type=int, default=768, help="residual width (default 768, the paper's)")
    p.add_argument("--heads", type=int, default=12, help="attention heads (default 12, the paper's)")
    p.add_argument("--train-steps", type=int, default=200, help="AdamW training steps before measuring (default 200)")
    p.add_argument("--train-batch", type=int, default=16, help="training batch size (default 16)")
    p.add_argument("--lr", type=float, default=3e-4, help="training learning rate (default 3e-4)")
    p.add_argument("--pairs", type=int, default=8, help="clean/corrupt pairs (default 8)")
    p.add_argument("--exact-writers", type=int, default=2, help="writers whose edges are patched exactly (default 2)")
    p.add_argument("--ig-steps", type=int, default=5, help="EAP-IG path steps (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of EAP / EAP-IG; the median is reported")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="the analysed model's dtype (float64: exact effects far above rounding)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0 = torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 with ties given their mean rank."""
    order = x.argsort()
    r = torch.empty_like(x, dtype=torch.float64)
    r[order] = torch.arange(len(x), dtype=torch.float64)
    for value in x.unique():  # ties: the mean of their ranks
        tied = x == value
        if int(tied.sum()) > 1:
            r[tied] = r[tied].mean()
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = ranks(a.double()), ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def train_model(args: argparse.Namespace, dataset, run_dir: str):
    """A briefly trained model of the benchmark's size: (model, first-step loss, last-step loss)."""
    from interp.train import Trainer, load_run_config

    overrides = [
        f"model.n_layers={args.layers}",
        f"model.d_model={args.d_model}",
        f"model.n_heads={args.heads}",
        f"model.d_mlp={4 * args.d_model}",
        f"train.batch_size={args.train_batch}",
        f"train.lr={args.lr}",
        f"train.warmup_steps={max(1, args.train_steps // 10)}",
        f"train.max_steps={max(1, args.train_steps)}",
        f"train.device={args.device}",
        f"train.seed={args.seed}",
        "train.precision=fp32",
        "train.optimizer=adamw",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    trainer = Trainer(load_run_config("composition-small", overrides), run_dir, dataset=dataset)
    losses = []
    for step in range(args.train_steps):
        losses.append(float(trainer.train_step(trainer.train_batch[trainer.batch_indices(step)])))
        if step % 25 == 0 or step == args.train_steps - 1:
            print(f"training step {step}: loss {losses[-1]:.3f}", file=sys.stderr)
    return trainer.model.eval(), (losses[0] if losses else float("nan")), (losses[-1] if losses else float("nan"))


def timed(fn, device: str) -> tuple[float, object]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from circuits.edges import edge_attribution, edge_patch
    from circuits.space import ModelGraph
    from interp.counterfactuals import counterfactual_batch
    from interp.data import data_config, generate
    from interp.models import to_bridge
    from interp.patching import logit_diff

    dataset = generate(data_config("composition-small", [f"seed={args.seed}"]))
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        model, loss0, loss1 = train_model(args, dataset, run_dir)
        train_s = time.perf_counter() - start
    bridge = to_bridge(model.to(getattr(torch, args.dtype)))
    pairs = counterfactual_batch(dataset, "train_inferred", "h", n=args.pairs, seed=args.seed, device=args.device)
    metric = logit_diff(pairs.clean_answer, pairs.corrupt_answer)
    clean, corrupt = pairs.clean, pairs.corrupt

    space = ModelGraph.of(bridge, clean.shape[1])
    gen = torch.Generator().manual_seed(args.seed)
    writers = torch.randperm(space.n_writers, generator=gen)[: args.exact_writers]
    chosen = torch.zeros_like(space.allowed)
    chosen[:, writers] = space.allowed[:, writers]
    picked = chosen.nonzero()
    edges = [space.edge(*map(int, idx)) for idx in picked]

    exact_s, exact = timed(lambda: edge_patch(bridge, clean, corrupt, metric, edges=edges), args.device)
    per_edge = exact_s / len(edges)
    full_exact_s = per_edge * space.n_edges
    rows = [("exact edge patching", exact_s, full_exact_s, 1.0, 1.0)]
    reference = exact.scores[picked[:, 0], picked[:, 1], picked[:, 2]].abs()
    for method, label in (("eap", "EAP"), ("eap-ig", f"EAP-IG ({args.ig_steps} steps)")):

        def run(method=method):
            return edge_attribution(bridge, clean, corrupt, metric, method=method, ig_steps=args.ig_steps)

        run()  # warm-up
        times, result = [], None
        for _ in range(args.repeats):
            seconds, result = timed(run, args.device)
            times.append(seconds)
            print(f"{label}: {seconds:.3f} s", file=sys.stderr)
        s = statistics.median(times)
        estimate = result.scores[picked[:, 0], picked[:, 1], picked[:, 2]].abs()
        rows.append((label, s, s, full_exact_s / s, spearman(estimate, reference)))

    print(
        f"Edge attribution vs exact edge patching: model {args.layers} layers, d_model {args.d_model}, "
        f"{args.heads} heads, {args.dtype}, trained {args.train_steps} AdamW steps on composition-small "
        f"(batch {args.train_batch}, "
        f"loss {loss0:.3f} -> {loss1:.3f}, {train_s:.0f} s); {args.pairs} head-swap pairs, "
        f"{space.n_edges} edges; exact patching on the {len(edges)} edges of {len(writers)} random writers "
        f"({', '.join(space.writer(0, int(w)).name.split('@')[0] for w in writers)}; {exact_s:.1f} s), "
        f"extrapolated to all ({per_edge * 1e3:.1f} ms per edge); Spearman of |score| on those edges; "
        f"EAP median of {args.repeats}."
    )
    print(f"Machine: {describe(args.device)}.\n")
    print("| method | seconds (measured) | seconds (every edge) | speedup | Spearman of abs(score) vs exact |")
    print("|---|---:|---:|---:|---:|")
    for label, measured, every, speedup, rho in rows:
        print(f"| {label} | {measured:.2f} | {every:.1f} | {speedup:.0f}x | {rho:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
