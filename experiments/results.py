"""One results table per experiment (CSV and Markdown) and its figures.

A trial's record is what its run directory holds: ``summary.json`` (steps, memorisation
and grokking steps, the last evaluation) and the accuracy curves from ``metrics.jsonl``.
:func:`trial_record` reads it (on the worker that trained, so a cluster needs no shared
disk for the table); :func:`trial_row` flattens it into one table row; failed trials get a
row too, with ``status = failed`` and the one-line error.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from interp.errors import CheckpointError
from interp.io import atomic_write_bytes, atomic_write_text, read_json, read_json_lines

SPLITS = ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood")
STATS = ("status", "grokked", "memorized_step", "grokked_step", "steps", "seconds", *SPLITS, "best_test_ood", "error")
CURVE_KEYS = ("step", "train", "test_id", "test_ood")
ANALYSIS_FILE = "analysis.json"  # an experiment's per-trial analysis (experiments.analyses), next to summary.json


def trial_record(run_dir: str | Path) -> dict[str, Any]:
    """``summary.json`` plus the accuracy curves of a finished run directory."""
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json", CheckpointError, what="run summary", expect=dict)
    rows = read_json_lines(
        run_dir / "metrics.jsonl", CheckpointError, what="metrics row", invalid="corrupted metrics row"
    )
    record = {"summary": summary, "curve": [{k: row.get(k) for k in CURVE_KEYS} for _, row in rows]}
    if (run_dir / ANALYSIS_FILE).is_file():
        record["analysis"] = read_json(run_dir / ANALYSIS_FILE, CheckpointError, what="trial analysis")
    return record


def _best(curve: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in curve if r.get(key) is not None and not math.isnan(r[key])]
    return max(values) if values else None


def trial_row(
    name: str, values: dict[str, Any], record: dict[str, Any] | None, error: str | None = None
) -> dict[str, Any]:
    """One table row: trial name, swept values, then :data:`STATS` (empty where failed)."""
    row: dict[str, Any] = {"trial": name, **values}
    row.update({k: None for k in STATS})
    if record is None:
        row.update(status="failed", error=error or "unknown error")
        return row
    s = record["summary"]
    last = s.get("metrics") or {}
    row.update(
        status="ok",
        grokked=s.get("grokked_step") is not None,
        memorized_step=s.get("memorized_step"),
        grokked_step=s.get("grokked_step"),
        steps=s.get("step"),
        seconds=s.get("seconds"),
        best_test_ood=_best(record["curve"], "test_ood"),
        **{k: last.get(k) for k in SPLITS},
    )
    row.update({k: v for k, v in last.items() if "/" in k})  # a task's query types (test_ood/eq ...)
    row.update(record.get("analysis") or {})
    return row


def format_cell(value: Any) -> str:
    """The text of a table cell, the same in CSV and Markdown."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        text = format(value, ".4g")
        return text if any(c in text for c in ".einf") else text + ".0"  # 1.0 stays a float
    return str(value)


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of ``rows``, in the order they first appear: the columns of the results table."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``rows`` as CSV text, one column per key (``table_columns``), cells as ``format_cell`` writes them."""
    columns = table_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _md_cell(value: Any) -> str:
    return format_cell(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[dict[str, Any]], *, title: str, finding: str, description: str, machine: str) -> str:
    """``results.md``: the experiment's ``title``, the paper ``finding`` it tests, what ran, the ``machine``, then the table of ``rows``."""
    columns = table_columns(rows)
    lines = [
        f"# {title}",
        "",
        f"**Paper finding tested:** {finding}",
        "",
        f"**What ran:** {description}",
        "",
        f"**Machine:** {machine}",
        "",
        f"**Written:** {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def machine_description(ray_where: str) -> str:
    """Host, OS, CPUs, torch version and where Ray ran the trials."""
    import torch

    return (
        f"{platform.node()} ({platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}); trials on {ray_where}"
    )


# ----------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def curves_figure(path: str | Path, curves: dict[str, list[dict[str, Any]]], *, title: str) -> Path:
    """Test-ID (solid) and test-OOD (dashed) accuracy against step, one colour per trial."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (name, curve) in enumerate(curves.items()):
            color = colors[i % len(colors)]
            steps = [r["step"] for r in curve]
            for key, style in (("test_id", "-"), ("test_ood", "--")):
                ys = [math.nan if r.get(key) is None else r[key] for r in curve]
                ax.plot(steps, ys, style, color=color, label=f"{name} {key}")
        if not curves:
            ax.text(0.5, 0.5, "no finished trials", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        if curves:
            ax.legend(fontsize=7, ncol=2, loc="best")
        ax.grid(alpha=0.3)
        return atomic_write_bytes(path, _png(fig))
    finally:
        plt.close(fig)


def _draw(
    ax: Any, ok: list[dict[str, Any]], colors: list[str], *, kind: str, ys: Sequence[str], x: str | None, logx: bool
) -> None:
    """One panel: ``ys`` against column ``x`` (line) or grouped per trial (bar)."""
    steps_axis = any(y.endswith("_step") for y in ys)
    if kind == "line" and x is not None:
        for i, y in enumerate(ys):
            pts = sorted((r[x], r[y], r["steps"]) for r in ok if r.get(x) is not None)
            hit = [(a, b) for a, b, _ in pts if b is not None]
            miss = [(a, c) for a, b, c in pts if b is None and y.endswith("_step")]
            if hit:
                ax.plot([a for a, _ in hit], [b for _, b in hit], "o-", color=colors[i], label=y)
            if miss:
                ax.plot(
                    [a for a, _ in miss],
                    [c for _, c in miss],
                    "o",
                    mfc="none",
                    color=colors[i],
                    label=f"{y} not reached (last step)",
                )
        ax.set_xlabel(x)
        if logx:
            ax.set_xscale("log")
    else:
        width = 0.8 / max(len(ys), 1)
        for i, y in enumerate(ys):
            labelled = False
            for j, r in enumerate(ok):
                value, hatch = r.get(y), None
                if value is None and y.endswith("_step"):
                    value, hatch = r.get("steps") or 0, "//"
                label = None
                if not labelled and (hatch is None or j == len(ok) - 1):  # the legend shows a plain bar if any
                    label, labelled = (f"{y} (hatched: not reached)" if y.endswith("_step") else y), True
                ax.bar(
                    j + (i - (len(ys) - 1) / 2) * width,
                    value or 0,
                    width,
                    color=colors[i],
                    hatch=hatch,
                    alpha=0.5 if hatch else 1.0,
                    label=label,
                )
        ax.set_xticks(range(len(ok)), [r["trial"] for r in ok], rotation=20)
    if not steps_axis:
        ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("step" if steps_axis else "accuracy")
    if ok:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no finished trials", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)


def summary_figure(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    kind: str,
    ys: Sequence[str],
    x: str | None = None,
    logx: bool = False,
    title: str = "",
) -> Path:
    """``line``: columns ``ys`` against column ``x``; ``bar``: grouped bars of ``ys`` per trial.

    A step column (``grokked_step``) that is empty because the trial did not get there is
    drawn at the trial's last step as an open marker (line) or a hatched bar (bar). When
    ``ys`` are steps, a second panel shows the final test-ID and test-OOD accuracy the same
    way, so a trial that did not grok within the budget still shows how far it got.
    """
    plt = _pyplot()
    ok = [r for r in rows if r.get("status") == "ok"]
    steps_axis = any(y.endswith("_step") for y in ys)
    fig, axes = plt.subplots(1, 2 if steps_axis else 1, figsize=(11 if steps_axis else 6.5, 4), squeeze=False)
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        _draw(axes[0, 0], ok, colors, kind=kind, ys=ys, x=x, logx=logx)
        if steps_axis:
            _draw(axes[0, 1], ok, colors[len(ys) :], kind=kind, ys=("test_id", "test_ood"), x=x, logx=logx)
            axes[0, 1].set_title("final accuracy", fontsize=9)
        axes[0, 0].set_title(title, fontsize=9)
        return atomic_write_bytes(path, _png(fig))
    finally:
        plt.close(fig)


def write_results(
    out: str | Path,
    rows: Sequence[dict[str, Any]],
    curves: dict[str, list[dict[str, Any]]],
    *,
    experiment: Any,
    scale: str,
    machine: str,
) -> dict[str, Path]:
    """Write ``OUT/results.csv``, ``OUT/results.md`` and ``OUT/figures/*.png``; return their paths."""
    out = Path(out)
    paths = {
        "csv": atomic_write_text(out / "results.csv", to_csv(rows)),
        "md": atomic_write_text(
            out / "results.md",
            to_markdown(
                rows,
                title=f"Experiment {experiment.name} (scale {scale})",
                finding=experiment.finding,
                description=experiment.description,
                machine=machine,
            ),
        ),
        "curves": curves_figure(
            out / "figures" / f"{experiment.name}-curves.png",
            curves,
            title=f"{experiment.name} ({scale}): test-ID solid, test-OOD dashed",
        ),
    }
    sp = experiment.summary
    x = None if sp.x is None else sp.x.rsplit(".", 1)[-1]
    paths["summary"] = summary_figure(
        out / "figures" / f"{experiment.name}-summary.png",
        rows,
        kind=sp.kind,
        ys=sp.ys,
        x=x,
        logx=sp.logx,
        title=f"{experiment.name} ({scale}): {sp.title}",
    )
    return paths
