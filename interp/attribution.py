"""Attribution patching: a first-order estimate of every patch from one forward and one backward.

Exact activation patching needs a forward per patched place. Attribution patching (Nanda
2023; Syed et al. 2023) linearises the metric ``m`` around the run being patched: pasting
the source activation ``a_src`` in place of ``a`` changes the metric by about

    m(patched) - m(run)  ~  (a_src - a) . dm/da

so one forward and one backward on the run give the gradient at every node at once, and a
cached source run gives every difference. The estimate is exact in the limit of small
differences (its error is second order in ``a_src - a``) and good where the metric is
close to linear in the node; it can miss effects that saturate (a softmax already at 0 or
1), which :func:`attribution_agreement` measures against exact patching.

Nodes are the hook families of :mod:`interp.sites` (residual stream, attention and MLP
outputs, per-head ``z`` / ``result``) at every layer x position (x head). Estimates are of
the *change* of the metric, per example or averaged over examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import einops
import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from interp.intervene import Intervention, activation_gradients, answer_positions, check_tokens
from interp.metrics import Metric, baseline_metric, run_metric
from interp.models.protocol import Bridge
from interp.patching import NodeMap, SourceLike, activation_patch, source_cache
from interp.sites import family

DEFAULT_FAMILIES = ("resid_pre", "attn_out", "mlp_out", "z")


def attribution_patch(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    source: SourceLike,
    metric: Metric,
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    interventions: Sequence[Intervention] = (),
    per_example: bool = False,
) -> dict[str, NodeMap]:
    """Estimated metric change of patching ``source`` into the run on ``tokens``, for every node.

    One forward and one backward on ``tokens`` (with ``interventions``), plus a cached or
    computed ``source`` run. Returns per family ``layer pos`` (``layer pos head_index`` for
    per-head families), averaged over examples, or with a trailing ``batch`` axis if
    ``per_example``; the same layout as :func:`interp.patching.activation_patch`, whose value
    minus the unpatched metric it estimates.
    """
    tokens = check_tokens(bridge, tokens)
    pos = answer_positions(tokens, answer_pos)
    layout = {}  # family -> hook name per layer
    for name in families:
        fam = family(name)
        layout[name] = [fam.hook(bridge, layer)[1] for layer in range(fam.n_layers(bridge))]
    hooks = list(dict.fromkeys(h for names in layout.values() for h in names))
    src = source_cache(bridge, source, hooks, tokens)

    acts, grads, _ = activation_gradients(
        bridge, tokens, hooks, lambda logits: run_metric(metric, logits), interventions, answer_pos=pos
    )

    out = {}
    for name, names in layout.items():
        per_layer = []
        for h in names:
            act, grad = acts[h], grads[h]  # a node that does not reach the metric has a zero gradient
            delta = src[h].to(act) - act
            if act.ndim == 4:  # per head: z (d_head) or result (d_model)
                est = einops.einsum(
                    delta, grad, "batch pos head_index d, batch pos head_index d -> pos head_index batch"
                )
            else:
                est = einops.einsum(delta, grad, "batch pos d_model, batch pos d_model -> pos batch")
            per_layer.append(est)
        stacked = torch.stack(per_layer)  # layer pos [head_index] batch
        out[name] = stacked if per_example else stacked.mean(-1)
    return out


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two tensors' entries (nan if either is constant)."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else float("nan")


def attribution_agreement(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    source: SourceLike,
    metric: Metric,
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
) -> pd.DataFrame:
    """Attribution patching against exact patching, per family: correlation and errors.

    Columns: family, nodes, pearson (over nodes, of the example-mean effects), max_abs_error,
    max_abs_effect (the largest exact effect, for scale).
    """
    tokens = check_tokens(bridge, tokens)
    estimate = attribution_patch(bridge, tokens, source, metric, families, answer_pos=answer_pos)
    rows = []
    for name in families:
        exact = activation_patch(bridge, tokens, source, metric, name, answer_pos=answer_pos)
        effect = exact - baseline_metric(bridge, tokens, metric, answer_pos=answer_pos).mean().to(exact)
        est = estimate[name].to(effect)
        rows.append(
            {
                "family": name,
                "nodes": effect.numel(),
                "pearson": pearson(est, effect),
                "max_abs_error": float((est - effect).abs().max()),
                "max_abs_effect": float(effect.abs().max()),
            }
        )
    return pd.DataFrame(rows)
