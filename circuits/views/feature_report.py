"""The features part of a run's report: the sparse dictionaries saved in ``RUN_DIR/features/``.

A run folder may hold dictionaries trained on its last checkpoint (``grokscope features
train`` writes them), one folder each in SAELens's layout::

    RUN_DIR/features/NAME/cfg.json
    RUN_DIR/features/NAME/sae_weights.safetensors

:func:`features_section` gives one report section per dictionary: its scores (L0, FVU, dead
features, accuracy and loss recovered when spliced in) and the dashboards of its features
best aligned with a task variable. For a set of transcoders (a folder with ``transcoders.json``,
:func:`interp.features.save_transcoders`) it gives the scores of the replacement model and
the attribution graph of one held-out prompt, drawn by :mod:`circuits.views.feature_graph`.
A dictionary that cannot be read or does not fit the run's model shows its one-line error;
the rest of the report is unaffected. A run without ``features/`` gets no section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuits.views.feature_dashboard import dashboard_figure
from circuits.views.feature_graph import feature_graph_figure
from circuits.views.figures import Figure, Section, error_figure, table
from interp.data import KGDataset
from interp.errors import GrokscopeError
from interp.features import (
    attribution_graph,
    evaluate_dictionary,
    evaluate_replacement,
    load_dictionary,
    load_transcoders,
    prompt_tokens,
)
from interp.features.config import FeatureError
from interp.features.dashboard import dashboard_data
from interp.features.io import CFG_FILE
from interp.features.transcoder import SET_FILE
from interp.models.protocol import HookedModel

FEATURES_DIR = "features"
METRICS = ("l0", "fvu", "dead_features", "accuracy_clean", "accuracy_spliced", "accuracy_recovered", "loss_recovered")


def features_dir(run_dir: str | Path) -> Path:
    """Where a run keeps its dictionaries: ``RUN_DIR/features``."""
    return Path(run_dir) / FEATURES_DIR


def is_transcoder_set(folder: Path) -> bool:
    """Is ``folder`` a set of per-layer transcoders (:func:`interp.features.save_transcoders`: ``transcoders.json``)."""
    return (folder / SET_FILE).is_file()


def saved_dictionaries(run_dir: str | Path) -> dict[str, Path]:
    """The dictionary folders of a run by name (folders of ``RUN_DIR/features`` holding a ``cfg.json``, or a
    transcoder set's ``transcoders.json``), sorted."""
    root = features_dir(run_dir)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CFG_FILE).is_file() or is_transcoder_set(p)}


def dictionary_path(run_dir: str | Path, name: str) -> Path:
    """The folder of the run's dictionary ``name``; a one-line error naming the saved ones if there is none."""
    found = saved_dictionaries(run_dir)
    if name not in found:
        have = ", ".join(found) or "none"
        raise FeatureError(f"no dictionary named {name!r} in {features_dir(run_dir)}; saved: {have}")
    return found[name]


def _scores(m: Any, title: str) -> Figure:
    return table([{"metric": k, "value": float(getattr(m, k))} for k in METRICS], title=title)


def _dictionary_figures(folder: Path, model: HookedModel, dataset: KGDataset, n_features: int) -> list[Figure]:
    sae = load_dictionary(folder, model)
    m = evaluate_dictionary(sae, model, dataset)
    scores = _scores(
        m,
        f"{sae.architecture}, k {sae.cfg.k}, {sae.d_sae} features at {sae.hook_name}: "
        f"{m.n_rows} rows from {m.n_prompts} prompts",
    )
    data = dashboard_data(sae, model, dataset, n=n_features, select="aligned", n_examples=6)
    return [scores, dashboard_figure(data)]


def _transcoder_figures(folder: Path, model: HookedModel, dataset: KGDataset) -> list[Figure]:
    """The replacement model's scores and the attribution graph of the first held-out prompt."""
    tcs = load_transcoders(folder, model)
    m = evaluate_replacement(tcs, model, dataset)
    scores = _scores(
        m, f"transcoders of layers {', '.join(map(str, sorted(tcs)))}, every MLP replaced: {m.n_prompts} prompts"
    )
    examples = dataset.examples("test_id") or dataset.examples("train_inferred")
    if not examples:
        return [scores, error_figure("no held-out prompt to draw an attribution graph for")]
    ex = examples[0]
    graph = attribution_graph(
        model, tcs, prompt_tokens(dataset, ex.input_tokens), vocab=dataset.vocab, answer=ex.answer
    )
    title = f"attribution graph of {ex.input_text} -> {ex.answer} (largest residual {graph.max_residual():.2g})"
    return [scores, feature_graph_figure(graph, title=title)]


def features_section(
    run_dir: str | Path,
    model: HookedModel,
    dataset: KGDataset,
    *,
    n_features: int = 6,
    log: Callable[[str], None] | None = None,
) -> list[Section]:
    """One report section per dictionary or transcoder set saved in ``RUN_DIR/features`` (none if it is absent)."""
    say = log or (lambda _msg: None)
    sections = []
    for name, folder in saved_dictionaries(run_dir).items():
        say(f"features: {name}")
        transcoders = is_transcoder_set(folder)
        try:
            figs = (
                _transcoder_figures(folder, model, dataset)
                if transcoders
                else _dictionary_figures(folder, model, dataset, n_features)
            )
        except (GrokscopeError, ValueError, KeyError, IndexError, RuntimeError) as err:
            figs = [error_figure(f"not available: {type(err).__name__}: {err}")]
        sections.append(Section(f"Features: {name}", figs, TRANSCODER_NOTE if transcoders else DICTIONARY_NOTE))
    return sections


DICTIONARY_NOTE = (
    "A sparse dictionary rewrites the activation at one hook as a sparse sum of learned directions. Scores: L0 "
    "(active features per row), FVU (variance unexplained), and the accuracy / loss recovered when the "
    "reconstruction replaces the activation. Cards: the features best aligned with a task variable (F1 of the "
    "variable value they fire for most precisely), their top prompts, histogram and direct logit effect."
)
TRANSCODER_NOTE = (
    "Transcoders replace each MLP by a sparse dictionary from its input to its output. Scores: every MLP replaced "
    "at once. Graph: with attention patterns and LayerNorm scales frozen, the direct effects between the prompt's "
    "embeddings, transcoder features, reconstruction errors and the top logits, pruned to the most influential."
)


__all__ = [
    "FEATURES_DIR",
    "dictionary_path",
    "features_dir",
    "features_section",
    "is_transcoder_set",
    "saved_dictionaries",
]
