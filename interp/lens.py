"""Logit lens: read a token off the residual stream at every layer and position.

The residual stream after ``l`` blocks (``l = 0``: the embeddings; ``l = n_layers``: the
final residual) is pushed through the model's own final LayerNorm and unembedding as if
the model stopped there (nostalgebraist 2020). For a chosen token per example (the bridge
entity, the second relation, the answer) we report its *rank* among all tokens (0 = top-1;
ties count in the token's favour), *reciprocal rank* ``1 / (rank + 1)`` and *probability*.
Averaging the reciprocal rank over examples gives the MRR curves of Wang et al. (2024):
in a grokked composition model the bridge entity becomes decodable at the ``r1`` position
in the middle layers, and the relation ``r2`` stays decodable at the ``r2`` position up to
the layer where the second hop starts.

The ``layer`` axis therefore has ``n_layers + 1`` entries: the residual after ``l`` blocks
is ``blocks.l.hook_resid_pre`` for ``l < n_layers`` and ``blocks.{n-1}.hook_resid_post``
for ``l = n_layers``; the lens at ``l = n_layers`` is exactly the model's output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.data import SCHEMAS, Example, KGDataset, TaskSchemaError, Vocab, task_schema
from interp.errors import CheckpointError
from interp.intervene import (
    Intervention,
    InterventionError,
    ShapeMismatchError,
    as_bridge,
    cache_activations,
    check_in_vocab,
    check_position,
    check_tokens,
    check_vocab,
    n_layers,
)
from interp.models import Bridge, HookedModel
from interp.runs import iter_checkpoints


def residual_hooks(bridge: Bridge) -> list[str]:
    """Hook names of the ``n_layers + 1`` residual states, after 0 .. n_layers blocks."""
    n = n_layers(bridge)
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]


@torch.no_grad()
def lens_logits(
    bridge: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    *,
    interventions: Sequence[Intervention] = (),
) -> Float[Tensor, "batch layer pos d_vocab"]:
    """The logit lens itself: final LayerNorm and unembedding of the residual after each block."""
    bridge = as_bridge(bridge)
    tokens = check_tokens(bridge, tokens)
    hooks = residual_hooks(bridge)
    _, states = cache_activations(bridge, tokens, hooks, interventions)
    return torch.stack([_unembed(bridge, states[h]) for h in hooks], dim=1)


def _unembed(bridge: Bridge, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """The model's own final LayerNorm and unembedding, applied to any residual."""
    return bridge.unembed(bridge.ln_final(resid))


@dataclass
class LensResult:
    """The logit lens of one chosen token per example, at every layer and position."""

    target: str
    token: Int[Tensor, " batch"]
    rank: Int[Tensor, "batch layer pos"]
    rr: Float[Tensor, "batch layer pos"]
    prob: Float[Tensor, "batch layer pos"]
    positions: list[int]
    vocab: Vocab | None = None

    @property
    def mrr(self) -> Float[Tensor, "layer pos"]:
        """Mean reciprocal rank over examples."""
        return self.rr.mean(0)

    @property
    def top1(self) -> Float[Tensor, "layer pos"]:
        """Fraction of examples where the token is top-1."""
        return (self.rank == 0).float().mean(0)

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy rows: example, layer, pos, target, token, rank, rr, prob."""
        batch, n_layer, n_pos = self.rank.shape
        ex, layer, pos = torch.meshgrid(torch.arange(batch), torch.arange(n_layer), torch.arange(n_pos), indexing="ij")
        ids = self.token.cpu()[ex.flatten()]
        tokens = self.vocab.decode(ids.tolist()) if self.vocab is not None else ids.tolist()
        return pd.DataFrame(
            {
                "example": ex.flatten().numpy(),
                "layer": layer.flatten().numpy(),
                "pos": torch.tensor(self.positions)[pos.flatten()].numpy(),
                "target": self.target,
                "token": tokens,
                "rank": self.rank.flatten().cpu().numpy(),
                "rr": self.rr.flatten().cpu().numpy(),
                "prob": self.prob.flatten().cpu().numpy(),
            }
        )


def _token_ids(bridge: Bridge, ids: Tensor | int | Sequence[int], batch: int, name: str) -> Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.ndim == 0:  # one token for every example
        ids = ids.expand(batch).clone()
    if ids.shape != (batch,):
        raise ShapeMismatchError(f"{name} needs one token id per example ({batch}); got shape {tuple(ids.shape)}")
    check_in_vocab(bridge, ids, name)
    return ids


@torch.no_grad()
def logit_lens(
    bridge: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, " batch"] | Mapping[str, Int[Tensor, " batch"] | int],
    *,
    positions: Sequence[int] | None = None,
    interventions: Sequence[Intervention] = (),
    vocab: Vocab | None = None,
) -> LensResult | dict[str, LensResult]:
    """Rank, reciprocal rank and probability of each target token at every layer x position.

    ``targets`` is one token id per example (a ``LensResult`` named ``"target"``) or a
    mapping name -> ids (a dict of ``LensResult``). ``positions`` restricts the ``pos`` axis.
    ``interventions`` are applied during the forward (e.g. to lens a patched run).
    """
    bridge = as_bridge(bridge)
    tokens = check_tokens(bridge, tokens)
    batch, n_pos = tokens.shape
    pos = list(range(n_pos)) if positions is None else [check_position(int(p), n_pos) for p in positions]
    single = not isinstance(targets, Mapping)
    named = {"target": targets} if single else dict(targets)
    ids = {
        name: _token_ids(bridge, t, batch, "targets" if single else f"targets[{name!r}]").to(tokens.device)
        for name, t in named.items()
    }

    hooks = residual_hooks(bridge)
    _, states = cache_activations(bridge, tokens, hooks, interventions)
    out = {name: {"rank": [], "rr": [], "prob": []} for name in ids}
    for hook in hooks:
        logits = _unembed(bridge, states[hook][:, pos])  # one layer at a time: batch pos d_vocab
        logprobs = logits.float().log_softmax(-1)
        for name, tid in ids.items():
            index = tid[:, None, None].expand(batch, len(pos), 1)
            own = logits.gather(-1, index)
            rank = (logits > own).sum(-1)
            out[name]["rank"].append(rank)
            out[name]["rr"].append(1.0 / (rank.float() + 1.0))
            out[name]["prob"].append(logprobs.gather(-1, index)[..., 0].exp())
    results = {
        name: LensResult(
            target=name,
            token=ids[name],
            rank=torch.stack(v["rank"], dim=1),
            rr=torch.stack(v["rr"], dim=1),
            prob=torch.stack(v["prob"], dim=1),
            positions=pos,
            vocab=vocab,
        )
        for name, v in out.items()
    }
    return results["target"] if single else results


# ------------------------------------------------------------------ dataset targets
TARGETS = {name: cls().lens_targets for name, cls in SCHEMAS.items()}
"""Token names :func:`example_targets` understands, per task schema (``task_schema(ds).lens_targets``)."""


def example_targets(dataset: KGDataset, examples: Sequence[Example], which: str) -> Int[Tensor, " batch"]:
    """Token ids of ``which`` per example, as the dataset's task schema reads them: ``answer``; composition
    ``h``, ``r1``.., ``bridge`` (the first bridge entity), ``bridge2``..; comparison ``attr``, ``e1``, ``e2``,
    ``v1``, ``v2`` (the two attribute values)."""
    try:
        schema = task_schema(dataset)
        return torch.tensor([dataset.vocab.id(schema.target_token(ex, which)) for ex in examples], dtype=torch.long)
    except TaskSchemaError as err:
        raise InterventionError(str(err)) from None


def dataset_lens(
    model: HookedModel,
    dataset: KGDataset,
    targets: Iterable[str] | str | None = None,
    *,
    split: str = "train_inferred",
    n: int | None = 300,
    positions: Sequence[int] | None = None,
) -> dict[str, LensResult]:
    """The logit lens of named targets on the first ``n`` examples of a split (the paper: 300).

    ``targets`` defaults to the task's report targets (``bridge, r2, answer``; ``v1, v2, answer``).
    """
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    examples = dataset.examples(split)[:n] if n is not None else dataset.examples(split)
    if not examples:
        raise InterventionError(f"split {split!r} has no examples")
    if len({len(ex.input_tokens) for ex in examples}) > 1:
        raise InterventionError(
            f"split {split!r} mixes prompt lengths; pass a split of inferred facts (train_inferred)"
        )
    if targets is None:
        try:
            targets = task_schema(dataset).report_targets
        except TaskSchemaError as err:
            raise InterventionError(str(err)) from None
    names = [targets] if isinstance(targets, str) else list(targets)
    device = bridge.cfg.device
    tokens = torch.tensor([dataset.vocab.encode(ex.input_tokens) for ex in examples], dtype=torch.long, device=device)
    ids = {name: example_targets(dataset, examples, name) for name in names}
    return logit_lens(bridge, tokens, ids, positions=positions, vocab=dataset.vocab)


def bridge_entity_lens(
    model: HookedModel, dataset: KGDataset, split: str = "train_inferred", n: int | None = 300
) -> LensResult:
    """The logit lens of each composition example's bridge entity (from its provenance)."""
    return dataset_lens(model, dataset, "bridge", split=split, n=n)["bridge"]


# ------------------------------------------------------------------- over a run
@dataclass
class CheckpointLens:
    """MRR of a target token per checkpoint, layer and position: the paper's MRR curves."""

    target: str
    steps: list[int]
    mrr: Float[Tensor, "step layer pos"]
    positions: list[int]

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy rows: step, layer, pos, target, mrr."""
        n_step, n_layer, n_pos = self.mrr.shape
        s, layer, pos = torch.meshgrid(torch.arange(n_step), torch.arange(n_layer), torch.arange(n_pos), indexing="ij")
        return pd.DataFrame(
            {
                "step": torch.tensor(self.steps)[s.flatten()].numpy(),
                "layer": layer.flatten().numpy(),
                "pos": torch.tensor(self.positions)[pos.flatten()].numpy(),
                "target": self.target,
                "mrr": self.mrr.flatten().cpu().numpy(),
            }
        )


def lens_over_checkpoints(
    run_dir: str | Path,
    target: str = "bridge",
    *,
    split: str = "train_inferred",
    n: int | None = 300,
    positions: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> CheckpointLens:
    """The MRR of ``target`` at every layer x position for every checkpoint of a run, oldest first."""
    steps, curves, pos = [], [], None
    for run in iter_checkpoints(run_dir, device=device):
        result = dataset_lens(run.model, run.dataset, target, split=split, n=n, positions=positions)[target]
        steps.append(run.step)
        curves.append(result.mrr.cpu())
        pos = result.positions
        if on_checkpoint is not None:
            on_checkpoint(run.step)
    if not steps:
        raise CheckpointError(f"{run_dir} holds no checkpoints (expected {run_dir}/checkpoints/step_*/state.json)")
    return CheckpointLens(target=target, steps=steps, mrr=torch.stack(curves), positions=pos or [])
