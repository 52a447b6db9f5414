"""DAS curves: interchange-intervention accuracy against subspace size, the learned size, and over training.

Built on :mod:`interp.features.das`. For one state ``S[l, p]``:

* :func:`das_curve`      IIA on held-out pairs for each subspace size ``d`` (with the
                         full-state interchange, ``d = d_model``, as the ceiling);
* :func:`boundless_das`  the size boundless DAS settles on, and its IIA;
* :func:`das_over_checkpoints` the same fixed-size DAS trained at every checkpoint of a run,
                         beside the run's test-ID accuracy: when during grokking the variable
                         becomes a causal subspace::

    from interp.features.das_runs import das_curve, das_over_checkpoints

    rows = das_curve(run.model, run.dataset, "bridge", layer=2, sizes=(1, 4, 16))
    history = das_over_checkpoints(RUN_DIR, "bridge", layer=2, d=16)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.data import KGDataset
from interp.features.das import das_pairs, interchange_accuracy, train_das
from interp.features.probing import variable_position
from interp.intervene import as_bridge
from interp.models.protocol import HookedModel
from interp.pairs import PromptPairs


@dataclass
class DASPoint:
    """One trained DAS, scored: its size, training and held-out IIA."""

    layer: int
    d: int
    train_iia: float
    iia: float
    step: int | None = None
    test_id_accuracy: float | None = None


def _pairs(
    dataset: KGDataset, target: str, train_split: str, test_split: str, n_train: int | None, seed: int
) -> tuple[PromptPairs, PromptPairs]:
    return (
        das_pairs(dataset, target, train_split, n=n_train, seed=seed),
        das_pairs(dataset, target, test_split, seed=seed + 1),
    )


def das_curve(
    model: HookedModel,
    dataset: KGDataset,
    target: str = "bridge",
    *,
    layer: int,
    sizes: Sequence[int],
    position: int | str | None = None,
    train_split: str = "train",
    test_split: str = "test_id",
    n_train: int | None = 1000,
    seed: int = 0,
    pairs: tuple[PromptPairs, PromptPairs] | None = None,
    **train_kwargs: Any,
) -> list[DASPoint]:
    """Held-out IIA of DAS at ``S[layer, position]`` for each size in ``sizes`` (position: the schema's for ``target``)."""
    bridge = as_bridge(model)
    train, test = pairs or _pairs(dataset, target, train_split, test_split, n_train, seed)
    pos = _position(dataset, target, position)
    out = []
    for d in sizes:
        fit = train_das(bridge, train, layer=layer, position=pos, d=d, seed=seed, **train_kwargs)
        out.append(
            DASPoint(layer, d, fit.train_iia, interchange_accuracy(bridge, fit.das, test, layer=layer, position=pos))
        )
    return out


def boundless_das(
    model: HookedModel,
    dataset: KGDataset,
    target: str = "bridge",
    *,
    layer: int,
    position: int | str | None = None,
    train_split: str = "train",
    test_split: str = "test_id",
    n_train: int | None = 1000,
    seed: int = 0,
    pairs: tuple[PromptPairs, PromptPairs] | None = None,
    **train_kwargs: Any,
) -> DASPoint:
    """Boundless DAS at ``S[layer, position]``: the learned size (mask weights above one half) and its held-out IIA."""
    bridge = as_bridge(model)
    train, test = pairs or _pairs(dataset, target, train_split, test_split, n_train, seed)
    pos = _position(dataset, target, position)
    fit = train_das(bridge, train, layer=layer, position=pos, d=None, seed=seed, **train_kwargs)
    return DASPoint(
        layer, fit.size, fit.train_iia, interchange_accuracy(bridge, fit.das, test, layer=layer, position=pos)
    )


def full_interchange(
    model: HookedModel,
    dataset: KGDataset,
    target: str = "bridge",
    *,
    layers: Sequence[int] | None = None,
    position: int | str | None = None,
    test_split: str = "test_id",
    seed: int = 0,
    pairs: PromptPairs | None = None,
) -> dict[int, float]:
    """IIA of interchanging the whole state ``S[l, position]`` per layer (the ceiling of any subspace there)."""
    bridge = as_bridge(model)
    test = pairs if pairs is not None else das_pairs(dataset, target, test_split, seed=seed + 1)
    pos = _position(dataset, target, position)
    layers = range(len(bridge.blocks) + 1) if layers is None else layers
    return {layer: interchange_accuracy(bridge, None, test, layer=layer, position=pos) for layer in layers}


def das_over_checkpoints(
    run_dir: str | Path,
    target: str = "bridge",
    *,
    layer: int,
    d: int,
    position: int | str | None = None,
    train_split: str = "train",
    test_split: str = "test_id",
    n_train: int | None = 1000,
    seed: int = 0,
    every: int = 1,
    device: torch.device | str | None = "cpu",
    **train_kwargs: Any,
) -> list[DASPoint]:
    """DAS of size ``d`` at ``S[layer, position]`` trained afresh at every ``every``-th checkpoint of a run (and
    the last), with the run's test-ID accuracy at that step (its ``metrics.jsonl``)."""
    from interp.runs import iter_checkpoints, list_checkpoints, read_metrics

    accuracy = {int(row["step"]): row.get("test_id") for row in read_metrics(run_dir) if "step" in row}
    last = len(list_checkpoints(run_dir)) - 1
    out, pairs = [], None
    for i, run in enumerate(iter_checkpoints(run_dir, device=device)):
        if i % every and i != last:
            continue
        pairs = pairs or _pairs(run.dataset, target, train_split, test_split, n_train, seed)
        point = das_curve(
            run.model,
            run.dataset,
            target,
            layer=layer,
            sizes=[d],
            position=position,
            seed=seed,
            pairs=pairs,
            **train_kwargs,
        )[0]
        point.step, point.test_id_accuracy = run.step, accuracy.get(run.step)
        out.append(point)
    return out


def _position(dataset: KGDataset, target: str, position: int | str | None) -> int:
    return variable_position(dataset, target, position)


__all__ = ["DASPoint", "boundless_das", "das_curve", "das_over_checkpoints", "full_interchange"]
