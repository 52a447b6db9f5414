"""Training and scoring transcoders: MLP input -> MLP output, with the dictionaries' sparsity rules.

The loop is the dictionaries' (:func:`interp.features.train.fit`: Adam on shuffled
mini-batches of cached rows, unit-norm decoder rows, each architecture's losses and
updates) with the *MLP output* ``y`` as the target, predicted from the MLP input ``x``.
Scores (SAELens names): ``fvu`` of the MLP output, ``l0``, ``dead_features``;
``accuracy_*`` / ``loss_*`` with the MLP output replaced by the transcoder's prediction (:class:`TranscoderSplice`, which computes the
prediction from the MLP input *of the same forward*) against zero-ablating the MLP output,
for one layer (:func:`evaluate_transcoder`) or every layer at once
(:func:`evaluate_replacement`, the replacement model of attribution graphs). A config with
``cross_layer=True`` trains one cross-layer transcoder over every block on the concatenated
rows (:func:`train_cross_layer_on_model`), given back under every layer's key::

    from interp.features import TranscoderConfig, train_transcoders_on_model, evaluate_replacement

    results = train_transcoders_on_model(model, dataset, TranscoderConfig.for_layer(0, k=16))
    tcs = {layer: r.dictionary for layer, r in results.items()}
    evaluate_replacement(tcs, model, dataset).accuracy_recovered
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.data import KGDataset
from interp.features.activations import CHUNK, Activations, collect_activations, prompt_set
from interp.features.config import EmptyPromptSetError
from interp.features.io import model_fingerprint
from interp.features.metrics import DictionaryMetrics, answer_score, average_scores
from interp.features.replacement import Replacement, replacement_interventions
from interp.features.train import TrainingResult, fit, training_rows
from interp.features.transcoder import Transcoder, TranscoderConfig
from interp.intervene import (
    Intervention,
    Read,
    as_bridge,
    check_layer,
    check_vocab,
    run_with_interventions,
    zero_ablation,
)
from interp.models.protocol import HookedModel


# ------------------------------------------------------------------------- splicing
@dataclass(eq=False, repr=False)
class TranscoderSplice(Intervention):
    """At the MLP output, put the transcoder's prediction from the MLP input read earlier in this forward.

    Pair it with ``Read(tc.hook_name, store=store)`` (see :func:`splice_interventions`).
    ``error`` (``batch pos d_out``) is added to the prediction: with the true MLP output minus
    the prediction it reproduces the MLP exactly. ``where`` selects positions (None: all).
    """

    transcoder: Transcoder | None = None
    store: dict[str, Tensor] = field(default_factory=dict)
    error: Tensor | None = None
    where: Bool[Tensor, "batch pos"] | None = None

    def edit(self, act: Tensor) -> Tensor:
        """The transcoder's prediction from the stored MLP input (plus ``error``), at ``where`` or everywhere."""
        assert self.transcoder is not None
        x = self.store[self.transcoder.hook_name]
        new = self.transcoder(x.reshape(*x.shape[:2], -1).to(self.transcoder.W_enc.dtype)).to(act.dtype)
        if self.error is not None:
            new = new + self.error.to(act.dtype)
        new = new.reshape(act.shape)
        return new if self.where is None else torch.where(self.where.to(act.device)[..., None], new, act)

    def take(self, rows: Int[Tensor, " row"]) -> TranscoderSplice:
        """The same splice for the batch rows ``rows`` (``error`` and ``where`` indexed too)."""
        pick = lambda t: t if t is None or t.shape[0] == 1 else t[rows.to(t.device)]  # noqa: E731
        return replace(self, error=pick(self.error), where=pick(self.where))


def splice_interventions(
    transcoders: Mapping[int, Transcoder], where: Bool[Tensor, "batch pos"] | None = None
) -> list[Intervention]:
    """A ``Read`` of each transcoder's input and a :class:`TranscoderSplice` at its output (the MLPs replaced); for a
    cross-layer transcoder, :func:`~interp.features.replacement.replacement_interventions`."""
    rep = Replacement.of(transcoders)
    if rep.clt is not None:
        return replacement_interventions(rep, where)
    out: list[Intervention] = []
    for _, tc in sorted(transcoders.items()):
        store: dict[str, Tensor] = {}
        out += [
            Read(tc.hook_name, store=store),
            TranscoderSplice(tc.hook_name_out, transcoder=tc, store=store, where=where),
        ]
    return out


# ------------------------------------------------------------------------- training
def train_transcoder(
    cfg: TranscoderConfig,
    inputs: Activations | Float[Tensor, "row d_in"],
    outputs: Activations | Float[Tensor, "row d_out"],
    *,
    meta: dict[str, Any] | None = None,
    log_every: int = 100,
) -> TrainingResult:
    """Train a transcoder of ``cfg`` to predict ``outputs`` from ``inputs`` (the same rows) with the one loop,
    :func:`~interp.features.train.fit`.

    Returns a :class:`~interp.features.train.TrainingResult` whose ``dictionary`` is the
    :class:`Transcoder` (eval mode, scales folded in) and whose ``history`` logs ``mse``,
    ``fvu`` (of the output), ``l0`` and ``dead_features``.
    """
    x, y = training_rows(inputs, outputs)
    assert y is not None
    tc = Transcoder(cfg.resolved_io(x.shape[1], y.shape[1]), meta=meta)
    return fit(tc, x, y, log_every=log_every)


def transcoder_activations(
    model: HookedModel, dataset: KGDataset, cfg: TranscoderConfig
) -> tuple[Activations, Activations]:
    """The MLP inputs and outputs of ``cfg``'s layer over its splits and positions (the same rows)."""
    bridge = as_bridge(model)
    x = collect_activations(bridge, dataset, cfg.hook_name, splits=cfg.splits, positions=cfg.positions)
    y = collect_activations(bridge, dataset, cfg.hook_name_out, splits=cfg.splits, positions=cfg.positions)
    return x, y


def train_transcoders_on_model(
    model: HookedModel,
    dataset: KGDataset,
    cfg: TranscoderConfig,
    *,
    layers: Sequence[int] | None = None,
    meta: dict[str, Any] | None = None,
    log_every: int = 100,
) -> dict[int, TrainingResult]:
    """One transcoder per layer in ``layers`` (None: every block), each ``cfg`` moved to its layer; with
    ``cfg.cross_layer`` one CLT over every block, returned under every layer's key (``layers`` is ignored)."""
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    n = len(bridge.blocks)
    chosen = list(range(n)) if layers is None else list(layers)
    for layer in chosen:
        check_layer(layer, n)
    meta = {"model_fingerprint": model_fingerprint(bridge), **(meta or {})}
    if cfg.cross_layer:
        return train_cross_layer_on_model(bridge, dataset, cfg, meta=meta, log_every=log_every)
    out = {}
    for layer in chosen:
        layer_cfg = cfg.at_layer(layer)
        x, y = transcoder_activations(bridge, dataset, layer_cfg)
        out[layer] = train_transcoder(layer_cfg, x, y, meta=meta, log_every=log_every)
    return out


def train_transcoders_on_run(
    run_dir: str | Path,
    cfg: TranscoderConfig,
    *,
    layers: Sequence[int] | None = None,
    device: torch.device | str | None = "cpu",
    log_every: int = 100,
) -> tuple[dict[int, TrainingResult], Any]:
    """Load a run's latest checkpoint and train a transcoder per layer; also returns the loaded run."""
    from interp.runs import load_checkpoint

    run = load_checkpoint(run_dir, device=device)
    meta = {"run_dir": str(Path(run_dir).resolve()), "step": run.step}
    return train_transcoders_on_model(run.model, run.dataset, cfg, layers=layers, meta=meta, log_every=log_every), run


def train_cross_layer_on_model(
    model: HookedModel,
    dataset: KGDataset,
    cfg: TranscoderConfig,
    *,
    meta: dict[str, Any] | None = None,
    log_every: int = 100,
) -> dict[int, TrainingResult]:
    """One cross-layer transcoder over every block (``cfg.cross_layer``), trained by the one loop on rows that
    concatenate every layer's MLP inputs and outputs; the result under every layer's key."""
    bridge = as_bridge(model)
    n = len(bridge.blocks)
    if cfg.n_layers not in (None, n):
        raise EmptyPromptSetError(f"the config's n_layers = {cfg.n_layers} but the model has {n} blocks; unset it")
    base = replace(cfg.at_layer(0), n_layers=n)
    xs, ys = zip(*(transcoder_activations(bridge, dataset, cfg.at_layer(layer)) for layer in range(n)), strict=True)
    x = torch.cat([a.acts for a in xs], -1)
    y = torch.cat([a.acts for a in ys], -1)
    result = train_transcoder(base, x, y, meta=meta, log_every=log_every)
    return dict.fromkeys(range(n), result)


# -------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class TranscoderMetrics(DictionaryMetrics):
    """A transcoder's scores (``fvu``/``mse`` of the MLP output), or the replacement model's (``l0`` summed over layers)."""


@torch.no_grad()
def _score(
    bridge: Any, tokens: Tensor, batch: Any, spliced: list[Intervention], zero: list[Intervention]
) -> dict[str, float]:
    sums = {name: [0.0, 0.0] for name in ("clean", "spliced", "zero")}
    for start in range(0, tokens.shape[0], CHUNK):
        part = slice(start, start + CHUNK)
        for name, ivs in (("clean", []), ("spliced", spliced), ("zero", zero)):
            ivs = [iv.take(torch.arange(start, min(start + CHUNK, tokens.shape[0]))) for iv in ivs]
            logits = run_with_interventions(bridge, tokens[part], ivs, answer_pos=batch.answer_pos[part])
            correct, loss = answer_score(logits, batch.answer[part])
            sums[name][0] += correct
            sums[name][1] += loss
    return average_scores(sums, tokens.shape[0])


@torch.no_grad()
def evaluate_replacement(
    transcoders: Mapping[int, Transcoder],
    model: HookedModel,
    dataset: KGDataset,
    *,
    splits: Sequence[str] | None = None,
) -> TranscoderMetrics:
    """Score ``transcoders`` together (per-layer, or one CLT under every key): every listed MLP replaced at every
    prompt position in one forward.

    ``fvu`` / ``mse`` pool the layers (MLP outputs of the clean run); ``l0`` is summed over
    layers; the baseline zero-ablates the same MLP outputs.
    """
    if not transcoders:
        raise EmptyPromptSetError("no transcoders given; pass a mapping layer -> Transcoder")
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    rep = Replacement.of(transcoders)
    rep.check(bridge, check_weights=False)
    prompts = prompt_set(dataset, splits)
    device = next(iter(bridge.parameters())).device
    tokens, batch, mask = prompts.tokens.to(device), prompts.batch.to(device), prompts.mask.to(device)
    err = total = 0.0
    active = {layer: 0.0 for layer in rep.layers}
    fired = {layer: torch.zeros(rep.d_sae(layer), dtype=torch.bool, device=device) for layer in rep.layers}
    hooks = [h for layer in rep.layers for h in (rep.input_hook(layer), rep.output_hook(layer))]
    dtype = rep.modules[0].W_enc.dtype
    for start in range(0, tokens.shape[0], CHUNK):
        store: dict[str, Tensor] = {}
        run_with_interventions(bridge, tokens[start : start + CHUNK], [Read(h, store=store) for h in hooks])
        sel = mask[start : start + CHUNK]
        xs = {layer: store[rep.input_hook(layer)].flatten(2)[sel].to(dtype) for layer in rep.layers}
        acts = {layer: rep.encode(layer, x) for layer, x in xs.items()}
        for layer in rep.layers:
            y = store[rep.output_hook(layer)].flatten(2)[sel].to(dtype)
            err += float((rep.predict(layer, acts, xs[layer]) - y).pow(2).sum())
            total += float((y - y.mean(0)).pow(2).sum())
            active[layer] += float((acts[layer] > 0).sum())
            fired[layer] |= (acts[layer] > 0).any(0)
    n_pos = int(mask.sum())
    l0 = sum(active.values()) / max(1, n_pos)
    dead = sum(int((~f).sum()) for f in fired.values())
    zero = [zero_ablation(rep.output_hook(layer), where=mask) for layer in rep.layers]
    scores = _score(bridge, tokens, batch, splice_interventions(transcoders, where=mask), zero)
    n_rows = n_pos * len(rep.layers)
    return TranscoderMetrics(
        l0=l0,
        fvu=err / max(total, 1e-30),
        mse=err / max(n_rows, 1),
        dead_features=dead,
        n_rows=n_rows,
        n_prompts=tokens.shape[0],
        **scores,
    )  # type: ignore[arg-type]


def evaluate_transcoder(
    tc: Transcoder, model: HookedModel, dataset: KGDataset, *, splits: Sequence[str] | None = None
) -> TranscoderMetrics:
    """Score one transcoder: its MLP replaced at every prompt position (the others left as they are); a CLT
    replaces every MLP."""
    n_layers = getattr(tc, "n_layers", None)
    if isinstance(n_layers, int):
        return evaluate_replacement(dict.fromkeys(range(n_layers), tc), model, dataset, splits=splits)
    if tc.layer is None:
        raise EmptyPromptSetError(f"{tc.hook_name_out} is not a block's MLP output")
    return evaluate_replacement({tc.layer: tc}, model, dataset, splits=splits if splits is not None else tc.cfg.splits)


__all__ = [
    "TranscoderMetrics",
    "TranscoderSplice",
    "evaluate_replacement",
    "evaluate_transcoder",
    "splice_interventions",
    "train_cross_layer_on_model",
    "train_transcoder",
    "train_transcoders_on_model",
    "train_transcoders_on_run",
    "transcoder_activations",
]
