"""Per-checkpoint analyses, computed once and kept in the run folder.

The report, the explorer's checkpoint slider, circuit formation and the progress measures
all analyse checkpoints of one run, often the same checkpoints with the same analysis. Each
analysis of a checkpoint is computed once and kept as JSON in
``RUN_DIR/analyses/step_NNNNNNN/NAME-KEY.json``, where KEY hashes

* the checkpoint's own hash (its ``state.json``, which holds the SHA-256 of its weights),
* the analysis's parameters (``n``, ``seed``, ``split`` ...),
* the source of the code that computes it (the ``interp`` modules it imports, as the
  training cache hashes the trainer: a changed analysis is computed again, never read stale).

A folder that cannot be written (a read-only run) still gets its analysis, computed each
time. :func:`state_grids` is the analysis the report, the explorer and circuit formation
share: the logit lens (MRR and top-1 rate) of the task's report targets and key-state
targets, and the causal tracing of each swappable token, over every state x position.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from interp.code_hash import code_hash
from interp.data import KGDataset, task_schema
from interp.errors import GrokscopeError
from interp.io import atomic_write_json, read_json
from interp.lens import dataset_lens
from interp.models import HookedModel
from interp.tracing import trace_counterfactual

ANALYSES = "analyses"
"""The folder of a run that holds its per-checkpoint analyses."""
GRID_CODE = ("interp.checkpoint_analyses",)
"""The module whose import closure computes :func:`state_grids`."""


def checkpoint_hash(checkpoint: str | Path) -> str:
    """16 hex digits of the SHA-256 of a checkpoint's ``state.json`` (it records the hashes of the weights)."""
    return hashlib.sha256((Path(checkpoint) / "state.json").read_bytes()).hexdigest()[:16]


@cache
def _code(modules: tuple[str, ...]) -> str:
    return code_hash(modules)


def analysis_path(checkpoint: str | Path, name: str, params: Mapping[str, Any], code: Sequence[str]) -> Path:
    """Where the analysis ``name`` of ``checkpoint`` with ``params`` is kept."""
    checkpoint = Path(checkpoint)
    key = json.dumps(
        {"checkpoint": checkpoint_hash(checkpoint), "params": params, "code": _code(tuple(code))}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return checkpoint.parent.parent / ANALYSES / checkpoint.name / f"{name}-{digest}.json"


def cached_analysis(
    checkpoint: str | Path,
    name: str,
    params: Mapping[str, Any],
    compute: Callable[[], Any],
    *,
    code: Sequence[str],
) -> Any:
    """The JSON value of ``compute()`` for ``checkpoint``: read if it was kept, else computed and kept.

    ``code`` names the modules whose source (import closure) decides the value."""
    path = analysis_path(checkpoint, name, params, code)
    if path.is_file():
        try:
            return read_json(path, GrokscopeError, what="analysis", expect=dict)["value"]
        except (GrokscopeError, KeyError):
            pass  # a damaged file: computed again and replaced
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"name": name, "params": dict(params), "value": value})
    except OSError:  # a read-only run folder: the value is still returned
        pass
    return value


def _grid(t: Any) -> list[list[float]]:
    return [[float(v) for v in row] for row in t.detach().cpu().double()]


def grid_targets(dataset: KGDataset) -> tuple[str, ...]:
    """The lens targets of :func:`state_grids`: the task's report targets, then its key states' targets."""
    schema = task_schema(dataset)
    return tuple(dict.fromkeys([*schema.report_targets, *(s.target for s in schema.key_states.values())]))


def state_grids(
    model: HookedModel, dataset: KGDataset, *, n: int | None, seed: int = 0, split: str = "train_inferred"
) -> dict[str, Any]:
    """Lens MRR and top-1 rate of :func:`grid_targets` and the tracing top-1 change rate of each swap, per
    state x position, on the first ``n`` prompts of ``split``:
    ``{"lens": {target: {"mrr", "top1"}}, "tracing": {swap: grid}, "errors": [...]}``; a part the task
    does not allow (no swappable token ...) is empty, with its one-line error in ``errors``."""
    out: dict[str, Any] = {"lens": {}, "tracing": {}, "errors": []}
    try:
        lens = dataset_lens(model, dataset, grid_targets(dataset), split=split, n=n)
        out["lens"] = {k: {"mrr": _grid(r.mrr), "top1": _grid(r.top1)} for k, r in lens.items()}
    except GrokscopeError as err:
        out["errors"].append(f"lens: {err}")
    try:
        tracing = trace_counterfactual(model, dataset, split, n=n, seed=seed)
        out["tracing"] = {k: _grid(t) for k, t in tracing.items()}
    except GrokscopeError as err:
        out["errors"].append(f"tracing: {err}")
    return out


def checkpoint_grids(
    checkpoint: str | Path,
    model: HookedModel,
    dataset: KGDataset,
    *,
    n: int | None,
    seed: int = 0,
    split: str = "train_inferred",
) -> dict[str, Any]:
    """:func:`state_grids` of the model of ``checkpoint``, computed once per checkpoint and parameters."""
    return cached_analysis(
        checkpoint,
        "grids",
        {"n": n, "seed": seed, "split": split},
        lambda: state_grids(model, dataset, n=n, seed=seed, split=split),
        code=GRID_CODE,
    )


__all__ = [
    "ANALYSES",
    "analysis_path",
    "cached_analysis",
    "checkpoint_grids",
    "checkpoint_hash",
    "grid_targets",
    "state_grids",
]
