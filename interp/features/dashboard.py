"""Feature dashboards: what one dictionary feature responds to and what it writes, as plain data.

A dashboard (in the style of SAE-dashboard and Neuronpedia) says, for one feature of a
:class:`~interp.features.SparseDictionary`, over the prompts of a dataset:

* **top activations**: the prompts (and positions) where it is largest, with its
  activation at every read position of each prompt, tokens spelled by the dataset's vocabulary;
* **frequency** and an **activation histogram** (of its non-zero activations);
* **logits**: the tokens its decoder direction promotes and suppresses directly, read
  through the unembedding (below);
* **ground truth** (knowledge-graph tasks): among the rows where it is active, the task
  variable (the schema's lens targets: ``bridge``, ``h``, ``r1``, ``r2``, ``answer`` ...)
  whose most common value it fires for most precisely. ``precision`` is the share of its
  active rows with that value; ``recall`` is the share of rows holding that value, at the
  positions where the feature fires for it, on which the feature is active.

The direct logit effect of a feature is its decoder row written into the residual stream
(through ``W_O`` for ``attn.hook_z``, ``W_out`` for ``mlp.hook_post``), pushed through the
final LayerNorm *linearised*: centred, divided by the mean final-LayerNorm scale over the
same prompts and positions (read at ``ln_final.hook_scale``), times the LayerNorm weight
(folded into ``W_U`` by the bridge's weight processing), then ``@ W_U`` without the bias.
This is the logit change per unit of feature activation if the normalisation scale stayed
fixed; it ignores every later layer.

    data = dashboard_data(sae, run.model, run.dataset, n=8, select="aligned")
    data.features[0].top_examples[0].tokens, data.features[0].best_match
    # circuits.feature_dashboard.dashboard_figure(data) renders it
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.data import KGDataset
from interp.data.records import Example
from interp.data.tasks import TaskSchemaError
from interp.features.activations import CHUNK, PromptSet, check_site, flat, prompt_set
from interp.features.config import FeatureError
from interp.features.dictionary import SparseDictionary
from interp.intervene import as_bridge, cache_activations, check_vocab
from interp.models.protocol import Bridge, HookedModel

SCALE_HOOK = "ln_final.hook_scale"
Selection = Literal["aligned", "frequency"]
_RESID = re.compile(r"^(blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out)"
                    r"|ln_final\.hook_in)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(attn\.hook_z|mlp\.hook_post|attn\.hook_result)$")


# ------------------------------------------------------------------------------ data
@dataclass
class FeatureActivations:
    """A dictionary's non-zero feature activations over a prompt set, one triple per (row, feature)."""

    hook_name: str
    d_sae: int
    prompts: PromptSet
    examples: list[Example]
    """The record of each prompt of ``prompts.batch``."""
    example: Int[Tensor, " row"]
    position: Int[Tensor, " row"]
    row: Int[Tensor, " nz"]
    feature: Int[Tensor, " nz"]
    value: Float[Tensor, " nz"]
    ln_scale: float
    """The mean final-LayerNorm scale at the rows (the linearisation's divisor)."""
    position_names: list[str]

    @property
    def n_rows(self) -> int:
        return self.example.shape[0]

    def row_table(self) -> Int[Tensor, "batch pos"]:
        """The row of each (prompt, position), -1 where the dictionary does not read it."""
        table = torch.full(tuple(self.prompts.mask.shape), -1, dtype=torch.long)
        table[self.example, self.position] = torch.arange(self.n_rows)
        return table

    def frequency(self) -> Float[Tensor, " d_sae"]:
        """The fraction of rows on which each feature is active."""
        return torch.bincount(self.feature, minlength=self.d_sae).double() / max(self.n_rows, 1)


@dataclass(frozen=True)
class TopExample:
    """One prompt where a feature is large: its tokens, the feature at each read position, the largest."""

    tokens: tuple[str, ...]
    answer: str
    activations: tuple[float | None, ...]
    """Per prompt token; None where the dictionary does not read that position."""
    position: int
    activation: float


@dataclass(frozen=True)
class VariableMatch:
    """How well a feature's firing picks out one value of one task variable."""

    variable: str
    value: str
    precision: float
    recall: float
    support: int
    """Active rows where the variable is defined."""

    @property
    def f1(self) -> float:
        s = self.precision + self.recall
        return 0.0 if s == 0 else 2 * self.precision * self.recall / s


@dataclass
class FeatureDashboard:
    """Everything a dashboard shows about one feature (see the module docstring)."""

    feature: int
    frequency: float
    n_active: int
    max_activation: float
    mean_activation: float
    top_examples: list[TopExample]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    histogram: list[int]
    bin_edges: list[float]
    matches: list[VariableMatch] = field(default_factory=list)

    @property
    def best_match(self) -> VariableMatch | None:
        return self.matches[0] if self.matches else None


@dataclass
class Dashboard:
    """Dashboards of the chosen features of one dictionary, with the dictionary-wide frequencies."""

    hook_name: str
    d_sae: int
    n_rows: int
    n_prompts: int
    position_names: list[str]
    frequencies: Float[Tensor, " d_sae"]
    features: list[FeatureDashboard]
    logit_note: str
    selection: str = ""


# -------------------------------------------------------------------------- collection
def _records(dataset: KGDataset, splits: Sequence[str] | None) -> dict[tuple[str, ...], Example]:
    from interp.data import SPLITS

    out: dict[tuple[str, ...], Example] = {}
    for split in SPLITS if splits is None else splits:
        for ex in dataset.examples(split):
            out.setdefault(tuple(ex.input_tokens), ex)
    return out


def position_names(dataset: KGDataset, width: int) -> list[str]:
    """The schema's position names when prompts have its length, else the indices."""
    names = list(dataset.schema.positions)
    return names if len(names) == width else [str(p) for p in range(width)]


@torch.no_grad()
def feature_activations(
    sae: SparseDictionary,
    model: HookedModel,
    dataset: KGDataset,
    *,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
) -> FeatureActivations:
    """Encode the activations at ``sae``'s hook over the prompts (default: the dictionary's own splits and positions)."""
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    check_site(bridge, sae.hook_name)
    splits = splits if splits is not None else sae.cfg.splits
    prompts = prompt_set(dataset, splits, positions if positions is not None else sae.cfg.positions)
    device = next(iter(bridge.parameters())).device
    tokens, mask = prompts.tokens.to(device), prompts.mask.to(device)
    hooks = [sae.hook_name, SCALE_HOOK] if SCALE_HOOK in bridge.hook_dict else [sae.hook_name]
    rows, feats, vals, scales = [], [], [], []
    offset = 0
    for start in range(0, tokens.shape[0], CHUNK):
        _, store = cache_activations(bridge, tokens[start : start + CHUNK], hooks)
        part = mask[start : start + CHUNK]
        x = flat(store[sae.hook_name])[part].to(sae.W_enc.dtype)  # (row, d_in)
        if SCALE_HOOK in store:
            scales.append(store[SCALE_HOOK][..., 0][part].double())
        r, f = (acts := sae.encode(x)).nonzero(as_tuple=True)
        rows.append(r + offset)
        feats.append(f)
        vals.append(acts[r, f])
        offset += x.shape[0]
    example, position = prompts.mask.nonzero(as_tuple=True)
    by_prompt, batch = _records(dataset, splits), prompts.batch
    examples = [by_prompt[tuple(dataset.vocab.decode(t[: int(n)].tolist()))] for t, n in zip(batch.tokens, batch.prompt_len)]
    scale = float(torch.cat(scales).mean()) if scales else 1.0
    return FeatureActivations(sae.hook_name, sae.d_sae, prompts, examples, example, position, torch.cat(rows).cpu(),
                              torch.cat(feats).cpu(), torch.cat(vals).float().cpu(), scale,
                              position_names(dataset, prompts.tokens.shape[1]))


# ------------------------------------------------------------------------------- logits
def residual_directions(
    bridge: Bridge, hook_name: str, W_dec: Float[Tensor, "feature d_in"]
) -> Float[Tensor, "feature d_model"] | None:
    """Decoder rows as directions written into the residual stream; None for hooks with no such map."""
    if _RESID.match(hook_name):
        return W_dec
    m = _BLOCK.match(hook_name)
    if m is None:
        return None
    block = bridge.blocks[int(m.group(1))]
    if m.group(2) == "attn.hook_z":
        W_O = block.attn.W_O.detach()  # (head, d_head, d_model)
        return torch.einsum("fhd,hdm->fm", W_dec.reshape(W_dec.shape[0], *W_O.shape[:2]).to(W_O.dtype), W_O)
    if m.group(2) == "mlp.hook_post":
        W_out = block.mlp.W_out.detach()
        return W_dec.to(W_out.dtype) @ W_out
    return W_dec.reshape(W_dec.shape[0], -1, int(bridge.cfg.d_model)).sum(1)  # attn.hook_result: head-summed


def feature_logits(
    sae: SparseDictionary, model: HookedModel, features: Sequence[int], ln_scale: float = 1.0
) -> Float[Tensor, "feature d_vocab"] | None:
    """The direct logit effect per unit activation of each of ``features`` (see the module docstring)."""
    bridge = as_bridge(model)
    W_U = bridge.W_U.detach()
    rows = sae.W_dec.detach()[list(features)]
    dirs = residual_directions(bridge, sae.hook_name, rows)
    if dirs is None or dirs.shape[-1] != W_U.shape[0]:
        return None
    dirs = dirs.to(W_U.dtype)
    centred = dirs - dirs.mean(-1, keepdim=True)
    w = getattr(bridge.ln_final, "w", None)
    if isinstance(w, Tensor) and w.shape == (W_U.shape[0],):
        centred = centred * w.detach().to(W_U.dtype)
    return (centred / ln_scale) @ W_U


# --------------------------------------------------------------------------- ground truth
def variable_values(dataset: KGDataset, examples: Sequence[Example]) -> dict[str, Int[Tensor, " batch"]]:
    """Per task variable (the schema's lens targets), the token id it has in each prompt (-1: undefined)."""
    schema = dataset.schema
    out = {}
    for name in schema.lens_targets:
        ids = []
        for ex in examples:
            try:
                ids.append(dataset.vocab.id(schema.target_token(ex, name)) if schema.is_prompt(ex) else -1)
            except TaskSchemaError:
                ids.append(-1)
        out[name] = torch.tensor(ids, dtype=torch.long)
    return out


def variable_matches(fa: FeatureActivations, dataset: KGDataset, *, min_support: int = 5) -> list[list[VariableMatch]]:
    """Per feature, one :class:`VariableMatch` per task variable (its modal value), best precision first.

    Features active on fewer than ``min_support`` rows where a variable is defined get no match for it.
    """
    n_active = torch.bincount(fa.feature, minlength=fa.d_sae)
    V, P = len(dataset.vocab), len(fa.position_names)
    out: list[list[VariableMatch]] = [[] for _ in range(fa.d_sae)]
    for name, per_prompt in variable_values(dataset, fa.examples).items():
        row_val = per_prompt[fa.example]  # (row,)
        nz_val = row_val[fa.row]
        keep = nz_val >= 0
        f, v, p = fa.feature[keep], nz_val[keep], fa.position[fa.row[keep]]
        counts = torch.bincount((f * V + v) * P + p, minlength=fa.d_sae * V * P).view(fa.d_sae, V, P)
        defined = torch.bincount(f, minlength=fa.d_sae)
        per_value = counts.sum(-1)  # (d_sae, V)
        best, mode = per_value.max(-1)
        ok = row_val >= 0
        totals = torch.bincount(row_val[ok] * P + fa.position[ok], minlength=V * P).view(V, P)
        used = counts[torch.arange(fa.d_sae), mode] > 0  # (d_sae, P): positions where it fires for the mode
        denom = (totals[mode] * used).sum(-1)
        for i in torch.nonzero(defined >= min_support).flatten().tolist():
            out[i].append(VariableMatch(name, dataset.vocab.tokens[int(mode[i])], float(best[i]) / int(n_active[i]),
                                        float(best[i]) / max(int(denom[i]), 1), int(defined[i])))
    for m in out:
        m.sort(key=lambda x: (-x.precision, -x.recall))
    return out


# ------------------------------------------------------------------------------ dashboards
def select_features(fa: FeatureActivations, matches: list[list[VariableMatch]] | None, n: int,
                    by: Selection = "aligned") -> list[int]:
    """The ``n`` most frequent features, or the ``n`` best aligned with a task variable (F1 of the best
    precision match; then frequency). Dead features are never chosen."""
    freq = fa.frequency()
    alive = [i for i in range(fa.d_sae) if freq[i] > 0]
    if by == "frequency" or matches is None:
        return sorted(alive, key=lambda i: -float(freq[i]))[:n]
    if by != "aligned":
        raise FeatureError(f"select = {by!r} is not allowed; choose aligned or frequency")
    return sorted(alive, key=lambda i: (-(matches[i][0].f1 if matches[i] else 0.0), -float(freq[i])))[:n]


def feature_dashboard(
    fa: FeatureActivations, feature: int, *, logits: Float[Tensor, " d_vocab"] | None, vocab_tokens: Sequence[str],
    matches: list[VariableMatch], n_examples: int = 8, n_logits: int = 8, bins: int = 24,
    row_table: Int[Tensor, "batch pos"] | None = None,
) -> FeatureDashboard:
    """The dashboard of one feature from its activations, its logit row and its ground-truth matches."""
    sel = fa.feature == feature
    rows, vals = fa.row[sel], fa.value[sel]
    order = vals.argsort(descending=True)
    per_row = dict(zip(rows.tolist(), vals.tolist()))
    table = fa.row_table() if row_table is None else row_table
    batch = fa.prompts.batch
    tops: list[TopExample] = []
    seen: set[int] = set()
    for j in order.tolist():
        r = int(rows[j])
        e = int(fa.example[r])
        if e in seen:
            continue
        seen.add(e)
        ex = fa.examples[e]
        acts = tuple(None if (i := int(table[e, p])) < 0 else per_row.get(i, 0.0)
                     for p in range(int(batch.prompt_len[e])))
        tops.append(TopExample(tuple(ex.input_tokens), ex.answer, acts, int(fa.position[r]), float(vals[j])))
        if len(tops) == n_examples:
            break
    promoted: list[tuple[str, float]] = []
    suppressed: list[tuple[str, float]] = []
    if logits is not None:
        k = min(n_logits, logits.shape[0])
        up, down = logits.topk(k), (-logits).topk(k)
        promoted = [(vocab_tokens[i], float(v)) for v, i in zip(up.values, up.indices)]
        suppressed = [(vocab_tokens[i], -float(v)) for v, i in zip(down.values, down.indices)]
    top = float(vals.max()) if vals.numel() else 0.0
    hist = torch.histc(vals.double(), bins=bins, min=0.0, max=top) if vals.numel() and top > 0 else torch.zeros(bins)
    return FeatureDashboard(
        feature, int(sel.sum()) / max(fa.n_rows, 1), int(sel.sum()), top,
        float(vals.mean()) if vals.numel() else 0.0, tops, promoted, suppressed,
        [int(c) for c in hist.tolist()], [top * i / bins for i in range(bins + 1)], matches,
    )


def dashboard_data(
    sae: SparseDictionary,
    model: HookedModel,
    dataset: KGDataset,
    *,
    features: Sequence[int] | None = None,
    n: int = 12,
    select: Selection = "aligned",
    n_examples: int = 8, n_logits: int = 8, bins: int = 24, min_support: int = 5,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
    activations: FeatureActivations | None = None,
) -> Dashboard:
    """Dashboards of ``features`` (default: the ``n`` chosen by ``select``) over the dataset's prompts."""
    if n < 1 or n_examples < 1 or n_logits < 1 or bins < 1:
        raise FeatureError(f"n, n_examples, n_logits and bins must be at least 1 "
                           f"(got {n}, {n_examples}, {n_logits}, {bins})")
    fa = activations or feature_activations(sae, model, dataset, splits=splits, positions=positions)
    matches = variable_matches(fa, dataset, min_support=min_support)
    if features is None:
        chosen = select_features(fa, matches, n, select)
        how = f"the {len(chosen)} {'best aligned with a task variable' if select == 'aligned' else 'most frequent'}"
    else:
        chosen = [int(f) for f in features]
        bad = [f for f in chosen if not 0 <= f < sae.d_sae]
        if bad:
            raise FeatureError(f"features {bad} are out of range; the dictionary has features 0..{sae.d_sae - 1}")
        how = "chosen features"
    logits = feature_logits(sae, model, chosen, fa.ln_scale) if chosen else None
    note = ("decoder row written to the residual stream, final LayerNorm linearised (centred, divided by the mean "
            f"scale {fa.ln_scale:.3g}), times W_U; later layers ignored") if logits is not None else \
        f"no direct path from {sae.hook_name} to the unembedding"
    table = fa.row_table()
    dashboards = [
        feature_dashboard(fa, f, logits=None if logits is None else logits[i], vocab_tokens=dataset.vocab.tokens,
                          matches=matches[f], n_examples=n_examples, n_logits=n_logits, bins=bins, row_table=table)
        for i, f in enumerate(chosen)
    ]
    return Dashboard(sae.hook_name, sae.d_sae, fa.n_rows, len(fa.examples), fa.position_names, fa.frequency(),
                     dashboards, note, how)


__all__ = [
    "Dashboard", "FeatureActivations", "FeatureDashboard", "TopExample", "VariableMatch", "dashboard_data",
    "feature_activations", "feature_dashboard", "feature_logits", "position_names", "residual_directions",
    "select_features", "variable_matches", "variable_values",
]
