"""``grokscope features``: sparse dictionaries of a run, from the command line.

    grokscope features train RUN_DIR --site blocks.1.hook_resid_post --arch batchtopk --k 16 --expansion 8
    grokscope features list RUN_DIR
    grokscope features evaluate RUN_DIR NAME          # L0, FVU, dead features, accuracy / loss recovered
    grokscope features dashboard RUN_DIR NAME --out dash.html

Dictionaries live in ``RUN_DIR/features/NAME/`` (``cfg.json`` + ``sae_weights.safetensors``),
trained on the run's last checkpoint; ``grokscope report RUN_DIR`` shows them. Bad input
(an unknown hook, a name not found, ``k`` wider than the dictionary) prints one line and
exits with code 2, as every grokscope command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import typer

from interp.errors import ConfigError, GrokscopeError

features_app = typer.Typer(
    no_args_is_help=True,
    help="Sparse dictionaries (SAEs) of a run: train, evaluate, dashboards.",
)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _positions(values: list[str] | None) -> tuple[int | str, ...] | None:
    if not values:
        return None
    return tuple(int(v) if v.isdigit() else v for v in values)


def default_name(site: str, architecture: str, k: int) -> str:
    """The folder name a dictionary gets when none is given: ``blocks.1.hook_resid_post-batchtopk-k16``."""
    return f"{site}-{architecture}-k{k}"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"--name {name!r} must be letters, digits, '.', '_' or '-' (a folder name)")
    return name


def _load(run_dir: Path, name: str, device: str) -> tuple[Any, Any]:
    """The run's last checkpoint (``LoadedRun``) and its dictionary ``name``, checked against the model."""
    from circuits.views.feature_report import dictionary_path, is_transcoder_set
    from interp.features import load_dictionary
    from interp.runs import load_checkpoint

    folder = dictionary_path(run_dir, name)
    if is_transcoder_set(folder):
        raise ConfigError(f"{name!r} is a transcoder set, not a dictionary; use `grokscope features graph` with it")
    run = load_checkpoint(run_dir, device=_device(device))
    return run, load_dictionary(folder, run.model, device=_device(device))


@features_app.command("train")
def train(
    run_dir: Path = typer.Argument(..., help="a run directory written by `grokscope train`"),
    site: str = typer.Option(..., "--site", help="hook to read, e.g. blocks.1.hook_resid_post or blocks.0.attn.hook_z"),
    arch: str = typer.Option("batchtopk", "--arch", help="topk, batchtopk or jumprelu"),
    k: int = typer.Option(16, "--k", help="active features per activation (TopK / BatchTopK)"),
    expansion: int = typer.Option(8, "--expansion", help="dictionary width as a multiple of the activation width"),
    steps: int = typer.Option(500, "--steps", help="optimiser steps"),
    batch_size: int = typer.Option(2048, "--batch-size", help="activations per step"),
    positions: list[str] | None = typer.Option(
        None,
        "--position",
        help="prompt position to read (index or name such as r1); repeat for several; default every prompt token",
    ),
    splits: list[str] | None = typer.Option(None, "--split", help="dataset split to read; repeat; default all"),
    name: str | None = typer.Option(None, "--name", help="folder name under RUN_DIR/features (default SITE-ARCH-kK)"),
    seed: int = typer.Option(0, "--seed"),
    transcoder: bool = typer.Option(
        False,
        "--transcoder",
        help="train transcoders (MLP input to output) instead: "
        "--site all for every layer (one cross-layer transcoder), or a hook of one block for its MLP",
    ),
    per_layer: bool = typer.Option(
        False, "--per-layer", help="with --transcoder --site all: one transcoder per layer instead of a cross-layer one"
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto (cuda when present)"),
) -> None:
    """Train a sparse dictionary on the run's last checkpoint and save it into RUN_DIR/features/NAME."""
    try:
        from circuits.views.feature_report import features_dir
        from interp.features import ARCHITECTURES, DictionaryConfig, evaluate_dictionary, save_dictionary, train_on_run

        default = default_name("transcoders" if transcoder else site, arch, k)
        folder = features_dir(run_dir) / _check_name(name or default)
        if arch not in ARCHITECTURES:
            raise ConfigError(f"--arch = {arch!r} is not allowed; choose one of {', '.join(ARCHITECTURES)}")
        if transcoder:
            _train_transcoder(run_dir, site, arch, k, expansion, steps, batch_size, seed, folder, device, per_layer)
            return
        cfg = DictionaryConfig(
            site,
            architecture=arch,
            k=k,
            expansion_factor=expansion,
            steps=steps,  # type: ignore[arg-type]
            batch_size=batch_size,
            positions=_positions(positions),
            splits=tuple(splits) if splits else None,
            seed=seed,
        )
        result, acts, run = train_on_run(run_dir, cfg, device=_device(device))
        save_dictionary(result.dictionary, folder)
        m = evaluate_dictionary(result.dictionary, run.model, run.dataset)
    except GrokscopeError as err:
        _fail(err)
    typer.echo(
        f"trained {arch} ({result.dictionary.d_sae} features, k {k}) on {len(acts)} activations at {site} "
        f"in {result.seconds:.1f}s: L0 {m.l0:.2f}, FVU {m.fvu:.4f}, dead {m.dead_features}, "
        f"accuracy recovered {m.accuracy_recovered:.3f}"
    )
    typer.echo(f"saved: {folder}")


def _train_transcoder(
    run_dir: Path,
    site: str,
    arch: str,
    k: int,
    expansion: int,
    steps: int,
    batch_size: int,
    seed: int,
    folder: Path,
    device: str,
    per_layer: bool = False,
) -> None:
    """``--site all`` (every layer, as attribution graphs need: a cross-layer transcoder, or with ``per_layer`` one
    per layer) or a hook inside one block (that block's MLP)."""
    from interp.features import TranscoderConfig, evaluate_replacement, save_transcoders, train_transcoders_on_run

    match = re.match(r"blocks\.(\d+)\.", site)
    if site != "all" and match is None:
        raise ConfigError(
            f"--site {site!r} with --transcoder must be 'all' or a hook inside a block (blocks.1.hook_mlp_out)"
        )
    layers = None if match is None else [int(match.group(1))]
    cfg = TranscoderConfig.for_layer(
        0,
        architecture=arch,
        k=k,
        expansion_factor=expansion,
        steps=steps,  # type: ignore[arg-type]
        batch_size=batch_size,
        seed=seed,
        cross_layer=match is None and not per_layer,
    )
    results, run = train_transcoders_on_run(run_dir, cfg, layers=layers, device=_device(device))
    tcs = {layer: r.dictionary for layer, r in results.items()}
    save_transcoders(tcs, folder)  # type: ignore[arg-type]
    m = evaluate_replacement(tcs, run.model, run.dataset)  # type: ignore[arg-type]
    typer.echo(
        f"trained {arch} transcoders of layers {', '.join(map(str, sorted(tcs)))} (k {k}): L0 {m.l0:.2f} "
        f"(all layers), FVU {m.fvu:.4f}, accuracy recovered {m.accuracy_recovered:.3f}"
    )
    typer.echo(f"saved: {folder}")


@features_app.command("list")
def list_(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """List the dictionaries saved in RUN_DIR/features."""
    from circuits.views.feature_report import saved_dictionaries
    from interp.features import DictionaryFormatError
    from interp.io import read_json

    found = saved_dictionaries(run_dir)
    if not found:
        typer.echo(f"no dictionaries in {run_dir / 'features'}")
    for name, folder in found.items():
        try:
            cfg = read_json(folder / "cfg.json", DictionaryFormatError, what="dictionary config", expect=dict)
        except GrokscopeError as err:
            typer.echo(f"{name}: unreadable ({err})")
            continue
        typer.echo(
            f"{name}: {cfg.get('architecture')}, k {cfg.get('k')}, {cfg.get('d_sae')} features at {cfg.get('hook_name')}"
        )


@features_app.command("evaluate")
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    name: str = typer.Argument(..., help="a dictionary under RUN_DIR/features (see `grokscope features list`)"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto"),
) -> None:
    """Print a saved dictionary's L0, FVU, dead features and accuracy / loss recovered when spliced in."""
    try:
        from interp.features import evaluate_dictionary

        run, sae = _load(run_dir, name, device)
        m = evaluate_dictionary(sae, run.model, run.dataset)
    except GrokscopeError as err:
        _fail(err)
    typer.echo(
        f"{name}: {sae.architecture}, {sae.d_sae} features at {sae.hook_name}; {m.n_rows} rows, {m.n_prompts} prompts"
    )
    for key in (
        "l0",
        "fvu",
        "mse",
        "dead_features",
        "accuracy_clean",
        "accuracy_spliced",
        "accuracy_zero",
        "accuracy_recovered",
        "loss_clean",
        "loss_spliced",
        "loss_zero",
        "loss_recovered",
    ):
        value = getattr(m, key)
        typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


@features_app.command("dashboard")
def dashboard(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    name: str = typer.Argument(..., help="a dictionary under RUN_DIR/features"),
    out: Path = typer.Option(..., "--out", help="HTML file to write"),
    n: int = typer.Option(12, "--n", help="features to show (at least 1)"),
    select: str = typer.Option("aligned", "--select", help="aligned (best match to a task variable) or frequency"),
    feature: list[int] | None = typer.Option(None, "--feature", help="show this feature; repeat (overrides --n)"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto"),
) -> None:
    """Write a self-contained HTML dashboard of a saved dictionary's features."""
    try:
        from circuits.views.feature_dashboard import write_dashboard
        from interp.features.dashboard import dashboard_data

        if n < 1:
            raise ConfigError(f"--n = {n} is out of range; give at least 1 (features to show)")
        if select not in ("aligned", "frequency"):
            raise ConfigError(f"--select = {select!r} is not allowed; choose aligned or frequency")
        run, sae = _load(run_dir, name, device)
        data = dashboard_data(sae, run.model, run.dataset, features=feature or None, n=n, select=select)  # type: ignore[arg-type]
        path = write_dashboard(data, out, title=f"{run_dir.name}: {name}")
    except GrokscopeError as err:
        _fail(err)
    typer.echo(f"dashboard of {len(data.features)} features ({data.selection}): {path}")


def _split_prompt(prompt: str) -> list[str]:
    from interp.data.vocab import split_tokens

    return split_tokens(prompt)


@features_app.command("graph")
def graph(
    run_dir: Path = typer.Argument(..., help="a run directory with a transcoder set under RUN_DIR/features"),
    prompt: str = typer.Option(..., "--prompt", help="the prompt's tokens, e.g. '<e_0><r_1><r_2>'"),
    out: Path = typer.Option(..., "--out", help="JSON file to write (Neuronpedia's graph format)"),
    name: str | None = typer.Option(None, "--name", help="the transcoder set (default: the run's only one)"),
    answer: str | None = typer.Option(None, "--answer", help="a token always kept as a logit target"),
    html: Path | None = typer.Option(None, "--html", help="also draw the graph into this HTML file"),
    node_threshold: float = typer.Option(0.8, "--node-threshold", help="influence share of the nodes kept"),
    edge_threshold: float = typer.Option(0.98, "--edge-threshold", help="influence share of the edges kept"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto"),
) -> None:
    """The attribution graph of one prompt through the run's transcoders, as Neuronpedia JSON."""
    try:
        from circuits.views.feature_report import dictionary_path, is_transcoder_set, saved_dictionaries
        from interp.features import attribution_graph, load_transcoders, prompt_tokens, write_graph_json
        from interp.runs import load_checkpoint

        sets = [n for n, f in saved_dictionaries(run_dir).items() if is_transcoder_set(f)]
        if name is None and len(sets) != 1:
            raise ConfigError(
                f"{len(sets)} transcoder sets in {run_dir / 'features'} ({', '.join(sets) or 'none'}); "
                "train one with `grokscope features train RUN_DIR --site all --transcoder` or pass --name"
            )
        folder = dictionary_path(run_dir, name or sets[0])
        if not is_transcoder_set(folder):
            raise ConfigError(f"{folder} is a dictionary, not a transcoder set; pass --name of a transcoder set")
        run = load_checkpoint(run_dir, device=_device(device))
        tokens = _split_prompt(prompt)
        ids = prompt_tokens(run.dataset, tokens)
        g = attribution_graph(
            run.model, load_transcoders(folder, run.model), ids, vocab=run.dataset.vocab, answer=answer
        )
        path = write_graph_json(
            g,
            out,
            re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-") or "graph",
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
        )
        if html is not None:
            from circuits.views.feature_graph import feature_graph_figure
            from circuits.views.figures import Section, page
            from interp.io import atomic_write_text

            fig = feature_graph_figure(g, title=f"{prompt}: {_scores(g)}, largest residual {g.max_residual():.2g}")
            atomic_write_text(html, page(f"attribution graph: {prompt}", [Section("Attribution graph", [fig])]))
    except GrokscopeError as err:
        _fail(err)
    typer.echo(
        f"graph of {prompt}: {g.n_features} active features, {_scores(g)}, largest residual {g.max_residual():.2g}: "
        f"{path}"
    )


def _scores(graph) -> str:
    """circuit-tracer's replacement and completeness scores of ``graph``, as one phrase."""
    from interp.features import graph_scores

    replacement, completeness = graph_scores(graph)
    return f"replacement score {replacement:.3f}, completeness {completeness:.3f}"


@features_app.command("probe")
def probe(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    site: str = typer.Option(..., "--site", help="hook to probe, e.g. blocks.1.hook_resid_post"),
    target: str = typer.Option("bridge", "--target", help="the task variable (bridge; v1 / v2 for comparison)"),
    name: str | None = typer.Option(None, "--name", help="probe this dictionary's features instead of raw dimensions"),
    ks: list[int] | None = typer.Option(None, "--k", help="probe sizes; repeat (default 1, 2, 4 ... width)"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto"),
) -> None:
    """k-sparse probing of a task variable at one hook (raw dimensions, or a saved dictionary's features)."""
    try:
        from interp.features import probe_site
        from interp.runs import load_checkpoint

        if name is not None:
            run, sae = _load(run_dir, name, device)
        else:
            run, sae = load_checkpoint(run_dir, device=_device(device)), None
        res = probe_site(run.model, run.dataset, site, target, dictionary=sae, ks=ks or None)
    except GrokscopeError as err:
        _fail(err)
    typer.echo(
        f"{target} at {site} ({res.source}, width {res.width}): {res.n_classes} classes, chance {res.chance:.3f}"
    )
    for split, accs in res.accuracy.items():
        typer.echo(
            f"{split} ({res.n_rows.get(split, 0)} rows): " + "  ".join(f"k={k} {a:.3f}" for k, a in zip(res.ks, accs))
        )


@features_app.command("das")
def das(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    layer: int = typer.Option(..., "--layer", help="the state after this many blocks (S[layer, position])"),
    position: str = typer.Option("r1", "--position", help="prompt position (name such as r1, or index)"),
    target: str = typer.Option("bridge", "--target", help="the task variable"),
    d: int = typer.Option(8, "--d", help="subspace size"),
    steps: int = typer.Option(300, "--steps", help="training steps"),
    n: int | None = typer.Option(None, "--n", help="training pairs per swap (default all)"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto"),
) -> None:
    """Distributed alignment search: train a d-dimensional subspace carrying the variable; print held-out IIA."""
    try:
        from interp.features import das_pairs, interchange_accuracy, train_das
        from interp.runs import load_checkpoint

        if d < 0 or steps < 1:
            raise ConfigError(f"--d = {d} and --steps = {steps} must be >= 0 and >= 1")
        run = load_checkpoint(run_dir, device=_device(device))
        pos: int | str = int(position) if position.isdigit() else position
        fit = train_das(
            run.model, das_pairs(run.dataset, target, "train", n=n), layer=layer, position=pos, d=d, steps=steps
        )
        held_out = interchange_accuracy(
            run.model, fit.das, das_pairs(run.dataset, target, "test_id"), layer=layer, position=pos
        )
        full = interchange_accuracy(
            run.model, None, das_pairs(run.dataset, target, "test_id"), layer=layer, position=pos
        )
    except GrokscopeError as err:
        _fail(err)
    typer.echo(
        f"DAS of {target} at S[{layer}, {position}], d = {d}: train IIA {fit.train_iia:.3f}, "
        f"test_id IIA {held_out:.3f} (whole state {full:.3f})"
    )


__all__ = ["default_name", "features_app"]
