"""The report's depth section for a looped k-hop run: does hop ``k`` happen at iteration ``k``?

For chains of each trained depth (held-out chains) and of the deeper test depths, the logit
lens per loop iteration at each hop's position (:func:`interp.loop_lens.hop_iterations`): a
table of the iteration at which each hop's entity becomes top-1 and stays, and a chart of
that iteration against the hop, beside the line of one hop per iteration. Then the run's last
evaluation by depth: accuracy at the trained loops and under adaptive halting. The lens
tables are computed once per checkpoint and kept in ``RUN_DIR/analyses``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from circuits.views.render import Figure, Section, line_chart, table
from interp.checkpoint_analyses import cached_analysis
from interp.data import CompositionConfig, depth_test, heldout_chains
from interp.loop_lens import hop_iterations
from interp.models import context_size
from interp.runs import LoadedRun

REACHED = 0.5
"""The chart draws a hop only where at least this share of the chains reach it (the table has every hop)."""


def depth_sets(run: LoadedRun, n: int) -> dict[int, list]:
    """Depth -> up to ``n`` all-ID chains: held-out chains of each trained depth, then the deeper test depths
    the model has positions for."""
    data, ds = run.config.data, run.dataset
    trained = range(data.min_hops or data.n_hops, data.n_hops + 1)
    out = {d: heldout_chains(ds, d, size=n, seed=data.seed) for d in trained}
    deepest = context_size(run.model) - 3  # head, relations, answer, </a>
    deeper = sorted({data.probe_hops, *run.config.train.eval_depths} - set(out))
    for depth in (d for d in deeper if data.n_hops < d <= deepest):
        out[depth] = depth_test(ds, depth, size=n, seed=data.seed)["id"]
    return {d: chains for d, chains in out.items() if chains}


def hop_rows(run: LoadedRun, n: int = 200) -> list[dict[str, Any]]:
    """The hop-iteration table of every depth (cached per checkpoint)."""

    def compute() -> list[dict[str, Any]]:
        sets = depth_sets(run, n)
        loops = max([run.config.model.n_loops, *sets])
        rows = []
        for depth, chains in sets.items():
            for row in hop_iterations(run.model, chains, run.dataset.vocab, loops=loops).table():
                rows.append({"depth": depth, "loops read": loops, **row})
        return rows

    return cached_analysis(run.checkpoint, "hop_iterations", {"n": n}, compute, code=("circuits.views.depth_report",))


def depth_figures(rows: list[dict[str, Any]], last_metrics: dict[str, Any]) -> list[Figure]:
    """The hop table, settled iteration against hop, and accuracy by depth from the last evaluation."""
    hops = sorted({r["hop"] for r in rows})
    series: dict[str, list[float | None]] = {"one hop per iteration": [float(k) for k in hops]}
    for depth in sorted({r["depth"] for r in rows}):
        mine = {r["hop"]: r["settled_mean"] for r in rows if r["depth"] == depth and r["reached"] >= REACHED}
        series[f"{depth}-hop chains"] = [mine.get(k) for k in hops]
    title = "hop iterations: the logit lens at r_k after each iteration (all-ID chains)"
    figs = (
        []
        if not rows
        else [
            line_chart(
                hops,
                series,
                title=f"iteration at which hop k's entity is top-1 at r_k and stays (hops {REACHED:.0%} of chains reach)",
                x_title="hop k",
                y_title="iteration",
                markers=True,
            )
        ]
    )
    figs.append(table(rows, title=title))

    def by_depth(prefix: str) -> list[str]:
        found = [k for k in last_metrics if k.startswith(prefix) and k[len(prefix) :].isdigit()]
        return sorted(found, key=lambda k: int(k[len(prefix) :]))

    names = [*by_depth("held_d"), "test_id", "test_ood", *by_depth("id_d")]
    acc = [
        {
            "prompts": name,
            "accuracy": last_metrics.get(name),
            "halting": last_metrics.get(f"{name}_halt"),
            "halting iteration (mean)": last_metrics.get(f"{name}_halt_iter"),
        }
        for name in names
        if last_metrics.get(name) is not None
    ]
    if acc:
        figs.append(table(acc, title=f"accuracy by depth at step {last_metrics.get('step')} (trained loops; halting)"))
    return figs


DEPTH_TITLE = "Depth: one hop per iteration?"
DEPTH_NOTE = (
    "The residual stream at r_k (the token that fixes hop k) after each loop iteration, read through the final "
    "normalisation and unembedding: the first iteration from which hop k's entity (the k-th bridge, the answer for "
    "the last hop) stays top-1. A model that composes one hop per iteration follows the diagonal."
)


def depth_section(
    run: LoadedRun, metrics: list[dict[str, Any]], *, log: Callable[[str], None] | None = None
) -> Section:
    """The report section for a looped k-hop run."""
    (log or (lambda _m: None))("hop iterations")
    return Section(DEPTH_TITLE, depth_figures(hop_rows(run), metrics[-1] if metrics else {}), DEPTH_NOTE)


def has_depth_section(run: LoadedRun) -> bool:
    """Is ``run`` a looped model on k-hop composition data (the section applies)."""
    data = run.config.data
    return isinstance(data, CompositionConfig) and run.config.model.n_loops > 1 and run.dataset.config == data


__all__ = ["DEPTH_NOTE", "DEPTH_TITLE", "depth_figures", "depth_section", "depth_sets", "has_depth_section", "hop_rows"]
