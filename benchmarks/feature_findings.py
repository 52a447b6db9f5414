"""Ground truth for features on grokked runs: probing, DAS and steering of the known intermediate variable.

A measurement, not a timing. For a composition run (the bridge entity at ``S[l, r1]``) and,
optionally, a comparison run (the values ``v1`` / ``v2`` at ``e1`` / ``e2``) it prints

1. k-sparse probing accuracy per residual state: a sparse dictionary's features (one
   BatchTopK dictionary trained per state at the variable's position, on the train split),
   raw residual dimensions, and MLP neurons (``blocks.L.mlp.hook_post``), on held-out
   prefixes; the best single dictionary feature per value (AUROC, precision, recall);
2. the full-state interchange per state (the ceiling), and at the best state DAS IIA
   against subspace size, boundless DAS's size, and DAS over the run's checkpoints beside
   test-ID accuracy;
3. steering the variable from ``b`` to ``b'`` by features and by DAS, beside the interchange.

    python benchmarks/feature_findings.py --composition runs/composition-tiny \\
        --comparison runs/comparison-tiny-adamw [--threads 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from _machine import describe

from interp.features import DictionaryConfig, train_on_model
from interp.features.das import das_pairs, train_das
from interp.features.das_runs import boundless_das, das_curve, das_over_checkpoints, full_interchange
from interp.features.probing import probe_site, split_rows
from interp.features.steering import steer_variable
from interp.intervene import as_bridge
from interp.lens import residual_hooks
from interp.runs import load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--composition", default=None, help="a grokked composition run folder (e.g. runs/composition-tiny)")
    p.add_argument("--comparison", default=None, help="a grokked comparison run folder (optional)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64], help="DAS subspace sizes")
    p.add_argument("--d", type=int, default=16, help="DAS size for checkpoints and steering")
    p.add_argument("--das-steps", type=int, default=150)
    p.add_argument("--das-batch", type=int, default=128)
    p.add_argument("--das-lr", type=float, default=3e-2)
    p.add_argument("--n-train", type=int, default=600, help="DAS training pairs per swap")
    p.add_argument("--every", type=int, default=3, help="DAS on every n-th checkpoint (0: skip)")
    p.add_argument("--dict-k", type=int, default=8)
    p.add_argument("--dict-steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write every number here")
    return p.parse_args(argv)


def fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def probing_table(bridge, dataset, target: str, args, out: dict) -> dict[int, object]:
    """Probe every residual state (raw and a dictionary's features) and every block's neurons."""
    states = residual_hooks(bridge)
    neurons = [f"blocks.{layer}.mlp.hook_post" for layer in range(len(bridge.blocks))]
    splits = split_rows(bridge, dataset, states + neurons, target)
    pos_name = dataset.schema.positions[dataset.schema.intermediate(target).position]
    print(
        f"\n### {dataset.task}: k-sparse probing of `{target}` at {pos_name} (held-out prefixes; chance = majority)\n"
    )
    first = next(iter(splits.values()))
    print(f"rows: train {len(first.train)}, " + ", ".join(f"{k} {len(v)}" for k, v in first.evals.items()))
    ks = [k for k in args.ks]
    print(
        "\n| source | state / block | "
        + " | ".join(f"k={k}" for k in ks)
        + " | test_id k=16 | test_ood k=16 | chance |"
    )
    print("|---|---|" + "---|" * (len(ks) + 3))
    sae_by_layer, rows = {}, []
    for layer, hook in enumerate(states):
        cfg = DictionaryConfig(
            hook,
            architecture="batchtopk",
            k=args.dict_k,
            expansion_factor=8,
            splits=("train",),
            positions=(pos_name,),
            steps=args.dict_steps,
            batch_size=512,
        )
        sae = train_on_model(bridge, dataset, cfg, log_every=args.dict_steps)[0].dictionary
        sae_by_layer[layer] = sae
        for source, kw, name in (("raw", {}, f"S[{layer}]"), ("dictionary", {"dictionary": sae}, f"S[{layer}]")):
            rows.append(
                (
                    source,
                    name,
                    probe_site(
                        bridge,
                        dataset,
                        hook,
                        target,
                        ks=[k for k in ks if k <= (sae.d_sae if kw else bridge.cfg.d_model)],
                        splits=splits,
                        **kw,
                    ),
                )
            )
    for block, hook in enumerate(neurons):
        rows.append(("neurons", f"block {block}", probe_site(bridge, dataset, hook, target, ks=ks, splits=splits)))
    for source, name, res in rows:
        acc = dict(zip(res.ks, res.accuracy["held_out"]))
        k16 = res.ks.index(16) if 16 in res.ks else -1
        tid = res.accuracy.get("test_id", [float("nan")] * len(res.ks))[k16]
        tood = res.accuracy.get("test_ood", [float("nan")] * len(res.ks))[k16]
        print(
            f"| {source} | {name} | "
            + " | ".join(fmt(acc.get(k)) for k in ks)
            + f" | {fmt(tid)} | {fmt(tood)} | {fmt(res.chance)} |"
        )
        out.setdefault("probing", []).append(
            {
                "source": source,
                "where": name,
                "hook": res.hook,
                "ks": res.ks,
                "accuracy": res.accuracy,
                "n": res.n_rows,
                "chance": res.chance,
                "classes": res.n_classes,
            }
        )
    print("\nBest single dictionary feature per value (on the probe's training rows):\n")
    print("| state | mean AUROC | share P>=0.9 & R>=0.9 | share P>=0.5 & R>=0.5 | distinct features / values |")
    print("|---|---|---|---|---|")
    for source, name, res in rows:
        if source == "dictionary":
            s = res.single
            print(
                f"| {name} | {s.mean_auroc:.3f} | {s.share(0.9, 0.9):.3f} | {s.share(0.5, 0.5):.3f} | {s.distinct_features} / {len(s.classes)} |"
            )
            out.setdefault("single", []).append(
                {
                    "where": name,
                    "mean_auroc": s.mean_auroc,
                    "p90r90": s.share(),
                    "p50r50": s.share(0.5, 0.5),
                    "distinct": s.distinct_features,
                    "classes": len(s.classes),
                }
            )
    return sae_by_layer


def das_tables(run_dir: str, bridge, dataset, target: str, sae_by_layer, args, out: dict, checkpoints: bool) -> None:
    train_kw = {"steps": args.das_steps, "lr": args.das_lr, "batch_size": args.das_batch}
    pairs = (das_pairs(dataset, target, "train", n=args.n_train), das_pairs(dataset, target, "test_id", seed=1))
    ceiling = full_interchange(bridge, dataset, target, pairs=pairs[1])
    best = max(ceiling, key=ceiling.get)
    print(
        f"\n### {dataset.task}: interchange of `{target}` (held-out test_id pairs: {len(pairs[1])}; train pairs {len(pairs[0])})\n"
    )
    print("| state | " + " | ".join(f"S[{state}]" for state in ceiling) + " |\n|---|" + "---|" * len(ceiling))
    print("| full-state IIA | " + " | ".join(fmt(v) for v in ceiling.values()) + " |")
    out["full_interchange"] = ceiling
    sizes = [d for d in args.sizes if d <= bridge.cfg.d_model]
    curve = das_curve(bridge, dataset, target, layer=best, sizes=sizes, pairs=pairs, **train_kw)
    print(f"\nDAS at S[{best}] (the best full-state interchange):\n")
    print("| d | " + " | ".join(str(p.d) for p in curve) + " |\n|---|" + "---|" * len(curve))
    print("| train IIA | " + " | ".join(fmt(p.train_iia) for p in curve) + " |")
    print("| held-out IIA | " + " | ".join(fmt(p.iia) for p in curve) + " |")
    out["das_curve"] = [vars(p) for p in curve]
    bl = boundless_das(
        bridge,
        dataset,
        target,
        layer=best,
        pairs=pairs,
        steps=2 * args.das_steps,
        lr=args.das_lr,
        batch_size=args.das_batch,
    )
    print(
        f"\nBoundless DAS at S[{best}]: learned size {bl.d}, train IIA {fmt(bl.train_iia)}, held-out IIA {fmt(bl.iia)}"
    )
    out["boundless"] = vars(bl)
    fit = train_das(
        bridge, pairs[0], layer=best, position=dataset.schema.intermediate(target).position, d=args.d, **train_kw
    )
    sae = sae_by_layer[best]
    steer = steer_variable(bridge, dataset, target, hook=fit.hook, dictionary=sae, das=fit)
    print(
        f"\nSteering `{target}` at S[{best}] on {steer.n} test_id prompts (success: top-1 is what the new value implies;"
        f" clean accuracy {fmt(steer.clean_accuracy)}):\n"
    )
    print("| edit | " + " | ".join(steer.success) + " |\n|---|" + "---|" * len(steer.success))
    print("| success | " + " | ".join(fmt(v) for v in steer.success.values()) + " |")
    out["steering"] = {"n": steer.n, "success": steer.success, "clean_accuracy": steer.clean_accuracy, "d": args.d}
    if args.every and checkpoints:
        hist = das_over_checkpoints(run_dir, target, layer=best, d=args.d, every=args.every, **train_kw)
        print(f"\nDAS (d={args.d}) at S[{best}] over checkpoints:\n")
        print("| step | " + " | ".join(str(p.step) for p in hist) + " |\n|---|" + "---|" * len(hist))
        print("| test-ID accuracy | " + " | ".join(fmt(p.test_id_accuracy) for p in hist) + " |")
        print("| held-out IIA | " + " | ".join(fmt(p.iia) for p in hist) + " |")
        out["checkpoints"] = [vars(p) for p in hist]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    results: dict = {}
    for run_dir, targets in ((args.composition, ["bridge"]), (args.comparison, ["v1", "v2"])):
        if not run_dir:
            continue
        run = load_checkpoint(run_dir, device="cpu")
        bridge = as_bridge(run.model)
        print(f"\n## {run_dir} (step {run.step})")
        for i, target in enumerate(targets):
            out = results.setdefault(f"{run.dataset.task}:{target}", {"run_dir": run_dir, "step": run.step})
            saes = probing_table(bridge, run.dataset, target, args, out)
            das_tables(run_dir, bridge, run.dataset, target, saes, args, out, checkpoints=i == 0)
    print(f"\n{describe('cpu')}, {args.threads} thread(s); {time.time() - start:.0f} s in all")
    if args.json:
        from interp.io import atomic_write_json

        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()
