"""Causal tracing: where along layers and positions does the model carry what decides its answer?

Two flavours, both activation patching of the residual stream (or of MLP / attention
outputs) over layer x position, built on :mod:`interp.patching`:

(a) **Counterfactual token swap** (Wang et al. 2024, as in the paper). For each clean prompt,
    a perturbed prompt replaces one token (``h``, ``r1`` or ``r2``) by a token of the same
    type that changes the answer (:mod:`interp.counterfactuals`). The perturbed run's state
    at one (layer, position) is pasted into the clean run; the score is the fraction of
    examples whose top-1 prediction changes. A high score at ``S[l, p]`` means the clean
    answer depends on what that state carries about the swapped token.

(b) **Gaussian noise with restoration** (Meng et al. 2022, ROME). Gaussian noise of
    ``noise_scale`` (3) times the standard deviation of the token embeddings is added to the
    token embeddings at chosen positions, which destroys the answer; then one clean state
    (the residual at one layer and position) is restored, or the MLP or attention outputs
    of a window of layers around it at one position. The score is the probability of the
    clean answer. The noise is drawn once, from ``seed``, and shared by every restoration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.counterfactuals import CounterfactualError, counterfactual_batch
from interp.data import Example, KGDataset, TaskSchemaError, task_schema
from interp.intervene import (
    InterventionError,
    answer_positions,
    as_bridge,
    check_in_vocab,
    check_tokens,
    check_vocab,
    gaussian_noise,
    generator_from,
    position_mask,
)
from interp.models import Bridge, HookedModel
from interp.patching import activation_patch, answer_prob, baseline_metric, top1, top1_change


def trace_counterfactual(
    model: HookedModel,
    dataset: KGDataset,
    examples: Sequence[Example] | str = "train_inferred",
    swaps: Sequence[str] | None = None,
    *,
    n: int | None = 300,
    seed: int = 0,
    id_only: bool = True,
    family: str = "resid",
    max_rows: int = 2048,
) -> dict[str, Float[Tensor, "layer pos"]]:
    """The paper's causal tracing: top-1 change rate per (layer, position), per swapped token.

    ``family="resid"`` pastes the residual after ``l`` blocks (``l = 0..n_layers``, as in the
    logit lens); any family of :data:`interp.sites.FAMILIES` works. ``swaps`` defaults to
    the task schema's swaps: ``h, r1, r2`` (composition) or ``e1, e2, attr`` (comparison).
    """
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    if swaps is None:
        try:
            schema = task_schema(dataset)
        except TaskSchemaError as err:
            raise CounterfactualError(str(err)) from None
        if not schema.swaps:
            raise CounterfactualError(f"no token of a {schema.label} prompt can be swapped (no counterfactual rules)")
        swaps = schema.swaps
    device = bridge.cfg.device
    out = {}
    for swap in swaps:
        pairs = counterfactual_batch(dataset, examples, swap, n=n, seed=seed, id_only=id_only, device=device)
        reference = top1(bridge, pairs.clean, pairs.answer_pos)
        out[swap] = activation_patch(
            bridge,
            pairs.clean,
            pairs.corrupt,
            top1_change(reference),
            family,
            answer_pos=pairs.answer_pos,
            max_rows=max_rows,
        )
    return out


@dataclass
class NoiseTrace:
    """ROME-style causal trace: probability of the clean answer with one place restored."""

    scores: Float[Tensor, "layer pos"]
    clean_prob: float
    noised_prob: float
    kind: str
    window: int
    noise_std: float


def embedding_std(bridge: Bridge) -> float:
    """Standard deviation of the token embedding matrix's entries."""
    return float(bridge.W_E.detach().float().std())


def trace_noise(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    answer: Int[Tensor, " batch"],
    noise_positions: int | Sequence[int],
    *,
    kind: Literal["resid", "mlp_out", "attn_out"] = "resid",
    window: int = 1,
    noise_scale: float = 3.0,
    n_samples: int = 1,
    seed: int | torch.Generator = 0,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    max_rows: int = 2048,
) -> NoiseTrace:
    """Noise the token embeddings at ``noise_positions``, restore one clean place, score P(answer).

    ``kind="resid"`` restores the residual after ``l`` blocks (``l = 0..n_layers``);
    ``"mlp_out"`` / ``"attn_out"`` restore those outputs in the ``window`` layers around
    ``l`` (ROME uses 10 of GPT-2 XL's 48). Each example is noised ``n_samples`` times
    independently; scores average over examples and samples.
    """
    if kind not in ("resid", "mlp_out", "attn_out"):
        raise InterventionError(f"unknown kind {kind!r}; choose resid, mlp_out or attn_out")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise InterventionError(f"n_samples {n_samples!r} must be a positive integer")
    bridge = as_bridge(model)
    tokens = check_tokens(bridge, tokens)
    batch, n_pos = tokens.shape
    answer = torch.as_tensor(answer, dtype=torch.long, device=tokens.device).expand(batch)
    check_in_vocab(bridge, answer, "answer")
    pos = answer_positions(tokens, answer_pos)
    mask = position_mask(batch * n_samples, n_pos, noise_positions, device=tokens.device)
    std = noise_scale * embedding_std(bridge)
    rows = tokens.repeat(n_samples, 1)
    noise = gaussian_noise(
        "hook_embed",
        (batch * n_samples, n_pos, int(bridge.cfg.d_model)),
        std,
        mask,
        seed=generator_from(seed),
        dtype=bridge.W_E.dtype,
        device=tokens.device,
    )
    metric = answer_prob(answer.repeat(n_samples))
    pos_rep = pos.repeat(n_samples)
    scores = activation_patch(
        bridge,
        rows,
        rows,
        metric,
        kind,
        window=window,
        answer_pos=pos_rep,
        interventions=[noise],
        max_rows=max_rows,
    )
    clean = baseline_metric(bridge, rows, metric, answer_pos=pos_rep)
    noised = baseline_metric(bridge, rows, metric, answer_pos=pos_rep, interventions=[noise])
    return NoiseTrace(scores, float(clean.mean()), float(noised.mean()), kind, window, std)
