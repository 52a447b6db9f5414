"""Ground truth for dictionary features: which value of which task variable a feature fires for.

On a knowledge-graph task every prompt has known variables (the task schema's lens targets:
``bridge``, ``h``, ``r1``, ``r2``, ``answer`` ...). Among the rows where a feature is active,
:func:`variable_matches` finds, per variable, the most common value; ``precision`` is the share
of the feature's active rows with that value, ``recall`` the share of the rows holding that
value, at the positions where the feature fires for it, on which the feature is active.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import KGDataset
from interp.data.records import Example
from interp.data.tasks import TaskSchemaError
from interp.features.encoded import FeatureActivations


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
        """The harmonic mean of precision and recall (0 when both are 0)."""
        s = self.precision + self.recall
        return 0.0 if s == 0 else 2 * self.precision * self.recall / s


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
            out[i].append(
                VariableMatch(
                    name,
                    dataset.vocab.tokens[int(mode[i])],
                    float(best[i]) / int(n_active[i]),
                    float(best[i]) / max(int(denom[i]), 1),
                    int(defined[i]),
                )
            )
    for m in out:
        m.sort(key=lambda x: (-x.precision, -x.recall))
    return out


__all__ = ["VariableMatch", "variable_matches", "variable_values"]
