"""How well transcoders replace every MLP of the grokked default model: the current configuration against the new ones.

Loads a grokked ``composition-small`` run (``--run-dir``), collects every layer's MLP input
and output over all prompt positions once, then trains, in this one run on this one model,
each configuration of ``CONFIGS`` (or those named by ``--configs``):

* ``current``      the configuration before issue 31 (the CLI's: BatchTopK, k 16,
                   ``d_sae`` 1,024, 500 steps of 2,048 rows, no skip term);
* ``default``      today's ``TranscoderConfig`` defaults (what ``grokscope features train RUN
                   --site all --transcoder`` trains): a skip term, dead features resampled;
* ``default-no-resampling``  the same without resampling (``resample_every=None``);
* ``clt``          the default as a cross-layer transcoder (``cross_layer=True``).

For each: per layer FVU of the MLP output, L0 and dead features (never active on any
prompt position), and training seconds (all layers); then the replacement model (every MLP
replaced at once, all prompts): accuracy and loss recovered against zero-ablating the MLPs.
The goal (issue 31): accuracy recovered >= 0.95, per-layer FVU <= 0.1, dead <= 5%, trained in
<= 5 minutes on 2 cores.

    python benchmarks/transcoder_quality.py --run-dir runs/composition-small [--threads 2] [--configs current,default]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from _machine import describe

from interp.features import Replacement, TranscoderConfig, evaluate_replacement, train_transcoder
from interp.features.transcoder_train import transcoder_activations
from interp.intervene import as_bridge
from interp.runs import load_checkpoint

CURRENT = TranscoderConfig.for_layer(
    0,
    architecture="batchtopk",
    k=16,
    expansion_factor=8,
    steps=500,
    batch_size=2048,
    skip=False,
    resample_every=None,
    dead_feature_window=200,
)
DEFAULT = TranscoderConfig.for_layer(0)
CONFIGS = {
    "current": CURRENT,
    "default": DEFAULT,
    "default-no-resampling": dataclasses.replace(DEFAULT, resample_every=None),
    "clt": dataclasses.replace(DEFAULT, cross_layer=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True, help="a grokked composition-small run folder")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def train_all(cfg: TranscoderConfig, xs: dict, ys: dict, meta: dict) -> tuple[dict, float]:
    """Every layer's transcoder (or one CLT under every key) and the training seconds."""
    n = len(xs)
    if cfg.cross_layer:
        x = torch.cat([xs[L] for L in range(n)], -1)
        y = torch.cat([ys[L] for L in range(n)], -1)
        r = train_transcoder(dataclasses.replace(cfg.at_layer(0), n_layers=n), x, y, meta=meta)
        return dict.fromkeys(range(n), r.dictionary), r.seconds
    tcs, seconds = {}, 0.0
    for L in range(n):
        r = train_transcoder(cfg.at_layer(L), xs[L], ys[L], meta=meta)
        tcs[L], seconds = r.dictionary, seconds + r.seconds
    return tcs, seconds


@torch.no_grad()
def per_layer(tcs: dict, xs: dict, ys: dict) -> list[dict]:
    """FVU of each MLP output, L0 and dead features of each source layer, on every prompt position."""
    rep = Replacement(tcs)
    acts = {L: rep.encode(L, xs[L]) for L in rep.layers}
    rows = []
    for L in rep.layers:
        y = ys[L]
        fvu = float((rep.predict(L, acts, xs[L]) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        on = acts[L] > 0
        rows.append(
            {"fvu": fvu, "l0": float(on.sum(-1).float().mean()), "dead": int((~on.any(0)).sum()), "d_sae": on.shape[1]}
        )
    return rows


def describe_config(cfg: TranscoderConfig) -> str:
    kind = "CLT" if cfg.cross_layer else "per-layer"
    return (
        f"{kind} {cfg.architecture}, k {cfg.k}, expansion {cfg.expansion_factor}, {cfg.steps} steps of "
        f"{cfg.batch_size}, lr {cfg.lr:g}, skip {cfg.skip}, resample every {cfg.resample_every} steps "
        f"(first {cfg.resample_until:.0%}), dead window {cfg.dead_feature_window}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    run = load_checkpoint(args.run_dir, device="cpu")
    bridge = as_bridge(run.model)
    n = len(bridge.blocks)
    start = time.perf_counter()
    xs, ys = {}, {}
    for L in range(n):
        x, y = transcoder_activations(bridge, run.dataset, TranscoderConfig.for_layer(L))
        xs[L], ys[L] = x.acts, y.acts
    print(f"collected {n} layers x {xs[0].shape[0]} rows in {time.perf_counter() - start:.1f}s", flush=True)
    table, summary = [], []
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        print(f"[{name}] {describe_config(cfg)}", flush=True)
        tcs, seconds = train_all(cfg, xs, ys, meta={})
        rows = per_layer(tcs, xs, ys)
        m = evaluate_replacement(tcs, bridge, run.dataset)
        for L, r in enumerate(rows):
            table.append(f"| {name} | {L} | {r['fvu']:.3f} | {r['l0']:.1f} | {r['dead']} / {r['d_sae']} |")
        summary.append(
            f"| {name} | {seconds:.0f} | {m.fvu:.3f} | {m.l0:.1f} | {m.accuracy_spliced:.3f} | "
            f"{m.accuracy_recovered:.3f} | {m.loss_recovered:.3f} |"
        )
        print(table[-n:], summary[-1], flush=True)
    print("\n| config | layer | FVU (MLP out) | L0 | dead |")
    print("|---|---|---|---|---|")
    print("\n".join(table))
    print(
        f"\n| config | train (s) | FVU (all layers) | L0 (sum) | accuracy (clean {m.accuracy_clean:.3f}, "
        f"MLPs zeroed {m.accuracy_zero:.3f}) | accuracy recovered | loss recovered |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    print("\nconfigs:")
    for name in args.configs.split(","):
        print(f"  {name}: {describe_config(CONFIGS[name])}")
    print(f"\nmachine: {describe('cpu')}, threads {torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
