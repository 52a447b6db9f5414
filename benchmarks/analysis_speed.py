"""Time the analyses on one trained composition run, and print the paper's mechanism findings.

For a run folder (any composition run; made for the paper-scale graph of the
``composition-paper-fast`` preset) this times, each on ``--n`` test-ID prompts:

* logit lens of the bridge, r2 and the answer at every layer and position (``dataset_lens``);
* where the bridge lives: the lens of b plus interchange at S[l, r1] (``locate_bridge``);
* the paper's causal tracing, swapping h, r1 and r2 (``trace_counterfactual``);
* circuit discovery with EAP-IG to faithfulness 0.9 (``find_circuit``, ``--circuit-n`` prompts);
* the whole HTML report (``build_report``, explorer included; ``--no-report`` skips it);

and prints the findings they measure: the layer where b is first top-1 at r1, the best
interchange accuracy, the OOD failure signature (b still resolved at r1 on test-OOD prompts
while the answer is not), and the circuit's size and faithfulness.

    python benchmarks/analysis_speed.py RUN_DIR [--n 300] [--circuit-n 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from _machine import describe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=300, help="prompts for the lens, localisation and tracing (default 300)")
    ap.add_argument("--circuit-n", type=int, default=60, help="prompts for circuit discovery (default 60)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's choice)")
    ap.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from circuits.discover import find_circuit
    from circuits.localize import locate_bridge
    from circuits.tasks import composition_task
    from circuits.views.report import build_report
    from interp.lens import dataset_lens
    from interp.models import to_bridge
    from interp.runs import load_checkpoint
    from interp.tracing import trace_counterfactual

    run = load_checkpoint(args.run_dir, device="cpu")
    ds, n_layers = run.dataset, run.config.model.n_layers
    bridge = to_bridge(run.model)
    rows: list[tuple[str, float]] = []

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        rows.append((name, time.perf_counter() - start))
        print(f"{name}: {rows[-1][1]:.1f} s", file=sys.stderr, flush=True)
        return out

    lens = timed("logit lens (bridge, r2, answer)", lambda: dataset_lens(bridge, ds, split="test_id", n=args.n))
    loc = timed("locate the bridge (lens + interchange)", lambda: locate_bridge(bridge, ds, "test_id", n=args.n))
    trace = timed("causal tracing (h, r1, r2 swaps)", lambda: trace_counterfactual(bridge, ds, "test_id", n=args.n))
    circuit = timed(
        "circuit discovery (EAP-IG, faithfulness 0.9)",
        lambda: find_circuit(bridge, composition_task(ds, "test_id", n=args.circuit_n), target=0.9),
    )
    ood = dataset_lens(bridge, ds, ("bridge", "answer"), split="test_ood", n=args.n)
    html_bytes = 0
    if not args.no_report:
        html, _ = timed("HTML report (explorer included)", lambda: build_report(args.run_dir))
        html_bytes = len(html.encode())

    print(
        f"Run {args.run_dir} (step {run.step}; {run.config.model.n_layers} layers, d_model {run.config.model.d_model}; "
        f"{ds.config.n_entities} entities, phi {ds.config.phi}); {args.n} test-ID prompts."
    )
    print(f"Machine: {describe('cpu')}.\n")
    print("| analysis | seconds |")
    print("|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} |")
    if html_bytes:
        print(f"\nReport size: {html_bytes / 1e6:.2f} MB.")

    b_top1 = lens["bridge"].top1  # (layer, pos): fraction of prompts with b top-1
    first = next((layer for layer in range(n_layers + 1) if float(b_top1[layer, 1]) >= 0.5), None)
    print("\n| finding | measured |")
    print("|---|---|")
    print(f"| b top-1 at r1, after each block 0..{n_layers} | {', '.join(f'{float(v):.2f}' for v in b_top1[:, 1])} |")
    print(f"| first layer with b top-1 at r1 for >= 50% | {first} |")
    print(f"| b top-1 at h / r2 (best layer) | {float(b_top1[:, 0].max()):.2f} / {float(b_top1[:, 2].max()):.2f} |")
    print(
        f"| interchange at S[l, r1], l = 0..{n_layers} (baseline {loc.interchange_baseline:.2f}) | "
        f"{', '.join(f'{float(v):.2f}' for v in loc.interchange)} |"
    )
    print(
        f"| answer top-1 at r2, after each block | {', '.join(f'{float(v):.2f}' for v in lens['answer'].top1[:, 2])} |"
    )
    for swap, grid in trace.items():
        print(
            f"| tracing, {swap} swap: top-1 change at r1 / r2, per layer | "
            f"{', '.join(f'{float(v):.2f}' for v in grid[:, 1])} / {', '.join(f'{float(v):.2f}' for v in grid[:, 2])} |"
        )
    print(
        f"| test-OOD: b top-1 at r1 (best layer) / answer top-1 at the output | "
        f"{float(ood['bridge'].top1[:, 1].max()):.2f} / {float(ood['answer'].top1[n_layers, 2]):.2f} |"
    )
    ev = circuit.meta.get("evaluations", {})
    faith = ", ".join(f"{k} {v['faithfulness']:.2f}" for k, v in ev.items())
    print(f"| circuit: edges kept / all, faithfulness | {len(circuit)} / {circuit.space.n_edges}, {faith} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
