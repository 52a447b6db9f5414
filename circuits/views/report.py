"""One self-contained HTML report per training run: what the model learned, and how.

``write_report(RUN_DIR)`` loads the run's last checkpoint and writes ``RUN_DIR/report.html``
(and the circuit as ``RUN_DIR/report.circuit.json``):

1. grokking curves (accuracies over training, from ``metrics.jsonl``);
   then the interactive explorer (:mod:`circuits.views.explorer`): a checkpoint slider over the
   accuracy curves, the lens and tracing heatmaps and the circuit at up to 8 checkpoints, an
   edge-count slider with the circuit's faithfulness at that size, and the final model itself
   running in the page (queries, logit lens, patching one state from a second query);
2. logit-lens heatmaps: MRR of the intermediate and final tokens at every layer x position;
3. causal-tracing heatmaps: top-1 change rate per swapped input token;
4. where the intermediate lives: decodable, causally used, and the interchange test;
5. the circuit found by EAP-IG, drawn as a graph, with its faithfulness and completeness
   under mean and resample ablation;
6. attention patterns of the circuit's heads on a few prompts (circuitsvis);
7. circuit formation: the key states' causal strength and MRR over the checkpoints;
8. for modular arithmetic, Nanda's progress measures and the Fourier view of the weights across
   the checkpoints (:mod:`circuits.views.progress_report`), after the curves.

The file needs no network: SVG is inline, circuitsvis runs from its bundled script, and the
explorer's scripts and float16 weights are inlined.
A section that cannot be computed (an untrained model has no circuit to find) shows its
error instead; the rest of the report is still written.

Each section is a function of :mod:`circuits.views.sections` returning :class:`~circuits.views.render.Figure` s
(``lens_figures``, ``tracing_figures`` ...): a notebook calls the same functions and displays the
figures inline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from circuits.discover import find_circuit
from circuits.formation import circuit_formation
from circuits.graph import CircuitGraph
from circuits.localize import localize
from circuits.space import ModelGraph
from circuits.tasks import dataset_task
from circuits.views.depth_report import DEPTH_NOTE, DEPTH_TITLE, depth_section, has_depth_section
from circuits.views.explorer.page import explorer_figures
from circuits.views.progress_report import progress_section
from circuits.views.render import (
    Figure,
    Section,
    error_figure,
    page,
)
from circuits.views.sections import (
    CURVES,
    attention_figures,
    circuit_figures,
    formation_figures,
    grid_figures,
    grokking_curves,
    localization_figures,
    position_labels,
)
from interp.checkpoint_analyses import cached_analysis, checkpoint_grids
from interp.errors import GrokscopeError
from interp.fourier import is_modular
from interp.io import atomic_write_text
from interp.models import to_bridge
from interp.runs import list_checkpoints, load_checkpoint, read_metrics

# ------------------------------------------------------------------------------- report
FAMILY_NAMES = {"gpt2": "GPT-2", "llama": "a Llama-style transformer"}


def _guard(fn: Callable[[], list[Figure]]) -> list[Figure]:
    try:
        return fn()
    except (GrokscopeError, ValueError, KeyError, IndexError, RuntimeError) as err:
        return [error_figure(f"not available: {type(err).__name__}: {err}")]


def build_report(
    run_dir: str | Path,
    *,
    n: int = 200,
    device: torch.device | str | None = "cpu",
    formation: bool = True,
    explorer: bool = True,
    explorer_checkpoints: int = 8,
    node_features: Mapping[str, list[dict[str, Any]]] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[str, CircuitGraph | None]:
    """The report's HTML and the circuit it found (None if none could be found).

    ``explorer`` adds the interactive explorer (the model in the page, ``explorer_checkpoints`` evenly
    spaced checkpoints on its slider); ``node_features`` (node name -> rows ``{"label", "value"}``) are shown
    when a node of its circuit graph is clicked."""
    say = log or (lambda _msg: None)
    run_dir = Path(run_dir)
    run = load_checkpoint(run_dir, device=device)
    ds, m = run.dataset, run.config.model
    bridge = to_bridge(run.model)
    sections: list[Section] = []
    found: dict[str, Any] = {}

    say("grokking curves")
    metrics = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    sections.append(
        Section(
            "Grokking",
            _guard(lambda: [grokking_curves(metrics)]) if metrics else [error_figure("no metrics.jsonl")],
            "Exact-match accuracy on the training set and the probe splits. Grokking: training accuracy saturates "
            "first; held-out in-distribution (test_id) accuracy rises much later.",
        )
    )
    say("logit lens and causal tracing")
    # every per-checkpoint grid of the report (these, the explorer's, circuit formation's) on the same prompts,
    # computed once per checkpoint and kept in RUN_DIR/analyses
    n_grid = min(n, 100)

    def grids() -> tuple[list[Figure], list[Figure]]:
        if "grids" not in found:
            found["grids"] = grid_figures(checkpoint_grids(run.checkpoint, bridge, ds, n=n_grid), ds)
        return found["grids"]

    sections.append(
        Section(
            "Logit lens",
            _guard(lambda: grids()[0]),
            "The residual stream after l blocks, read through the final LayerNorm and unembedding: mean reciprocal "
            "rank of a token over training-inferred prompts.",
        )
    )
    sections.append(
        Section(
            "Causal tracing",
            _guard(lambda: grids()[1]),
            "One input token is swapped so that the answer changes; the swapped run's state S[l, p] is pasted into "
            "the clean run. High: the answer depends on what that state carries about the swapped token.",
        )
    )

    say("localisation")

    def where() -> list[Figure]:
        found["locs"] = localize(bridge, ds, n=n)
        return localization_figures(found["locs"])

    sections.append(
        Section(
            "Where the intermediate lives",
            _guard(where),
            "Lens: the intermediate is top-1. Causal: swapping the token that sets it and pasting the state changes "
            "the answer. Interchange: pasting the state from a prompt whose intermediate differs makes the model give "
            "the answer that intermediate implies.",
        )
    )

    say("circuit discovery")

    def discover() -> list[Figure]:
        def search() -> dict[str, Any]:
            task = dataset_task(ds, n=max(1, n // 3), device=bridge.cfg.device)
            return json.loads(find_circuit(bridge, task).to_json(indent=None))

        params = {"task_n": max(1, n // 3), "seed": 0, "method": "eap-ig", "ablation": "mean", "target": 0.9}
        data = cached_analysis(run.checkpoint, "circuit", params, search, code=("circuits.discover",))
        found["circuit"] = CircuitGraph.from_data(data)
        return circuit_figures(found["circuit"])

    sections.append(
        Section(
            "Circuit",
            _guard(discover),
            "Edges scored by EAP-IG on clean against corrupt prompts; the fewest strongest edges that keep 90% of the "
            "logit difference under mean ablation. Blue edges: corrupting them lowers the metric. Dashed arcs: a head "
            "reads keys/values at one position and writes at a later one.",
        )
    )
    say("attention patterns")
    sections.append(
        Section(
            "Attention patterns of the circuit's heads",
            _guard(lambda: attention_figures(bridge, ds, found.get("circuit"))),
            "Destination (row) by source (column) attention of each head, on held-out prompts.",
        )
    )

    if explorer:
        say("explorer")

        def explore() -> list[Figure]:
            circuit = found.get("circuit")
            n_edges = ModelGraph.of(bridge, len(position_labels(ds))).n_edges if circuit is not None else None
            return explorer_figures(
                run_dir,
                run.model,
                ds,
                position_labels(ds),
                step=run.step,
                circuit_size=len(circuit) if circuit is not None else None,
                n_edges=n_edges,
                metrics=list(metrics),
                curves=CURVES,
                n=n_grid,
                max_checkpoints=explorer_checkpoints,
                device=device,
                node_features=dict(node_features or {}),
                log=say,
            )

        sections.insert(
            1,
            Section(
                "Explorer",
                _guard(explore),
                "Drag the checkpoint slider to watch the circuit form: accuracy, lens and tracing heatmaps and the "
                "circuit (its strongest edges at that checkpoint; hover an edge for its score, click a node). Below, the "
                "final model runs in this page: pick a prompt, read its answer and logit lens, and patch any state "
                "from a second prompt.",
            ),
        )

    if formation:
        say("circuit formation")

        def over_training() -> list[Figure]:
            if len(list_checkpoints(run_dir)) < 2:
                return [error_figure("only one checkpoint: nothing to follow over training")]
            locs = found.get("locs")
            layer = next(iter(locs.values())).best_layer if locs else None
            # with the explorer: its checkpoints, whose lens and tracing grids it has already computed
            ckpts = explorer_checkpoints if explorer else 25
            return formation_figures(
                circuit_formation(run_dir, layer=layer, n=n_grid, device=device, max_checkpoints=ckpts)
            )

        sections.append(
            Section(
                "Circuit formation",
                _guard(over_training),
                "Per checkpoint: the causal strength (top-1 change rate) of the key states and the lens MRR of what "
                "they hold (Wang et al. 2024, Figure 4b-c).",
            )
        )

    if is_modular(ds) and len(list_checkpoints(run_dir)) >= 2:
        try:
            sections.insert(2, progress_section(run_dir, ds, log=say))
        except (GrokscopeError, ValueError) as err:
            sections.insert(2, Section("Progress measures", [error_figure(f"not available: {err}")], ""))

    if has_depth_section(run):
        figures = _guard(lambda: list(depth_section(run, metrics, log=say).figures))
        sections.insert(2, Section(DEPTH_TITLE, figures, DEPTH_NOTE))

    if (run_dir / "features").is_dir():  # sparse dictionaries saved by `grokscope features train`
        from circuits.views.feature_report import features_section

        say("features")
        sections.extend(features_section(run_dir, bridge, ds, log=say))

    last = metrics[-1] if metrics else {}
    accs = ", ".join(f"{k} {last[k]:.3f}" for k in ("train", "test_id", "test_ood") if last.get(k) is not None)
    subtitle = (
        f"{run.config.name}: {ds.task} task, {len(ds.vocab)} tokens; {FAMILY_NAMES[m.family]} with {m.n_layers} "
        f"{'applied blocks' if m.n_loops > 1 else 'layers'}, "
        f"{m.n_heads} heads, d_model {m.d_model}; checkpoint at step {run.step}"
        + (f"; {accs}" if accs else "")
        + f". Written {time.strftime('%Y-%m-%d %H:%M')}."
    )
    return page(f"grokscope report: {run_dir.name}", sections, subtitle=subtitle), found.get("circuit")


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    n: int = 200,
    device: torch.device | str | None = "cpu",
    formation: bool = True,
    explorer: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write the run's HTML report (default ``RUN_DIR/report.html``) and its circuit JSON next to it
    (``report.circuit.json``); returns the report's path."""
    run_dir = Path(run_dir)
    out = run_dir / "report.html" if out is None else Path(out)
    html, circuit = build_report(run_dir, n=n, device=device, formation=formation, explorer=explorer, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    if circuit is not None:
        circuit.save(out.with_suffix(".circuit.json"))
    return out
