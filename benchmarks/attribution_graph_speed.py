"""Seconds to build an attribution graph of one prompt of the grokked default model, and what it shows.

Loads a grokked ``composition-small`` run (``--run-dir``), trains a transcoder at every
layer (timed per layer; FVU of the MLP output and L0 on all prompts, accuracy and loss
recovered with every MLP replaced at once), or loads them from ``--transcoders``, then times
:func:`interp.features.attribution_graph` on test-ID two-hop prompts against a reference
measured in the same run: one forward + backward of the model on a batch of as many copies
of the prompt as the graph has targets (what the graph's one backward costs without
freezing and bookkeeping). The target (issue 15): <= 5 s per graph on 2 CPU cores.

Then, over ``--prompts`` test-ID prompts, the bridge-entity question: does the pruned graph
hold features at the r1 position (the bridge is ``r1(h)``) whose decoder direction promotes
the bridge token through the unembedding (the bridge among the top ``--top`` tokens of
``W_dec[f] @ W_U``), and how much of the graph's influence goes through them?

    python benchmarks/attribution_graph_speed.py --run-dir runs/composition-small [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _machine import describe

from interp.features import (
    TranscoderConfig,
    attribution_graph,
    evaluate_replacement,
    load_transcoders,
    node_influence,
    prompt_tokens,
    prune_graph,
    save_transcoders,
    train_transcoder,
)
from interp.features.io import model_fingerprint
from interp.features.transcoder_train import transcoder_activations
from interp.intervene import activation_gradients, as_bridge
from interp.runs import load_checkpoint

TARGET_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True, help="a grokked composition-small run folder")
    p.add_argument("--transcoders", default=None, help="folder of saved transcoders (trained and saved there if empty)")
    p.add_argument("--architecture", default="batchtopk", choices=["batchtopk", "topk", "jumprelu"])
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--expansion-factor", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--prompts", type=int, default=40, help="test-ID prompts for the bridge analysis (default 40)")
    p.add_argument("--top", type=int, default=5, help="a feature promotes the bridge if it is in its top-N tokens")
    p.add_argument("--repeats", type=int, default=3, help="timed graphs of the first prompt (median reported)")
    p.add_argument(
        "--no-replacement",
        action="store_true",
        help="skip scoring the replacement model on every prompt (the slowest part on a loaded machine)",
    )
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def get_transcoders(args: argparse.Namespace, run) -> tuple[dict, list[dict]]:
    folder = Path(args.transcoders) if args.transcoders else None
    if folder is not None and (folder / "transcoders.json").is_file():
        return load_transcoders(folder, run.model), []
    bridge = as_bridge(run.model)
    cfg = TranscoderConfig.for_layer(
        0,
        architecture=args.architecture,
        k=args.k,
        expansion_factor=args.expansion_factor,
        steps=args.steps,
        batch_size=args.batch_size,
    )
    meta = {
        "model_fingerprint": model_fingerprint(bridge),
        "run_dir": str(Path(args.run_dir).resolve()),
        "step": run.step,
    }
    tcs, rows = {}, []
    for layer in range(len(bridge.blocks)):
        layer_cfg = cfg.at_layer(layer)
        start = time.perf_counter()
        x, y = transcoder_activations(bridge, run.dataset, layer_cfg)
        collect = time.perf_counter() - start
        result = train_transcoder(layer_cfg, x, y, meta=meta)
        tc = result.dictionary
        with torch.no_grad():
            acts = tc.encode(x.acts)
            fvu = float((tc(x.acts) - y.acts).pow(2).sum() / (y.acts - y.acts.mean(0)).pow(2).sum())
        rows.append(
            {
                "layer": layer,
                "rows": len(x),
                "collect_s": collect,
                "train_s": result.seconds,
                "fvu": fvu,
                "l0": float((acts > 0).sum(-1).float().mean()),
                "dead": int((~(acts > 0).any(0)).sum()),
            }
        )
        tcs[layer] = tc
        print(f"[transcoder] layer {layer}: {rows[-1]}", flush=True)
    if folder is not None:
        save_transcoders(tcs, folder)
    return tcs, rows


def reference_seconds(bridge, tokens: torch.Tensor, n_rows: int) -> float:
    batch = tokens[None].expand(n_rows, -1)
    start = time.perf_counter()
    activation_gradients(bridge, batch, ["blocks.0.hook_resid_pre"], lambda lg: lg[:, -1].logsumexp(-1))
    return time.perf_counter() - start


def bridge_analysis(args, run, bridge, tcs) -> dict[str, float]:
    """Per prompt: features at r1 (pos 1) promoting the bridge, kept by pruning, and their influence share."""
    schema, ds = run.dataset.schema, run.dataset
    r1 = schema.position("r1")
    w_u = bridge.W_U.detach()  # (d_model, d_vocab)
    promotes = {layer: (tc.W_dec.detach() @ w_u).topk(args.top, dim=-1).indices for layer, tc in tcs.items()}
    stats: dict[str, list[float]] = {k: [] for k in ("has", "chance_has", "kept", "share", "n_kept_feat", "correct")}
    d_vocab = w_u.shape[1]
    by_layer = {layer: 0 for layer in tcs}
    for ex in ds.examples("test_id")[: args.prompts]:
        bridge_tok = ds.vocab.id(ex.provenance["bridges"][0])
        g = attribution_graph(
            bridge, tcs, prompt_tokens(ds, ex.input_tokens), vocab=ds.vocab, answer=ex.target_tokens[0]
        )
        pruned = prune_graph(g)
        influence = node_influence(g)
        feat_inf = influence[: g.n_features]
        hits = [
            i
            for i, (layer, pos, f) in enumerate(g.active_features.tolist())
            if pos == r1 and bridge_tok in promotes[layer][f].tolist()
        ]
        kept = [i for i in hits if bool(pruned.node_mask[i])]
        stats["has"].append(float(bool(hits)))
        n_r1 = int((g.active_features[:, 1] == r1).sum())  # a feature's top tokens hold a given token by chance
        stats["chance_has"].append(1 - (1 - args.top / d_vocab) ** n_r1)
        stats["kept"].append(float(bool(kept)))
        stats["share"].append(float(feat_inf[hits].sum() / feat_inf.sum().clamp(min=1e-30)) if hits else 0.0)
        stats["n_kept_feat"].append(float(pruned.node_mask[: g.n_features].sum()))
        stats["correct"].append(float(g.logit_strings[0] == ex.target_tokens[0]))
        for i in kept:
            by_layer[int(g.active_features[i, 0])] += 1
    out = {k: statistics.mean(v) for k, v in stats.items() if v}
    out |= {f"kept_hits_layer{layer}": n for layer, n in by_layer.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_checkpoint(args.run_dir, device="cpu")
    bridge = as_bridge(run.model)
    tcs, rows = get_transcoders(args, run)
    rep = None if args.no_replacement else evaluate_replacement(tcs, bridge, run.dataset)
    ex = run.dataset.examples("test_id")[0]
    tokens = prompt_tokens(run.dataset, ex.input_tokens)
    times = []
    for _ in range(max(1, args.repeats)):
        start = time.perf_counter()
        g = attribution_graph(bridge, tcs, tokens, vocab=run.dataset.vocab, answer=ex.target_tokens[0])
        times.append(time.perf_counter() - start)
    graph_s = statistics.median(times)
    ref_s = statistics.median(reference_seconds(bridge, tokens, g.n_features + g.n_logits) for _ in range(3))
    print("\n| layer | rows | collect (s) | train (s) | FVU (MLP out) | L0 | dead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['layer']} | {r['rows']} | {r['collect_s']:.1f} | {r['train_s']:.1f} | {r['fvu']:.3f} | {r['l0']:.1f} | {r['dead']} |"
        )
    if rep is not None:
        print(
            f"\nreplacement model (every MLP replaced): FVU {rep.fvu:.3f}, L0 (sum over layers) {rep.l0:.1f}, "
            f"accuracy {rep.accuracy_spliced:.3f} (clean {rep.accuracy_clean:.3f}, MLPs zeroed {rep.accuracy_zero:.3f}), "
            f"accuracy recovered {rep.accuracy_recovered:.3f}, loss recovered {rep.loss_recovered:.3f}"
        )
    print("\n| what | seconds | target |")
    print("|---|---|---|")
    print(
        f"| attribution graph, 1 prompt ({g.n_features} features, {g.n_nodes} nodes) | {graph_s:.3f} | <= {TARGET_SECONDS} |"
    )
    print(f"| reference: forward + backward of {g.n_features + g.n_logits} prompt copies | {ref_s:.3f} | |")
    print(f"| ratio graph / reference | {graph_s / ref_s:.1f}x | |")
    print(f"\ngraph adds up: max |value - (incoming edges + bias)| = {g.max_residual():.2e} (float32)")
    analysis = bridge_analysis(args, run, bridge, tcs)
    print(
        f"\nbridge analysis over {args.prompts} test-ID prompts: "
        + ", ".join(f"{k} {v:.3f}" for k, v in analysis.items())
    )
    print(f"\nmachine: {describe('cpu')}, threads {torch.get_num_threads()}")
    return 0 if graph_s <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
