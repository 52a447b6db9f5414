"""Activation patching: which activations carry the information that decides the answer?

Run the model on one input (say the corrupt prompt ``<h'><r1><r2>``) and, at one place
(a layer, a position, maybe a head), replace the activation by the one the other input (the
clean ``<h><r1><r2>``) produced there. If the output moves back towards the clean answer,
that activation carries what the corruption changed. Sweeping the place over
layer x position (x head) gives a map of where the information lives (Meng et al. 2022;
TransformerLens's ``patching.py``). Patching clean into corrupt ("denoising", TL's
convention) asks what is sufficient; corrupt into clean ("noising", the paper's causal
tracing) asks what is necessary: the same function with the two inputs swapped.

A *metric* (:mod:`interp.metrics`, re-exported here) scores each patched run per example
from the logits at the answer position: :func:`logit_diff`, :func:`answer_prob`,
:func:`answer_rank`, :func:`top1_change`, or any callable ``metric(logits, example)``;
:func:`baseline_metric` is the metric of the unpatched run.

How the sweep is fast and still exact (every result equals TransformerLens 4's
``get_act_patch_*``, which does one full forward per patched place):

* the patches are *stacked*: each (place, example) pair is one row of a big batch;
* by causality a patch in block ``L`` at position ``p`` changes nothing before block ``L`` or
  before position ``p``: its forward runs blocks ``L..`` on positions ``p..`` only, reusing
  the unpatched run's residual and its keys and values (:mod:`interp.fastpatch`,
  :func:`interp.intervene.suffix.run_suffix`), and the last block only at the answer;
* a patch after the attention of block ``L`` leaves that attention as it was: block ``L``
  reads it from the unpatched run (:func:`resume_points`) and computes only the positions
  the patch edits;
* a patch that pastes a value equal to the one already there cannot change anything: its
  row is not run and gets the unpatched run's value.

:func:`patch_sites` is the generic sweep over arbitrary lists of :class:`~interp.sites.Site`
(one or more hooks, a position or all, a head or all; :mod:`interp.sites`);
:func:`activation_patch` is its specialisation to the hook families (``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``,
``mlp_out``, per-head ``z`` and ``result``, and ``resid``: the n_layers + 1 residual
states, as in the logit lens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.fastpatch import (
    block_of,
    groups,
    kv_hooks,
    optional_lookup,
    row_starts,
    site_mask,
    source_prefix_block,
    source_prefix_rows,
)
from interp.intervene import (
    Intervention,
    InterventionError,
    Patch,
    Read,
    ShapeMismatchError,
    answer_positions,
    cache_activations,
    check_hook,
    check_layer,
    check_same_shape,
    check_tokens,
    n_layers,
    run_with_interventions,
)
from interp.intervene.suffix import RESUME_READS, SUFFIX_HOOKS, run_suffix, suffix_reads, suffix_supported
from interp.metrics import (
    METRICS,
    Metric,
    answer_prob,
    answer_rank,
    baseline_metric,
    logit_diff,
    named_metric,
    run_metric,
    tl_metric,
    top1,
    top1_change,
)
from interp.models.protocol import Bridge
from interp.sites import Site, family_sites

# ---------------------------------------------------------------------------- the sweep
NodeMap = (
    Float[Tensor, "layer _pos"]
    | Float[Tensor, "layer _pos head_index"]
    | Float[Tensor, "layer _pos batch"]
    | Float[Tensor, "layer _pos head_index batch"]
)
"""A value per node of a sweep, ``layer pos [head_index]``, with a trailing ``batch`` axis per example.

``_pos`` is the sweep's position axis: the prompt's positions, the chosen ones, or one entry
for "all positions at once".
"""

SourceLike = Int[Tensor, "batch pos"] | Mapping[str, Tensor] | Any


def source_cache(
    bridge: Bridge, source: SourceLike, hooks: Sequence[str], tokens: Tensor, *, optional: Sequence[str] = ()
) -> dict[str, Tensor]:
    """The source run's activations at ``hooks``: computed from tokens, or looked up in a cache.

    ``optional`` hooks are added too when the cache has them all (always, for tokens).
    """
    if isinstance(source, Tensor):
        check_tokens(bridge, source, "source")
        check_same_shape(source, tokens, "source", "tokens")
        with torch.no_grad():
            return cache_activations(bridge, source, [*hooks, *optional])[1]
    out = optional_lookup(source, optional, tuple(tokens.shape)) or {}
    for h in hooks:
        try:
            act = source[h]
        except KeyError:
            msg = f"the source cache has no activation {h!r}; cache it or pass source tokens"
            raise InterventionError(msg) from None
        if tuple(act.shape[:2]) != tuple(tokens.shape):
            raise ShapeMismatchError(
                f"the source activation {h} covers (batch, pos) = {tuple(act.shape[:2])} but the tokens "
                f"are {tuple(tokens.shape)}; cache the source on prompts paired with the tokens"
            )
        out[h] = act
    return out


def resume_points(sites: Sequence[Site], interventions: Sequence[Intervention]) -> dict[int, str]:
    """Per start block, the hook where the suffix forward can start inside it (a key of
    :data:`~interp.intervene.suffix.RESUME_READS`): the first hook any site starting there
    patches in that block, where it comes after the attention and no intervention sits in
    the block. Blocks absent start at ``hook_resid_pre``."""
    firsts: dict[int, set[str]] = {}
    for s in sites:
        firsts.setdefault(s.layer, set()).update(h.split(".", 2)[2] for h in s.hooks if block_of(h) == s.layer)
    busy = {block_of(iv.hook) for iv in interventions}
    out = {}
    for layer, names in firsts.items():
        first = min(names, key=SUFFIX_HOOKS.index) if names and names <= set(SUFFIX_HOOKS) else None
        if first in RESUME_READS and layer not in busy:
            out[layer] = first
    return out


@torch.no_grad()
def patch_sites(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    source: SourceLike,
    sites: Sequence[Site],
    metric: Metric,
    *,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    interventions: Sequence[Intervention] = (),
    max_rows: int = 2048,
    skip_noops: bool = True,
    reuse_kv: bool = True,
) -> tuple[Float[Tensor, "site batch"], Float[Tensor, " batch"]]:
    """The generic patching sweep: the metric of every (site, example), and of the unpatched run.

    The run is ``tokens`` with ``interventions`` (noise, ablations) applied; each site pastes
    ``source``'s activations (a token tensor, or a cache / mapping hook -> activation) at its
    hooks, position and head. Rows are stacked up to ``max_rows`` per forward, and each
    forward starts at the site's layer. ``skip_noops`` leaves out rows whose pasted values
    equal the values already there (their result is the unpatched one, exactly).
    ``reuse_kv`` runs each row on the positions from its first changed one on, with the
    unpatched run's keys and values before it (:func:`interp.intervene.suffix.run_suffix`),
    where the suffix forward supports the sites and interventions; otherwise (or with
    ``reuse_kv=False``) every row runs all positions through the bridge's blocks.
    """
    tokens = check_tokens(bridge, tokens)
    if max_rows < 1:
        raise InterventionError(f"max_rows {max_rows!r} must be at least 1")
    batch, device = tokens.shape[0], tokens.device
    pos_idx = answer_positions(tokens, answer_pos)
    hooks = sorted({h for s in sites for h in s.hooks})
    for h in hooks:
        check_hook(bridge, h)
    n = n_layers(bridge)
    starts = sorted({check_layer(s.layer, n) for s in sites})
    for s in sites:
        for h in s.hooks:
            block = block_of(h)
            if block is None or block < s.layer:
                raise InterventionError(
                    f"site {h} is not in block {s.layer} or later; a site's layer is the first block it patches"
                )

    # One unpatched forward: the residual entering each start block (read before any
    # intervention on it, as the block receives it), the values at the patched hooks and,
    # for the suffix forward, the keys and values of every block from the first start on.
    start_store: dict[str, Tensor] = {}
    suffix = reuse_kv and suffix_supported(bridge, hooks, interventions, starts[0])
    prefix_blocks = {source_prefix_block(s) for s in sites} - {None, n} if suffix else set()
    first = [Read(f"blocks.{L}.hook_resid_pre", store=start_store) for L in sorted({*starts, *prefix_blocks})]
    kv: dict[str, Tensor] = {}
    extra = suffix_reads(bridge, starts[0], kv) if suffix else []
    resume_at = resume_points(sites, interventions) if suffix else {}
    resume_store: dict[str, Tensor] = {}
    extra += [
        Read(f"blocks.{L}.{name}", store=resume_store) for L, at in resume_at.items() for name in RESUME_READS[at]
    ]
    base_logits, base_acts = cache_activations(bridge, tokens, hooks, [*first, *interventions, *extra])
    base_metric = run_metric(metric, base_logits, pos_idx).detach()  # = baseline_metric(...), same forward
    kv_names = kv_hooks(starts[0], n) if suffix else []
    src = source_cache(bridge, source, hooks, tokens, optional=kv_names)

    # Per hook: each site's mask (all False where the site does not patch that hook).
    masks: dict[str, Tensor] = {}
    for h in hooks:
        shape = tuple(base_acts[h].shape)
        blank = torch.zeros(shape[1:3] if len(shape) == 4 else shape[1:2], dtype=torch.bool)
        masks[h] = torch.stack([site_mask(s, shape) if h in s.hooks else blank for s in sites]).to(device)

    # The (site, example) rows that can change anything and the first position each changes.
    changed, start_pos = row_starts(hooks, masks, base_acts, src, skip_noops, tokens.shape[1])
    from_source = torch.zeros_like(changed)
    if suffix:  # a change after the answer position cannot reach the metric
        changed &= start_pos <= pos_idx[None]
        if all(k in src for k in kv_names):
            from_source = source_prefix_rows(sites, base_acts, src, start_pos, pos_idx, interventions, n) & changed

    dtype = torch.float64 if base_metric.dtype == torch.float64 else torch.float32
    out = base_metric.to(dtype).cpu().expand(len(sites), batch).clone()
    # each row's start block: the site's, or for source-prefix rows the block they start in
    layer_of = torch.tensor([s.layer for s in sites], device=device)[:, None].repeat(1, batch)
    for i, s in enumerate(sites):
        if bool(from_source[i].any()):
            layer_of[i, from_source[i]] = source_prefix_block(s)
    if not suffix:  # one group per start block: every row runs all positions
        start_pos = torch.zeros_like(start_pos)
    for g in groups(layer_of, changed, start_pos, from_source, max_rows):
        s_rows, e_rows = g.sites, g.examples
        patches = [
            Patch(h, value=src[h].to(device)[e_rows], where=masks[h][s_rows])
            for h in hooks
            if bool(masks[h][s_rows].any())
        ]
        pieces = [*(iv.take(e_rows) for iv in interventions), *patches]
        resid = start_store[f"blocks.{g.layer}.hook_resid_pre"][e_rows]
        if not suffix:
            logits = run_with_interventions(bridge, resid, pieces, start_at_layer=g.layer, answer_pos=pos_idx[e_rows])
        else:
            cached = src if g.from_source else kv
            keys, values = (
                {j: cached[f"blocks.{j}.attn.hook_{kind}"][e_rows, : g.pos].to(device) for j in range(g.layer, n)}
                for kind in ("k", "v")
            )
            at = None if g.from_source else resume_at.get(g.layer)
            resume = (
                {name: resume_store[f"blocks.{g.layer}.{name}"][e_rows] for name in RESUME_READS[at]} if at else None
            )
            logits = run_suffix(
                bridge,
                resid,
                keys,
                values,
                pieces,
                start_layer=g.layer,
                start_pos=g.pos,
                answer_pos=pos_idx[e_rows],
                resume_at=at,
                resume=resume,
            )
        out[s_rows.cpu(), e_rows.cpu()] = metric(logits, e_rows).to(dtype).cpu()
    return out, base_metric


def activation_patch(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    source: SourceLike,
    metric: Metric,
    family_name: str = "resid_pre",
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | Literal["all"] | None = None,
    window: int = 1,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    interventions: Sequence[Intervention] = (),
    per_example: bool = False,
    max_rows: int = 2048,
    skip_noops: bool = True,
    reuse_kv: bool = True,
) -> NodeMap:
    """Patch ``source`` into the run on ``tokens`` at every layer x position (x head) of a family.

    Returns the mean metric over examples, ``layer pos`` (``layer pos head_index`` for the
    per-head families ``z`` and ``result``), with a trailing ``batch`` axis if
    ``per_example``. ``positions="all"`` patches every position at once: the ``pos`` axis
    then has size 1. ``window`` patches ``window`` consecutive layers around each layer at once
    (ROME's windowed restoration). ``source`` is a token tensor paired row by row with
    ``tokens``, or a cache (TransformerLens ``ActivationCache`` or a dict) of such a run.

    Equals TransformerLens 4's ``get_act_patch_resid_pre(bridge, tokens, source_cache,
    tl_metric(metric, answer_pos), reduce="mean")`` (and ``_resid_mid``, ``_attn_out``,
    ``_mlp_out``, ``_attn_head_out_by_pos`` for ``z``, ``_attn_head_out_all_pos`` for ``z``
    with ``positions="all"``), computed with far fewer forwards.
    """
    tokens = check_tokens(bridge, tokens)
    sites, layer_list, pos_list, n_heads = family_sites(
        bridge, family_name, tokens.shape[1], layers=layers, positions=positions, window=window
    )
    values, _ = patch_sites(
        bridge,
        tokens,
        source,
        sites,
        metric,
        answer_pos=answer_pos,
        interventions=interventions,
        max_rows=max_rows,
        skip_noops=skip_noops,
        reuse_kv=reuse_kv,
    )
    shape = (len(layer_list), len(pos_list)) + ((n_heads,) if n_heads else ()) + (tokens.shape[0],)
    values = values.reshape(shape)
    return values if per_example else values.mean(-1)


__all__ = [
    "METRICS",
    "InterventionError",
    "Metric",
    "NodeMap",
    "SourceLike",
    "activation_patch",
    "answer_prob",
    "answer_rank",
    "baseline_metric",
    "logit_diff",
    "named_metric",
    "patch_sites",
    "run_metric",
    "source_cache",
    "tl_metric",
    "top1",
    "top1_change",
]
