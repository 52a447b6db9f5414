"""A dictionary's feature activations over a dataset's prompts: which features fire where, and how much.

:func:`feature_activations` runs the model over the prompts of the chosen splits, reads the
dictionary's hook at the chosen positions (by default the dictionary's own) and encodes it;
:class:`FeatureActivations` keeps only the non-zero activations, one ``(row, feature, value)``
triple each, with the record and position of every row and the mean final-LayerNorm scale
there (for the linearised logit effect, :mod:`interp.features.logit_effects`). The
dashboards (:mod:`interp.features.dashboard`) and the ground-truth matches
(:mod:`interp.features.ground_truth`) read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.data import KGDataset
from interp.data.records import Example
from interp.features.activations import CHUNK, PromptSet, check_site, flat, prompt_set
from interp.features.dictionary import SparseDictionary
from interp.intervene import as_bridge, cache_activations, check_vocab
from interp.models.protocol import HookedModel

SCALE_HOOK = "ln_final.hook_scale"


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
        """The number of activation rows: read (prompt, position) pairs."""
        return self.example.shape[0]

    def row_table(self) -> Int[Tensor, "batch pos"]:
        """The row of each (prompt, position), -1 where the dictionary does not read it."""
        table = torch.full(tuple(self.prompts.mask.shape), -1, dtype=torch.long)
        table[self.example, self.position] = torch.arange(self.n_rows)
        return table

    def frequency(self) -> Float[Tensor, " d_sae"]:
        """The fraction of rows on which each feature is active."""
        return torch.bincount(self.feature, minlength=self.d_sae).double() / max(self.n_rows, 1)


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
    examples = [
        by_prompt[tuple(dataset.vocab.decode(t[: int(n)].tolist()))] for t, n in zip(batch.tokens, batch.prompt_len)
    ]
    scale = float(torch.cat(scales).mean()) if scales else 1.0
    return FeatureActivations(
        sae.hook_name,
        sae.d_sae,
        prompts,
        examples,
        example,
        position,
        torch.cat(rows).cpu(),
        torch.cat(feats).cpu(),
        torch.cat(vals).float().cpu(),
        scale,
        position_names(dataset, prompts.tokens.shape[1]),
    )


__all__ = ["SCALE_HOOK", "FeatureActivations", "feature_activations", "position_names"]
