"""Run an experiment's trials as Ray tasks and gather one results table.

Locally, with no set-up, the runner starts a private Ray instance with ``cpus`` CPUs (all
of them by default) and stops it at the end; given ``address`` it joins an existing
cluster (``ray start --head`` on one machine, ``ray start --address ...`` on the others;
then ``OUT`` should be on a disk every node sees). Each trial is one task with as many
CPUs as its ``train.threads`` and writes its own run directory ``OUT/trials/TRIAL/``.

Progress: a bar over trials on the driver, and one line per finished trial with its
numbers. A trial that raises, or whose worker dies, becomes a ``failed`` row with a
one-line error; the other trials and the table are kept. Running the same command again
reuses every finished trial (``summary.json`` present, same config) and resumes a trial
that stopped part way from its last checkpoint.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.plan import Plan
from experiments.results import ANALYSIS_FILE, machine_description, trial_record, trial_row, write_results
from interp.errors import ConfigError, GrokscopeError
from interp.io import atomic_write_json
from interp.runs import stored_config
from interp.train import RunConfig


class ExperimentError(GrokscopeError, RuntimeError):
    """The sweep could not run (Ray could not start or connect); one line, like every grokscope error."""


@dataclass
class SweepResult:
    """Where the table and figures went, the rows, and which trials failed or were reused."""

    out: Path
    rows: list[dict[str, Any]]
    paths: dict[str, Path]
    failed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def run_trial(
    config: dict[str, Any], run_dir: str, analysis: Callable[[Path], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Body of one Ray task: train (or resume) the trial, run the experiment's ``analysis`` on it
    (once: ``RUN_DIR/analysis.json``), return its record (summary + curves + analysis).

    The trial holds its folder's write lock throughout; a second sweep writing the same trial
    makes this one a ``failed`` row naming the holder's pid.
    """
    from interp.lock import run_lock
    from interp.train import RunConfig, train_or_resume

    with run_lock(run_dir) as path:
        train_or_resume(RunConfig.from_dict(config), path)  # an earlier attempt stopped part way: continue it
        if analysis is not None and not (Path(path) / ANALYSIS_FILE).is_file():
            atomic_write_json(Path(path) / ANALYSIS_FILE, analysis(Path(path)))
        return trial_record(path)


def _analysed(analysis: Callable[[Path], dict[str, Any]]) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """:func:`run_trial` with an experiment's analysis (a plain function, as Ray's tasks must be)."""

    def trial(config: dict[str, Any], run_dir: str) -> dict[str, Any]:
        return run_trial(config, run_dir, analysis)

    return trial


def one_line_error(err: BaseException) -> str:
    """``Type: message`` of the root cause of a task failure, on one line."""
    cause = getattr(err, "cause", None)  # RayTaskError wraps the exception the task raised
    if isinstance(cause, BaseException):
        err = cause
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    # Ray's own errors carry a traceback-like body after their first line
    return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"[:500]


def _same_config(run_dir: Path, cfg: RunConfig) -> bool | None:
    """None: no run there; else whether the run there has config ``cfg`` (an unreadable config is another one)."""
    try:
        stored = stored_config(run_dir)
    except ConfigError:
        return False
    return None if stored is None else stored == cfg


def _summary_line(row: dict[str, Any], done: int, total: int, *, reused: bool = False) -> str:
    head = f"[{done}/{total}] {row['trial']}"
    if row["status"] != "ok":
        return f"{head}: FAILED {row['error']}"
    grok = f"grokked at {row['grokked_step']}" if row["grokked"] else f"not grokked in {row['steps']} steps"
    mem = f"memorized at {row['memorized_step']}" if row["memorized_step"] is not None else "not memorized"

    def acc(k: str) -> str:
        return "-" if row.get(k) is None else f"{row[k]:.3f}"

    return (
        f"{head}: {grok}, {mem}; train {acc('train')} test_id {acc('test_id')} "
        f"test_ood {acc('test_ood')} (best {acc('best_test_ood')}); {row['seconds']:.0f}s"
        + (" (reused)" if reused else "")
    )


def _check_reachable(address: str) -> None:
    """Fail fast, in one line, when a ``HOST:PORT`` address does not answer (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto", "ray://..." and the like: leave them to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ExperimentError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
            "`ray start --head --port=PORT` or drop --address to run locally"
        ) from None


def _start_ray(address: str | None, cpus: int | None) -> tuple[bool, str]:
    """Start or join Ray; return (whether we own the instance, where trials run)."""
    import ray

    if ray.is_initialized():
        return False, "an already initialized Ray instance"
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, log_to_driver=True)
            return True, f"the Ray cluster at {address} ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
        n = cpus or os.cpu_count() or 1
        ray.init(address="local", num_cpus=n, include_dashboard=False)  # never join a cluster by accident
        return True, f"local Ray ({n} CPUs)"
    except ExperimentError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        fix = (
            "check the address (ray status) or drop --address to run locally"
            if address
            else "check `ray status` and /tmp/ray"
        )
        msg = " ".join(str(err).split())[:300]
        raise ExperimentError(f"could not start {where}: {msg}; {fix}") from None


def run_experiment(
    plan: Plan,
    out: str | Path,
    *,
    address: str | None = None,
    cpus: int | None = None,
    gpus_per_trial: float = 0.0,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    trial_fn: Callable[[dict[str, Any], str], dict[str, Any]] = run_trial,
) -> SweepResult:
    """Run every trial of ``plan`` on Ray into ``OUT/trials/``; write the table and figures to ``OUT``.

    ``trial_fn(config_dict, run_dir) -> record`` is the body of each task (default
    :func:`run_trial`); a test passes one that crashes to check that nothing else is lost.
    """
    out = Path(out)
    if cpus is not None and cpus < 1:
        raise ConfigError(f"--cpus {cpus} is out of range; give at least 1")
    from tqdm.auto import tqdm

    emit = log or tqdm.write
    total = len(plan.trials)
    rows: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    reused: list[str] = []
    # reuse finished trials; refuse a folder that holds a run of some other config
    for t in plan.trials:
        run_dir = out / "trials" / t.name
        same = _same_config(run_dir, t.config)
        if same is False:
            raise ConfigError(f"{run_dir} holds a run of a different config; pick a new --out or delete that folder")
        analysed = plan.experiment.analysis is None or (run_dir / ANALYSIS_FILE).is_file()
        if same and (run_dir / "summary.json").is_file() and analysed:
            record = trial_record(run_dir)
            rows[t.name] = trial_row(t.name, t.values, record)
            curves[t.name] = record["curve"]
            reused.append(t.name)
    for i, name in enumerate(reused, 1):
        emit(_summary_line(rows[name], i, total, reused=True))
    todo = [t for t in plan.trials if t.name not in rows]
    if plan.experiment.analysis is not None and trial_fn is run_trial:
        trial_fn = _analysed(plan.experiment.analysis)

    where = "no Ray (every trial reused)"
    if todo:
        import ray
        from ray import cloudpickle

        # the task body lives in this package: ship it by value, so cluster workers need only grokscope's `interp`
        cloudpickle.register_pickle_by_value(sys.modules["experiments"])
        owned, where = _start_ray(address, cpus)
        try:
            refs = {}
            for t in todo:
                task = ray.remote(num_cpus=t.config.train.threads or 1, num_gpus=gpus_per_trial, max_retries=1)(
                    trial_fn
                )
                # an absolute path: a worker's working directory need not be the driver's
                ref = task.options(name=f"{plan.name}:{t.name}").remote(
                    t.config.to_dict(), str((out / "trials" / t.name).resolve())
                )
                refs[ref] = t
            bar = tqdm(
                total=total, initial=len(reused), desc=plan.name, unit="trial", disable=not progress, dynamic_ncols=True
            )
            try:
                pending = list(refs)
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    t = refs[ready[0]]
                    try:
                        record = ray.get(ready[0])
                        rows[t.name] = trial_row(t.name, t.values, record)
                        curves[t.name] = record["curve"]
                    except Exception as err:  # noqa: BLE001 - the task raised or its worker died
                        rows[t.name] = trial_row(t.name, t.values, None, one_line_error(err))
                    bar.update(1)
                    emit(_summary_line(rows[t.name], len(rows), total))
            finally:
                bar.close()
        finally:
            if owned:
                ray.shutdown()
        where = f"{where}, {len(reused)} reused" if reused else where

    ordered = [rows[t.name] for t in plan.trials]
    paths = write_results(
        out,
        ordered,
        {t.name: curves[t.name] for t in plan.trials if t.name in curves},
        experiment=plan.experiment,
        scale=plan.scale,
        machine=machine_description(where),
    )
    failed = [r["trial"] for r in ordered if r["status"] != "ok"]
    return SweepResult(out=out, rows=ordered, paths=paths, failed=failed, reused=reused)
