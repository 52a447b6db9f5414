"""One self-contained HTML report per training run: what the model learned, and how.

``write_report(RUN_DIR)`` loads the run's last checkpoint and writes ``RUN_DIR/report.html``
(and the circuit as ``RUN_DIR/report.circuit.json``):

1. grokking curves (accuracies over training, from ``metrics.jsonl``);
2. logit-lens heatmaps: MRR of the intermediate and final tokens at every layer x position;
3. causal-tracing heatmaps: top-1 change rate per swapped input token;
4. where the intermediate lives: decodable, causally used, and the interchange test;
5. the circuit found by EAP-IG, drawn as a graph, with its faithfulness and completeness
   under mean and resample ablation;
6. attention patterns of the circuit's heads on a few prompts (circuitsvis);
7. circuit formation: the key states' causal strength and MRR over the checkpoints.

The file needs no network: SVG is inline and circuitsvis runs from its bundled script.
A section that cannot be computed (an untrained model has no circuit to find) shows its
error instead; the rest of the report is still written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from interp.errors import GrokscopeError
from interp.intervene import cache_activations
from interp.lens import dataset_lens
from interp.models import to_bridge
from interp.tracing import trace_counterfactual
from interp.train import load_checkpoint, read_metrics
from interp.train.checkpoint import list_checkpoints

from circuits.discover import circuit_shape, find_circuit
from circuits.formation import circuit_formation
from circuits.graph import CircuitGraph
from circuits.localize import localize
from circuits.render import (
    Figure,
    Section,
    attention_heads,
    circuit_svg,
    error_figure,
    heatmap,
    line_chart,
    page,
    table,
)
from circuits.tasks import COMPARISON_POSITIONS, COMPOSITION_POSITIONS, dataset_task

LENS_TARGETS = {"composition": ("bridge", "r2", "answer"), "comparison": ("v1", "v2", "answer")}
CURVES = ("train", "train_inferred", "test_id", "test_ood", "id_atomic", "ood_atomic")


def _positions(task: str, n_pos: int) -> list[str]:
    if task == "composition" and n_pos == 3:
        return list(COMPOSITION_POSITIONS)
    if task == "comparison" and n_pos == 5:
        return list(COMPARISON_POSITIONS)
    return [str(p) for p in range(n_pos)]


def _guard(fn: Callable[[], list[Figure]]) -> list[Figure]:
    try:
        return fn()
    except (GrokscopeError, ValueError, KeyError, IndexError, RuntimeError) as err:
        return [error_figure(f"not available: {type(err).__name__}: {err}")]


def grokking_curves(metrics: list[dict[str, Any]]) -> Figure:
    """Accuracies over training steps (log scale when the run spans decades)."""
    steps = [row["step"] for row in metrics]
    series = {k: [row.get(k) for row in metrics] for k in CURVES if any(row.get(k) is not None for row in metrics)}
    spread = max(steps) / max(min(s for s in steps if s > 0), 1) if any(s > 0 for s in steps) else 1
    return line_chart(steps, series, title="accuracy over training", y_title="accuracy", y_range=(0.0, 1.0),
                      log_x=spread > 20, width=720, height=320)


def build_report(
    run_dir: str | Path,
    *,
    n: int = 200,
    device: torch.device | str | None = "cpu",
    formation: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[str, CircuitGraph | None]:
    """The report's HTML and the circuit it found (None if none could be found)."""
    say = log or (lambda _msg: None)
    run_dir = Path(run_dir)
    run = load_checkpoint(run_dir, device=device)
    ds = run.dataset
    bridge = to_bridge(run.model)
    n_pos = len(ds.examples("train_inferred")[0].input_tokens) if ds.examples("train_inferred") else 0
    labels = _positions(ds.task, n_pos)
    layers = [str(l) for l in range(run.config.model.n_layers + 1)]
    sections: list[Section] = []
    circuit: CircuitGraph | None = None

    say("grokking curves")
    metrics = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    last = metrics[-1] if metrics else {}
    sections.append(Section(
        "Grokking", _guard(lambda: [grokking_curves(metrics)]) if metrics else [error_figure("no metrics.jsonl")],
        "Exact-match accuracy on the training set and the probe splits. Grokking: training accuracy saturates "
        "first; held-out in-distribution (test_id) accuracy rises much later.",
    ))

    say("logit lens")

    def lens_figs() -> list[Figure]:
        res = dataset_lens(bridge, ds, LENS_TARGETS[ds.task], n=n)
        return [heatmap(r.mrr, layers, labels, title=f"MRR of {name}", row_title="state (blocks applied)",
                        vmin=0.0, vmax=1.0) for name, r in res.items()]

    sections.append(Section(
        "Logit lens", _guard(lens_figs) if ds.task in LENS_TARGETS else [error_figure("no lens targets")],
        "The residual stream after l blocks, read through the final LayerNorm and unembedding: mean reciprocal "
        "rank of a token over training-inferred prompts.",
    ))

    say("causal tracing")

    def trace_figs() -> list[Figure]:
        res = trace_counterfactual(bridge, ds, n=n)
        return [heatmap(t, layers, labels, title=f"swap {swap}: top-1 change rate", row_title="state (blocks applied)",
                        vmin=0.0, vmax=1.0) for swap, t in res.items()]

    sections.append(Section(
        "Causal tracing", _guard(trace_figs),
        "One input token is swapped so that the answer changes; the swapped run's state S[l, p] is pasted into "
        "the clean run. High: the answer depends on what that state carries about the swapped token.",
    ))

    say("localisation")
    loc_result: dict[str, Any] = {}

    def loc_figs() -> list[Figure]:
        loc = localize(bridge, ds, n=n)
        loc_result.update(loc)
        figs = []
        for name, lz in loc.items():
            col = lz.position
            figs.append(line_chart(
                list(range(len(layers))),
                {"lens top-1": lz.decodable[:, col].tolist(), "causal (tracing)": lz.causal[:, col].tolist(),
                 "interchange": lz.interchange.tolist()},
                title=f"{name} at {lz.position_name}", x_title="state (blocks applied)", y_range=(0.0, 1.0),
                markers=True, width=520,
            ))
        rows = [{"target": k, "position": v.position_name, "best state": v.best_layer,
                 "interchange": float(v.interchange.max()), "baseline": v.interchange_baseline,
                 "decodable at": ", ".join(map(str, v.decodable_layers())) or "-", "n": v.n_interchange}
                for k, v in loc.items()]
        return figs + [table(rows, title="interchange test")]

    sections.append(Section(
        "Where the intermediate lives", _guard(loc_figs),
        "Lens: the intermediate is top-1. Causal: swapping the token that sets it and pasting the state changes "
        "the answer. Interchange: pasting the state from a prompt whose intermediate differs makes the model give "
        "the answer that intermediate implies.",
    ))

    say("circuit discovery")
    task_holder: dict[str, Any] = {}

    def circuit_figs() -> list[Figure]:
        nonlocal circuit
        task = dataset_task(ds, n=max(1, n // 3))
        task_holder["task"] = task
        circuit = find_circuit(bridge, task)
        ev = circuit.meta["evaluations"]
        rows = [{"ablation": a, "faithfulness": e["faithfulness"], "completeness": e["completeness"],
                 "circuit accuracy": e["circuit_accuracy"], "model accuracy": e["model_accuracy"],
                 "edges": f'{e["n_edges"]} / {e["total_edges"]}'} for a, e in ev.items()]
        figs = [circuit_svg(circuit, title=circuit.summary()), table(rows, title="faithfulness and completeness")]
        if circuit.meta.get("search"):
            ks = [row[1] for row in circuit.meta["search"]]
            figs.append(line_chart(ks, {"faithfulness (mean ablation)": [row[2] for row in circuit.meta["search"]]},
                                   title="faithfulness against circuit size", x_title="edges kept",
                                   log_x=True, markers=True, width=480))
        movers = circuit_shape(circuit)["movers"][:8]
        if movers:
            figs.append(table([{"head": f"a{m.layer}.{m.head}", "from": labels[m.src_pos], "to": labels[m.dst_pos],
                                "weight": m.weight} for m in movers], title="heads that move information"))
        return figs

    sections.append(Section(
        "Circuit", _guard(circuit_figs),
        "Edges scored by EAP-IG on clean against corrupt prompts; the fewest strongest edges that keep 90% of the "
        "logit difference under mean ablation. Blue edges: corrupting them lowers the metric. Dashed arcs: a head "
        "reads keys/values at one position and writes at a later one.",
    ))

    say("attention patterns")

    def attention_figs() -> list[Figure]:
        if circuit is None or not circuit.heads:
            return [error_figure("no circuit heads")]
        scores = circuit.node_scores
        strength: dict[tuple[int, int], float] = {}
        for node, s in scores.items():
            if node.kind == "head":
                strength[(node.layer, node.head)] = strength.get((node.layer, node.head), 0.0) + abs(s)  # type: ignore[index]
        heads = sorted(circuit.heads, key=lambda lh: -strength.get(lh, 0.0))[:8]
        heads.sort()
        examples = ds.examples("test_id")[:3] or ds.examples("train_inferred")[:3]
        tokens = torch.tensor([ds.vocab.encode(ex.input_tokens) for ex in examples], dtype=torch.long)
        hooks = sorted({f"blocks.{L}.attn.hook_pattern" for L, _ in heads})
        with torch.no_grad():
            _, acts = cache_activations(bridge, tokens, hooks)
        figs = []
        for i, ex in enumerate(examples):
            pats = torch.stack([acts[f"blocks.{L}.attn.hook_pattern"][i, H] for L, H in heads])
            figs.append(attention_heads(pats, list(ex.input_tokens), [f"L{L}H{H}" for L, H in heads],
                                        title=f"{ex.input_text} -> {ex.answer}"))
        return figs

    sections.append(Section(
        "Attention patterns of the circuit's heads", _guard(attention_figs),
        "Destination (row) by source (column) attention of each circuit head, on held-out prompts.",
    ))

    if formation:
        say("circuit formation")

        def formation_figs() -> list[Figure]:
            if len(list_checkpoints(run_dir)) < 2:
                return [error_figure("only one checkpoint: nothing to follow over training")]
            best = next(iter(loc_result.values())).best_layer if loc_result else None
            df = circuit_formation(run_dir, layer=best, n=min(n, 100), device=device, max_checkpoints=25)
            steps = sorted(df["step"].unique().tolist())
            figs = []
            for metric, name in (("causal", "causal strength"), ("mrr", "lens MRR")):
                series = {}
                for state, grp in df.groupby("state", sort=False):
                    by_step = dict(zip(grp["step"], grp[metric]))
                    series[f"{state} ({grp['target'].iloc[0]})"] = [by_step.get(s) for s in steps]
                if "test_id" in df:
                    first = df.drop_duplicates("step").set_index("step")
                    series["test_id accuracy"] = [first["test_id"].get(s) for s in steps]
                figs.append(line_chart(steps, series, title=f"{name} of the key states over training",
                                       y_range=(0.0, 1.0), markers=True, width=620))
            return figs

        sections.append(Section(
            "Circuit formation", _guard(formation_figs),
            "Per checkpoint: the causal strength (top-1 change rate) of the key states and the lens MRR of what "
            "they hold (Wang et al. 2024, Figure 4b-c).",
        ))

    m = run.config.model
    accs = ", ".join(f"{k} {last[k]:.3f}" for k in ("train", "test_id", "test_ood") if last.get(k) is not None)
    subtitle = (f"{run.config.name}: {ds.task} task, {len(ds.vocab)} tokens; GPT-2 with {m.n_layers} layers, "
                f"{m.n_heads} heads, d_model {m.d_model}; checkpoint at step {run.step}"
                + (f"; {accs}" if accs else "") + f". Written {time.strftime('%Y-%m-%d %H:%M')}.")
    return page(f"grokscope report: {run_dir.name}", sections, subtitle=subtitle), circuit


def write_report(run_dir: str | Path, out: str | Path | None = None, *, n: int = 200,
                 device: torch.device | str | None = "cpu", formation: bool = True,
                 log: Callable[[str], None] | None = None) -> Path:
    """Write the run's HTML report (default ``RUN_DIR/report.html``) and its circuit JSON next to it."""
    from interp.io import atomic_write_text

    run_dir = Path(run_dir)
    out = run_dir / "report.html" if out is None else Path(out)
    html, circuit = build_report(run_dir, n=n, device=device, formation=formation, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    if circuit is not None:
        circuit.save(out.with_suffix(".circuit.json"))
    return out
