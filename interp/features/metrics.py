"""How good a dictionary is: sparsity, reconstruction, and what the model does with the reconstruction.

On the rows of a prompt set (SAELens's metric names):

* ``l0``             mean number of active features per activation;
* ``fvu``            fraction of variance unexplained, ``sum |x - x̂|² / sum |x - mean(x)|²``
                     over all rows (``1 - fvu`` is SAELens's explained variance);
* ``dead_features``  features active on no row;
* ``loss_recovered`` with the reconstruction spliced into the forward in place of the
                     activation (at the dictionary's positions), how much of the answer's
                     cross-entropy that zero-ablating the activation loses comes back:
                     ``(loss_zero - loss_spliced) / (loss_zero - loss_clean)``;
* ``accuracy_recovered`` the same with exact-match answer accuracy (the trainer's metric).

Splicing is read-then-patch on the engine: :func:`~interp.intervene.cache_activations`
reads the activation, the dictionary reconstructs it, and :func:`~interp.intervene.run_with_interventions`
runs the model with ``Patch(hook, value=reconstruction, where=positions)``. The
reconstruction depends only on the activation at that hook, so this is exact. A perfect
reconstruction recovers exactly 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.data import KGDataset
from interp.features.activations import CHUNK, check_site, flat, prompt_set
from interp.features.dictionary import SparseDictionary
from interp.intervene import Patch, as_bridge, cache_activations, check_vocab, run_with_interventions, zero_ablation
from interp.models.protocol import Bridge, HookedModel

Reconstruct = Callable[[Tensor], Tensor]
"""Flattened activations (``... d_in``) to their reconstruction: a dictionary, or any map."""


@dataclass(frozen=True)
class DictionaryMetrics:
    """A dictionary's scores on a prompt set (see the module docstring)."""

    l0: float
    fvu: float
    mse: float
    dead_features: int
    n_rows: int
    n_prompts: int
    accuracy_clean: float
    accuracy_spliced: float
    accuracy_zero: float
    accuracy_recovered: float
    loss_clean: float
    loss_spliced: float
    loss_zero: float
    loss_recovered: float

    def as_dict(self) -> dict[str, float | int]:
        """The metrics as a plain dict."""
        return asdict(self)


def _recovered(clean: float, spliced: float, zero: float) -> float:
    """``(zero - spliced) / (zero - clean)``; NaN when zero-ablation changes nothing."""
    gap = zero - clean
    return float("nan") if gap == 0 else (zero - spliced) / gap


@torch.no_grad()
def reconstruction_metrics(sae: SparseDictionary, x: Float[Tensor, "row d_in"]) -> dict[str, float | int]:
    """``l0``, ``fvu``, ``mse`` (per row, summed over ``d_in``) and ``dead_features`` of ``sae`` on rows ``x``."""
    acts = sae.encode(x)  # (row, d_sae)
    err = (sae.decode(acts) - x).pow(2).sum(-1)
    total = (x - x.mean(0)).pow(2).sum(-1)
    active = acts > 0
    return {
        "l0": float(active.sum(-1).float().mean()),
        "fvu": float(err.sum() / total.sum().clamp_min(torch.finfo(x.dtype).tiny)),
        "mse": float(err.mean()),
        "dead_features": int((~active.any(0)).sum()),
    }


@torch.no_grad()
def splice_metrics(
    model: HookedModel,
    hook_name: str,
    reconstruct: Reconstruct,
    tokens: Int[Tensor, "batch pos"],
    answer_pos: Int[Tensor, " batch"],
    answer: Int[Tensor, " batch"],
    where: Bool[Tensor, "batch pos"] | None = None,
) -> dict[str, float]:
    """Answer accuracy and cross-entropy clean, with ``reconstruct`` spliced in at ``where``, and zero-ablated there.

    Returns ``accuracy_*`` / ``loss_*`` for ``clean``, ``spliced``, ``zero`` and the two
    ``*_recovered`` ratios, averaged over the prompts.
    """
    bridge = as_bridge(model)
    check_site(bridge, hook_name)
    sums = dict.fromkeys(("clean", "spliced", "zero"), (0.0, 0.0))
    for start in range(0, tokens.shape[0], CHUNK):
        part = slice(start, start + CHUNK)
        mask = None if where is None else where[part]
        for name, (correct, loss) in _splice_chunk(
            bridge, hook_name, reconstruct, tokens[part], answer_pos[part], answer[part], mask
        ).items():
            sums[name] = (sums[name][0] + correct, sums[name][1] + loss)
    return average_scores(sums, tokens.shape[0])


def answer_score(logits: Float[Tensor, "batch d_vocab"], answer: Int[Tensor, " batch"]) -> tuple[float, float]:
    """Summed correct answers (argmax) and summed cross-entropy of ``logits`` against ``answer``."""
    target = answer.to(logits.device)
    correct = float((logits.argmax(-1) == target).sum())
    loss = float(F.cross_entropy(logits.float(), target, reduction="sum"))
    return correct, loss


def average_scores(sums: Mapping[str, Sequence[float]], n: int) -> dict[str, float]:
    """``accuracy_*`` / ``loss_*`` per condition (``clean``, ``spliced``, ``zero``) from summed
    ``(correct, loss)`` over ``n`` prompts, and the two ``*_recovered`` ratios."""
    out = {f"accuracy_{k}": v[0] / n for k, v in sums.items()} | {f"loss_{k}": v[1] / n for k, v in sums.items()}
    out["accuracy_recovered"] = _recovered(out["accuracy_clean"], out["accuracy_spliced"], out["accuracy_zero"])
    out["loss_recovered"] = _recovered(out["loss_clean"], out["loss_spliced"], out["loss_zero"])
    return out


def _splice_chunk(
    bridge: Bridge,
    hook_name: str,
    reconstruct: Reconstruct,
    tokens: Int[Tensor, "batch pos"],
    answer_pos: Int[Tensor, " batch"],
    answer: Int[Tensor, " batch"],
    where: Bool[Tensor, "batch pos"] | None,
) -> dict[str, tuple[float, float]]:
    """Summed correct answers and summed cross-entropy per condition, for one chunk of prompts."""
    _, store = cache_activations(bridge, tokens, [hook_name])
    act = store[hook_name]  # (batch, pos, ...)
    recon = reconstruct(flat(act)).reshape(act.shape).to(act.dtype)
    conditions = {
        "clean": [],
        "spliced": [Patch(hook_name, value=recon, where=where)],
        "zero": [zero_ablation(hook_name, where=where)],
    }
    out = {}
    for name, interventions in conditions.items():
        logits = run_with_interventions(bridge, tokens, interventions, answer_pos=answer_pos)  # (batch, d_vocab)
        out[name] = answer_score(logits, answer)
    return out


@torch.no_grad()
def evaluate_dictionary(
    sae: SparseDictionary,
    model: HookedModel,
    dataset: KGDataset,
    *,
    splits: Sequence[str] | None = None,
    positions: Sequence[int | str] | None = None,
) -> DictionaryMetrics:
    """Score ``sae`` on ``model`` over the prompts of ``splits`` at ``positions`` (default: the dictionary's own).

    Reconstruction metrics are over the selected activations; the reconstruction is spliced
    in at exactly those positions for the accuracy and loss (the other positions are left
    as they are), and the answers are scored at ``answer_pos``.
    """
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    check_site(bridge, sae.hook_name)
    prompts = prompt_set(
        dataset,
        splits if splits is not None else sae.cfg.splits,
        positions if positions is not None else sae.cfg.positions,
    )
    device = next(iter(bridge.parameters())).device
    tokens = prompts.tokens.to(device)
    batch = prompts.batch.to(device)
    mask = prompts.mask.to(device)
    rows = []
    for start in range(0, tokens.shape[0], CHUNK):
        _, store = cache_activations(bridge, tokens[start : start + CHUNK], [sae.hook_name])
        rows.append(flat(store[sae.hook_name])[mask[start : start + CHUNK]])
    x = torch.cat(rows).to(sae.W_enc.dtype)
    recon = reconstruction_metrics(sae, x)
    spliced = splice_metrics(bridge, sae.hook_name, _as_reconstruct(sae), tokens, batch.answer_pos, batch.answer, mask)
    return DictionaryMetrics(**recon, n_rows=x.shape[0], n_prompts=tokens.shape[0], **spliced)  # type: ignore[arg-type]


def _as_reconstruct(sae: SparseDictionary) -> Reconstruct:
    def reconstruct(x: Tensor) -> Tensor:
        return sae(x.to(sae.W_enc.dtype))

    return reconstruct


__all__ = [
    "DictionaryMetrics",
    "Reconstruct",
    "answer_score",
    "average_scores",
    "evaluate_dictionary",
    "reconstruction_metrics",
    "splice_metrics",
]
