"""Where the intermediate answer lives: decodable, causally used, and swappable.

Wang et al. (2024) find the bridge entity ``b`` of a two-hop query ``<h><r1><r2>`` in the
residual stream at the ``r1`` position, in the middle layers; in comparison queries the
two attribute values ``v1`` and ``v2`` sit at the ``e1`` and ``e2`` positions. Three
tests, each a layer x position map over the residual states ``S[l, p]`` (after ``l``
blocks), locate such an intermediate:

1. **decodable**: the logit lens reads it as top-1 (:mod:`interp.lens`);
2. **causally used**: swapping the input token that sets it (``h`` or ``r1`` for ``b``;
   ``e1`` for ``v1``) and pasting the swapped run's ``S[l, p]`` into the clean run changes
   the answer (:func:`interp.tracing.trace_counterfactual`);
3. **interchange**: pasting ``S[l, p]`` from a prompt whose intermediate is ``b'`` makes
   the model answer what ``b'`` implies, ``r2(b')`` (for comparison, the label of
   ``v1'`` against the clean ``v2``). Decodability can be incidental and tracing only
   shows that something there matters; the interchange shows that the state carries the
   intermediate *and that the rest of the model uses it as such*.

The first two can hold where the third fails (above the layer where the information has
moved on, or below the one where it is computed); the paper's shape is where all three
agree. Which intermediates a task has, where, and how interchange sources are drawn from
the graph are its schema's (:attr:`interp.data.tasks.TaskSchema.intermediates`,
:meth:`~interp.data.tasks.TaskSchema.interchange_sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.graph import CircuitError
from interp.data import Example, KGDataset, TaskSchemaError, task_schema
from interp.data.tasks import Candidate, TaskSchema
from interp.intervene import as_bridge, check_vocab
from interp.lens import example_targets, logit_lens
from interp.models import Bridge, HookedModel
from interp.patching import Metric, activation_patch, baseline_metric
from interp.tracing import trace_counterfactual


def predicts(expected: Int[Tensor, " batch"]) -> Metric:
    """1 where the model's top-1 prediction is ``expected``, else 0 (its mean: the interchange success rate)."""
    ids = torch.as_tensor(expected, dtype=torch.long)

    def metric(logits: Tensor, example: Tensor) -> Tensor:
        return (logits.argmax(-1) == ids.to(logits.device)[example.to(logits.device)]).to(logits.dtype)

    return metric


def interchange(
    model: HookedModel,
    clean: Int[Tensor, "batch pos"],
    source: Int[Tensor, "batch pos"],
    expected: Int[Tensor, " batch"],
    position: int,
    *,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, " layer"]:
    """Success rate of pasting the residual ``S[l, position]`` of ``source`` into ``clean``, per state ``l``.

    Success: the patched model's top-1 answer is ``expected``. ``l`` runs over the
    ``n_layers + 1`` residual states (after 0 .. n_layers blocks).
    """
    bridge = as_bridge(model)
    out = activation_patch(bridge, clean, source, predicts(expected), "resid", layers=layers, positions=[position])
    return out[:, 0].double()


# ------------------------------------------------------------------------- counterparts
def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass
class InterchangePairs:
    """Clean prompts, source prompts whose intermediate differs, and the answer that intermediate implies."""

    clean: Int[Tensor, "batch pos"]
    source: Int[Tensor, "batch pos"]
    expected: Int[Tensor, " batch"]
    clean_answer: Int[Tensor, " batch"]
    examples: list[Example]
    sources: list[tuple[str, ...]]


def _collect_pairs(
    dataset: KGDataset,
    examples: Sequence[Example],
    options_of: Callable[[Example], list[tuple[tuple[str, ...], str]]],
    seed: int | np.random.Generator,
    what: str,
) -> InterchangePairs:
    """One source per example, drawn from ``options_of(ex)`` (``(source prompt, expected token)`` pairs);
    examples without an option are left out."""
    rng = _rng(seed)
    vocab = dataset.vocab
    clean, source, expected, answers, kept, srcs = [], [], [], [], [], []
    for ex in examples:
        options = options_of(ex)
        if not options:
            continue
        prompt, target = options[int(rng.integers(len(options)))]
        clean.append(vocab.encode(ex.input_tokens))
        source.append(vocab.encode(prompt))
        expected.append(vocab.id(target))
        answers.append(vocab.id(ex.answer))
        kept.append(ex)
        srcs.append(prompt)
    if not kept:
        raise CircuitError(f"no example has an interchange counterpart; pass more {what}")
    as_t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return InterchangePairs(as_t(clean), as_t(source), as_t(expected), as_t(answers), kept, srcs)


def _schema(dataset: KGDataset) -> TaskSchema:
    try:
        return task_schema(dataset)
    except TaskSchemaError as err:
        raise CircuitError(str(err)) from None


def interchange_pairs(
    dataset: KGDataset, examples: Sequence[Example], target: str, *, seed: int | np.random.Generator = 0
) -> InterchangePairs:
    """For each example, a source prompt whose intermediate ``target`` differs, drawn from the task schema's
    :meth:`~interp.data.tasks.TaskSchema.interchange_sources`; examples without one are left out."""
    schema = _schema(dataset)
    try:
        schema.intermediate(target)
    except TaskSchemaError as err:
        raise CircuitError(str(err)) from None

    def options(ex: Example) -> list[Candidate]:
        return schema.interchange_sources(dataset.kg, ex, target)

    return _collect_pairs(dataset, examples, options, seed, f"inferred {schema.label} prompts")


def bridge_pairs(dataset: KGDataset, examples: Sequence[Example], *, seed: int = 0) -> InterchangePairs:
    """For each ``<h><r1><r2>`` (bridge ``b``, answer ``t``), a source ``<h'><r1'><r2>`` whose bridge
    ``b' != b`` has relation ``r2`` with ``t' = r2(b') != t``; every fact used is in-distribution."""
    return interchange_pairs(dataset, examples, "bridge", seed=seed)


def value_pairs(
    dataset: KGDataset, examples: Sequence[Example], which: str = "v1", *, seed: int = 0
) -> InterchangePairs:
    """For each ``<a><q><e1><mask><e2>``, a source with ``e1`` (``which="v1"``) or ``e2`` (``"v2"``) replaced by
    an in-distribution entity whose value under ``a`` changes the label; expected: the label it implies."""
    return interchange_pairs(dataset, examples, which, seed=seed)


# --------------------------------------------------------------------------- localisation
@dataclass
class Localization:
    """Where an intermediate (``bridge``, ``v1``, ``v2``) is decodable, causally used and swappable.

    Maps are over residual states ``S[l, p]``, ``l = 0 .. n_layers`` (after ``l`` blocks).
    """

    target: str
    position: int
    positions: list[str]
    decodable: Float[Tensor, "layer pos"]
    mrr: Float[Tensor, "layer pos"]
    causal: Float[Tensor, "layer pos"]
    interchange: Float[Tensor, " layer"]
    interchange_baseline: float
    n: int
    n_interchange: int
    swaps: list[str] = field(default_factory=list)

    @property
    def position_name(self) -> str:
        """The name of the position where the intermediate is read (``r1``, ``e1`` ...)."""
        return self.positions[self.position]

    def decodable_layers(self, threshold: float = 0.5) -> list[int]:
        """States ``l`` at which the target is top-1 at its position for at least ``threshold`` of the examples."""
        return [int(s) for s in (self.decodable[:, self.position] >= threshold).nonzero().flatten()]

    @property
    def best_layer(self) -> int:
        """The state where the interchange succeeds most often."""
        return int(self.interchange.argmax())

    def summary(self) -> dict[str, Any]:
        """The localisation as a JSON-ready dict: the rates at its position per state, the best state, the counts."""
        col = self.position
        return {
            "target": self.target,
            "position": self.position_name,
            "decodable_top1": [round(float(x), 4) for x in self.decodable[:, col]],
            "causal": [round(float(x), 4) for x in self.causal[:, col]],
            "interchange": [round(float(x), 4) for x in self.interchange],
            "interchange_baseline": round(self.interchange_baseline, 4),
            "best_layer": self.best_layer,
            "n": self.n,
            "n_interchange": self.n_interchange,
        }


def _localize(
    bridge: Bridge,
    dataset: KGDataset,
    examples: list[Example],
    target: str,
    position: int,
    positions: Sequence[str],
    swaps: Sequence[str],
    pairs: InterchangePairs,
    seed: int,
    id_only: bool,
) -> Localization:
    device = bridge.cfg.device
    tokens = torch.tensor([dataset.vocab.encode(ex.input_tokens) for ex in examples], dtype=torch.long, device=device)
    lens = logit_lens(bridge, tokens, example_targets(dataset, examples, target))
    traces = trace_counterfactual(bridge, dataset, examples, list(swaps), n=None, seed=seed, id_only=id_only)
    causal = torch.stack([traces[s].double().cpu() for s in swaps]).mean(0)
    clean, source = pairs.clean.to(device), pairs.source.to(device)
    success = interchange(bridge, clean, source, pairs.expected, position).cpu()
    base = float(baseline_metric(bridge, clean, predicts(pairs.expected)).double().mean())
    return Localization(
        target=target,
        position=position,
        positions=list(positions),
        decodable=lens.top1.double().cpu(),
        mrr=lens.mrr.double().cpu(),
        causal=causal,
        interchange=success,
        interchange_baseline=base,
        n=len(examples),
        n_interchange=len(pairs.examples),
        swaps=list(swaps),
    )


def _examples(dataset: KGDataset, split: str | Sequence[Example], n: int | None) -> list[Example]:
    examples = list(dataset.examples(split) if isinstance(split, str) else split)
    return examples[:n] if n is not None else examples


def locate(
    model: HookedModel,
    dataset: KGDataset,
    target: str,
    split: str | Sequence[Example] = "train_inferred",
    *,
    n: int | None = 300,
    seed: int = 0,
    id_only: bool = True,
) -> Localization:
    """Where the task's intermediate ``target`` lives (``bridge``; ``v1``, ``v2``), at the position its schema names.

    ``id_only``: the tracing counterfactuals use in-distribution facts only (pass False for OOD prompts,
    which have no such counterfactual); interchange sources always do.
    """
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    schema = _schema(dataset)
    try:
        where = schema.intermediate(target)
    except TaskSchemaError as err:
        raise CircuitError(str(err)) from None
    examples = _examples(dataset, split, n)
    pairs = interchange_pairs(dataset, examples, target, seed=seed)
    return _localize(
        bridge, dataset, examples, target, where.position, schema.positions, where.swaps, pairs, seed, id_only
    )


def locate_bridge(
    model: HookedModel,
    dataset: KGDataset,
    split: str | Sequence[Example] = "train_inferred",
    *,
    n: int | None = 300,
    seed: int = 0,
    id_only: bool = True,
) -> Localization:
    """Where the bridge entity of two-hop queries lives (the paper: ``S[l, r1]`` in the middle layers).

    ``id_only`` as in :func:`locate`.
    """
    if "bridge" not in _schema(dataset).intermediates:
        raise CircuitError(f"locate_bridge needs a composition dataset; this one is {dataset.task}")
    return locate(model, dataset, "bridge", split, n=n, seed=seed, id_only=id_only)


def locate_values(
    model: HookedModel,
    dataset: KGDataset,
    split: str | Sequence[Example] = "train_inferred",
    *,
    n: int | None = 300,
    seed: int = 0,
    id_only: bool = True,
) -> dict[str, Localization]:
    """Where the two attribute values of comparison queries live (the paper: ``v1`` at ``e1``, ``v2`` at ``e2``).

    ``id_only`` as in :func:`locate`.
    """
    if not {"v1", "v2"} <= set(_schema(dataset).intermediates):
        raise CircuitError(f"locate_values needs a comparison dataset; this one is {dataset.task}")
    bridge = as_bridge(model)
    return {target: locate(bridge, dataset, target, split, n=n, seed=seed, id_only=id_only) for target in ("v1", "v2")}


def localize(
    model: HookedModel,
    dataset: KGDataset,
    split: str | Sequence[Example] = "train_inferred",
    *,
    n: int | None = 300,
    seed: int = 0,
    id_only: bool = True,
) -> dict[str, Localization]:
    """The intermediates of a dataset's task (its schema's): ``{"bridge": ...}`` or ``{"v1": ..., "v2": ...}``."""
    names = list(_schema(dataset).intermediates)
    if not names:
        raise CircuitError(f"no intermediate to locate for a {dataset.task} dataset")
    bridge = as_bridge(model)
    return {name: locate(bridge, dataset, name, split, n=n, seed=seed, id_only=id_only) for name in names}
