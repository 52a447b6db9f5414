"""Feature dashboards: what one dictionary feature responds to and what it writes, as plain data.

A dashboard (in the style of SAE-dashboard and Neuronpedia) says, for one feature of a
:class:`~interp.features.SparseDictionary`, over the prompts of a dataset (its activations there:
:mod:`interp.features.encoded`):

* **top activations**: the prompts (and positions) where it is largest, with its
  activation at every read position of each prompt, tokens spelled by the dataset's vocabulary;
* **frequency** and an **activation histogram** (of its non-zero activations);
* **logits**: the tokens its decoder direction promotes and suppresses directly, read
  through the unembedding (:mod:`interp.features.logit_effects`);
* **ground truth** (knowledge-graph tasks): among the rows where it is active, the task
  variable (the schema's lens targets: ``bridge``, ``h``, ``r1``, ``r2``, ``answer`` ...)
  whose most common value it fires for most precisely. ``precision`` is the share of its
  active rows with that value; ``recall`` is the share of rows holding that value, at the
  positions where the feature fires for it, on which the feature is active
  (:mod:`interp.features.ground_truth`).

    data = dashboard_data(sae, run.model, run.dataset, n=8, select="aligned")
    data.features[0].top_examples[0].tokens, data.features[0].best_match
    # circuits.views.feature_dashboard.dashboard_figure(data) renders it
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.data import KGDataset
from interp.features.config import FeatureError
from interp.features.dictionary import SparseDictionary
from interp.features.encoded import FeatureActivations, feature_activations
from interp.features.ground_truth import VariableMatch, variable_matches
from interp.features.logit_effects import feature_logits
from interp.models.protocol import HookedModel

Selection = Literal["aligned", "frequency"]


# ------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class TopExample:
    """One prompt where a feature is large: its tokens, the feature at each read position, the largest."""

    tokens: tuple[str, ...]
    answer: str
    activations: tuple[float | None, ...]
    """Per prompt token; None where the dictionary does not read that position."""
    position: int
    activation: float


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
        """The feature's best precision match with a task variable, None without one."""
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


# ------------------------------------------------------------------------------ dashboards
def select_features(
    fa: FeatureActivations, matches: list[list[VariableMatch]] | None, n: int, by: Selection = "aligned"
) -> list[int]:
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
    fa: FeatureActivations,
    feature: int,
    *,
    logits: Float[Tensor, " d_vocab"] | None,
    vocab_tokens: Sequence[str],
    matches: list[VariableMatch],
    n_examples: int = 8,
    n_logits: int = 8,
    bins: int = 24,
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
        acts = tuple(
            None if (i := int(table[e, p])) < 0 else per_row.get(i, 0.0) for p in range(int(batch.prompt_len[e]))
        )
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
        feature,
        int(sel.sum()) / max(fa.n_rows, 1),
        int(sel.sum()),
        top,
        float(vals.mean()) if vals.numel() else 0.0,
        tops,
        promoted,
        suppressed,
        [int(c) for c in hist.tolist()],
        [top * i / bins for i in range(bins + 1)],
        matches,
    )


def dashboard_data(
    sae: SparseDictionary,
    model: HookedModel,
    dataset: KGDataset,
    *,
    features: Sequence[int] | None = None,
    n: int = 12,
    select: Selection = "aligned",
    n_examples: int = 8,
    n_logits: int = 8,
    bins: int = 24,
    min_support: int = 5,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
    activations: FeatureActivations | None = None,
) -> Dashboard:
    """Dashboards of ``features`` (default: the ``n`` chosen by ``select``) over the dataset's prompts."""
    if n < 1 or n_examples < 1 or n_logits < 1 or bins < 1:
        raise FeatureError(
            f"n, n_examples, n_logits and bins must be at least 1 (got {n}, {n_examples}, {n_logits}, {bins})"
        )
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
    note = (
        (
            "decoder row written to the residual stream, final LayerNorm linearised (centred, divided by the mean "
            f"scale {fa.ln_scale:.3g}), times W_U; later layers ignored"
        )
        if logits is not None
        else f"no direct path from {sae.hook_name} to the unembedding"
    )
    table = fa.row_table()
    dashboards = [
        feature_dashboard(
            fa,
            f,
            logits=None if logits is None else logits[i],
            vocab_tokens=dataset.vocab.tokens,
            matches=matches[f],
            n_examples=n_examples,
            n_logits=n_logits,
            bins=bins,
            row_table=table,
        )
        for i, f in enumerate(chosen)
    ]
    return Dashboard(
        sae.hook_name, sae.d_sae, fa.n_rows, len(fa.examples), fa.position_names, fa.frequency(), dashboards, note, how
    )


__all__ = ["Dashboard", "FeatureDashboard", "TopExample", "dashboard_data", "feature_dashboard", "select_features"]
