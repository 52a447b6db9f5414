"""The ``grokscope`` command line, on top of every other package.

    grokscope data composition-small --out data/comp      # a knowledge-graph dataset
    grokscope train composition-small --out runs/comp     # train until it groks
    grokscope train composition-small --out runs/p --data paper/composition   # on existing files
    grokscope resume runs/comp                            # continue a stopped run
    grokscope report runs/comp                            # one self-contained HTML report
    grokscope progress runs/modadd                        # Nanda's progress measures per checkpoint
    grokscope run                                         # the main job on the default config
    grokscope experiment phi-sweep                        # a named sweep on Ray (see `grokscope experiments`)

The packages stack ``interp`` <- ``circuits`` <- ``experiments``; this module sits at the
top and may import all three, nothing below imports it. Errors grokscope raises on purpose,
and bad option values, print as one line (``error: ...``) with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from interp.errors import ConfigError, GrokscopeError
from interp.train import TrainResult

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="grokscope: train transformers that grok on synthetic knowledge graphs, then open them up.",
)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _at_least_one(option: str, value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{option} = {value} is out of range; give at least 1 ({what})")


@app.command()
def data(
    task: str = typer.Argument(..., help="composition, comparison, complex, or a preset such as composition-small"),
    out: Path = typer.Option(..., "--out", help="directory to write the dataset into (paper layout + provenance)"),
    set_: list[str] | None = typer.Option(None, "--set", help="override a field: --set n_entities=300"),
) -> None:
    """Generate a knowledge-graph dataset into OUT (train.json, valid.json, test.json, vocab.json ...)."""
    try:
        from interp.data import data_config, generate

        cfg = data_config(task, list(set_ or []))
        dataset = generate(cfg)
        dataset.save(out)
    except GrokscopeError as err:
        _fail(err)
    sizes = ", ".join(f"{k} {v}" for k, v in dataset.sizes.items())
    typer.echo(f"wrote {dataset.task} dataset to {out} ({sizes}; vocabulary {len(dataset.vocab)})")


def _train_common(result: TrainResult) -> None:
    m = result.metrics
    accs = "  ".join(f"{k} {m[k]:.3f}" for k in ("train", "test_id", "test_ood") if m.get(k) is not None)
    typer.echo(
        f"step {result.step} in {result.seconds:.1f}s  {accs}\n"
        f"memorized at step {result.memorized_step}, grokked at step {result.grokked_step}\n"
        f"checkpoint: {result.checkpoint}"
    )


@app.command()
def train(
    config: str = typer.Argument(
        ..., help="a YAML/JSON run config or a preset (composition-small, comparison-small, ...)"
    ),
    out: Path = typer.Option(..., "--out", help="run directory (checkpoints, metrics.jsonl, tensorboard/)"),
    set_: list[str] | None = typer.Option(None, "--set", help="override: --set train.lr=1e-3 --set data.phi=9"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="stop after this many steps (at least 1)"),
    data_dir: Path | None = typer.Option(
        None,
        "--data",
        help="train on the dataset in this directory (train.json, valid.json, test.json, vocab.json; "
        "e.g. the paper's released data) instead of generating the config's; the run keeps a copy in OUT/data",
    ),
) -> None:
    """Train a model on a knowledge graph until it groks (or max_steps)."""
    try:
        from interp.data import load_dataset
        from interp.train import load_run_config
        from interp.train import train as train_run

        _at_least_one("--max-steps", max_steps, "steps to train")
        cfg = load_run_config(config)
        dataset = None
        if data_dir is not None:
            dataset = load_dataset(data_dir)
            # the dataset's own config (None without config.json) replaces the preset's data section
            cfg = cfg.with_data_from(data_dir, dataset.config)
        cfg = cfg.with_overrides(list(set_ or []))
        if dataset is not None:
            sizes = ", ".join(f"{k} {v}" for k, v in dataset.sizes.items())
            typer.echo(
                f"data: {dataset.task} dataset from {data_dir} ({sizes}); a copy goes to {out / 'data'}", err=True
            )
        result = train_run(cfg, out, dataset=dataset, max_steps=max_steps)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="a run directory written by `grokscope train`"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="stop after this many steps in all (at least 1)"),
) -> None:
    """Continue a run from its last complete checkpoint (bit-exact on the CPU), or restart one stopped before it."""
    try:
        from interp.train import resume as resume_run

        _at_least_one("--max-steps", max_steps, "steps in all")
        result = resume_run(run_dir, max_steps=max_steps)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)


@app.command()
def run(
    config: str = typer.Option("composition-small", "--config", help="preset or YAML run config"),
    out: Path = typer.Option(Path("runs/composition-small"), "--out", help="run directory"),
    set_: list[str] | None = typer.Option(None, "--set", help="override: --set train.lr=1e-3"),
) -> None:
    """The main job: generate the default knowledge graph, train until it groks, write the HTML report."""
    try:
        from interp.runs import list_checkpoints
        from interp.train import load_run_config, train_or_resume

        cfg = load_run_config(config, list(set_ or []))
        if list_checkpoints(out):
            typer.echo(f"{out} already holds a run; resuming it")
        result = train_or_resume(cfg, out)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)
    path = _report(out, None)
    typer.echo(f"report: {path}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run directory written by `grokscope train`"),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)"),
    n: int = typer.Option(200, "--n", help="examples per analysis (at least 1)"),
    formation: bool = typer.Option(True, "--formation/--no-formation", help="trace circuit formation over checkpoints"),
) -> None:
    """Write one self-contained HTML report of a run (curves, lens, tracing, circuit, attention)."""
    try:
        _at_least_one("--n", n, "examples per analysis")
    except GrokscopeError as err:
        _fail(err)
    path = _report(run_dir, out, n=n, formation=formation)
    typer.echo(f"report: {path}")


def _report(run_dir: Path, out: Path | None, *, n: int = 200, formation: bool = True) -> Path:
    try:
        from circuits.views.report import write_report

        return write_report(run_dir, out, n=n, formation=formation, log=lambda msg: typer.echo(msg, err=True))
    except GrokscopeError as err:
        _fail(err)
    raise AssertionError("unreachable")


@app.command()
def progress(
    run_dir: Path = typer.Argument(
        ..., help="a run directory of a modular-arithmetic task (e.g. modular-addition-fast)"
    ),
) -> None:
    """Nanda's progress measures at every checkpoint, as JSON lines (also kept in RUN_DIR/progress.jsonl),
    then the phases of grokking they show."""
    import json

    try:
        from interp.progress import detect_phases, progress_measures

        rows = progress_measures(run_dir)
    except GrokscopeError as err:
        _fail(err)
    for row in rows:
        typer.echo(json.dumps(row, sort_keys=True))
    typer.echo(json.dumps({"phases": detect_phases(rows)}))


@app.command()
def presets() -> None:
    """List the named run configs."""
    from interp.train import presets as table

    for name, cfg in table().items():
        m = cfg.model
        typer.echo(
            f"{name:28s} data={type(cfg.data).__name__} layers={m.n_layers} d_model={m.d_model} lr={cfg.train.lr} optimizer={cfg.train.optimizer} "
            f"steps={cfg.train.max_steps} grokked_when={'+'.join(cfg.train.grok_splits)}"
        )


@app.command()
def experiment(
    name: str = typer.Argument(..., help="a named experiment (list them with their trials: grokscope experiments)"),
    out: Path | None = typer.Option(None, "--out", help="output folder (default results/NAME-SCALE)"),
    scale: str = typer.Option("tiny", "--scale", help="tiny (a laptop, minutes) or small (bigger graphs and models)"),
    address: str | None = typer.Option(
        None, "--address", help="join an existing Ray cluster (HOST:PORT); default: local Ray"
    ),
    cpus: int | None = typer.Option(None, "--cpus", help="CPUs of the local Ray instance (default: all)"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="GPUs Ray reserves for each trial"),
    set_: list[str] | None = typer.Option(None, "--set", help="override every trial: --set train.max_steps=2000"),
) -> None:
    """Run a named experiment as a Ray sweep: results.csv, results.md and figures/ in OUT."""
    try:
        from experiments import plan_experiment, run_experiment

        plan = plan_experiment(name, scale, list(set_ or []))
        folder = out if out is not None else Path("results") / f"{name}-{scale}"
        typer.echo(f"{name} ({scale}): {len(plan.trials)} trials into {folder}", err=True)
        result = run_experiment(plan, folder, address=address, cpus=cpus, gpus_per_trial=gpus_per_trial)
    except GrokscopeError as err:
        _fail(err)
    typer.echo(f"results: {result.paths['csv']}, {result.paths['md']}")
    typer.echo(f"figures: {result.paths['curves']}, {result.paths['summary']}")
    if result.failed:
        typer.echo(
            f"error: {len(result.failed)} of {len(result.rows)} trials failed: {', '.join(result.failed)}", err=True
        )
        raise typer.Exit(code=1)


@app.command("experiments")
def list_experiments() -> None:
    """List the named experiments, their trials and the paper finding each tests."""
    from experiments import EXPERIMENTS

    for exp in EXPERIMENTS.values():
        typer.echo(f"{exp.name}: {exp.finding}")
        for scale_name, sc in exp.scales.items():
            trials = ", ".join(t.name for t in sc.trials)
            typer.echo(
                f"  --scale {scale_name:5s} {sc.preset}, {len(sc.trials)} trials (~{sc.minutes:g} min on 2 CPUs): {trials}"
            )


from experiments.cli_features import features_app  # noqa: E402 (the subcommand group, registered below)

app.add_typer(features_app, name="features")


def main(args: list[str] | None = None) -> None:
    """The console script; ``args`` (default: ``sys.argv[1:]``) for ``python -m experiments``."""
    try:
        app(args=args, prog_name="grokscope")
    except GrokscopeError as err:  # raised outside a command body (e.g. while parsing)
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
