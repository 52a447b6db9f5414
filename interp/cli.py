"""The ``grokscope`` command line.

    grokscope data composition-small --out data/comp      # a knowledge-graph dataset
    grokscope train composition-small --out runs/comp     # train until it groks
    grokscope resume runs/comp                            # continue a stopped run
    grokscope report runs/comp                            # one self-contained HTML report
    grokscope run                                         # the main job on the default config

Errors grokscope raises on purpose print as one line (``error: ...``) with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from interp.errors import GrokscopeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="grokscope: train transformers that grok on synthetic knowledge graphs, then open them up.",
)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@app.command()
def data(
    task: str = typer.Argument(..., help="composition, comparison, complex, or a preset such as composition-small"),
    out: Path = typer.Option(..., "--out", help="directory to write the dataset into (paper layout + provenance)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field: --set n_entities=300"),
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


def _train_common(result) -> None:  # noqa: ANN001
    m = result.metrics
    accs = "  ".join(f"{k} {m[k]:.3f}" for k in ("train", "test_id", "test_ood") if m.get(k) is not None)
    typer.echo(
        f"step {result.step} in {result.seconds:.1f}s  {accs}\n"
        f"memorized at step {result.memorized_step}, grokked at step {result.grokked_step}\n"
        f"checkpoint: {result.checkpoint}"
    )


@app.command()
def train(
    config: str = typer.Argument(..., help="a YAML/JSON run config or a preset (composition-small, comparison-small, ...)"),
    out: Path = typer.Option(..., "--out", help="run directory (checkpoints, metrics.jsonl, tensorboard/)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override: --set train.lr=1e-3 --set data.phi=9"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many steps"),
) -> None:
    """Train a model on a generated knowledge graph until it groks (or max_steps)."""
    try:
        from interp.train import load_run_config
        from interp.train import train as train_run

        cfg = load_run_config(config, list(set_ or []))
        result = train_run(cfg, out, max_steps=max_steps)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="a run directory written by `grokscope train`"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many steps in all"),
) -> None:
    """Continue a run from its last complete checkpoint (bit-exact on the CPU)."""
    try:
        from interp.train import resume as resume_run

        result = resume_run(run_dir, max_steps=max_steps)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)


@app.command()
def run(
    config: str = typer.Option("composition-small", "--config", help="preset or YAML run config"),
    out: Path = typer.Option(Path("runs/composition-small"), "--out", help="run directory"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override: --set train.lr=1e-3"),
) -> None:
    """The main job: generate the default knowledge graph, train until it groks, write the HTML report."""
    try:
        from interp.train import load_run_config
        from interp.train import resume as resume_run
        from interp.train import train as train_run
        from interp.train.checkpoint import list_checkpoints

        cfg = load_run_config(config, list(set_ or []))
        if list_checkpoints(out):
            typer.echo(f"{out} already holds a run; resuming it")
            result = resume_run(out)
        else:
            result = train_run(cfg, out)
    except GrokscopeError as err:
        _fail(err)
    _train_common(result)
    path = _report(out, None)
    typer.echo(f"report: {path}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run directory written by `grokscope train`"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)"),
    n: int = typer.Option(200, "--n", help="examples per analysis"),
    formation: bool = typer.Option(True, "--formation/--no-formation", help="trace circuit formation over checkpoints"),
) -> None:
    """Write one self-contained HTML report of a run (curves, lens, tracing, circuit, attention)."""
    path = _report(run_dir, out, n=n, formation=formation)
    typer.echo(f"report: {path}")


def _report(run_dir: Path, out: Optional[Path], *, n: int = 200, formation: bool = True) -> Path:
    try:
        from circuits.report import write_report

        return write_report(run_dir, out, n=n, formation=formation, log=lambda msg: typer.echo(msg, err=True))
    except GrokscopeError as err:
        _fail(err)
    raise AssertionError("unreachable")


@app.command()
def presets() -> None:
    """List the named run configs."""
    from interp.train import presets as table

    for name, cfg in table().items():
        m = cfg.model
        typer.echo(f"{name:28s} data={type(cfg.data).__name__} layers={m.n_layers} d_model={m.d_model} lr={cfg.train.lr}")


def main() -> None:
    try:
        app()
    except GrokscopeError as err:  # raised outside a command body (e.g. while parsing)
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
