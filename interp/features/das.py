"""Distributed alignment search (DAS): a learned subspace of a state that carries one causal variable.

Geiger et al. (2023) look for a variable (here the bridge entity ``b`` at ``S[l, r1]``, the
residual stream after ``l`` blocks at the ``r1`` position) in a *rotated* basis of a state:
an orthogonal matrix ``W`` (``d_model d_model``, columns a basis) and a size ``d``. The
interchange intervention replaces the first ``d`` rotated coordinates of a base run's state
by those of a source run, keeping the rest::

    x' = x_base + (x_source - x_base) @ W[:, :d] @ W[:, :d].T        # (batch, d_model)

If the subspace carries ``b``, pasting it from a source whose bridge is ``b'`` makes the
model answer ``r2(b')``; the rate at which it does, on pairs held out from training, is the
interchange-intervention accuracy (IIA). ``W`` is trained by gradient descent on the
cross-entropy of that expected answer, through the frozen model
(``torch.nn.utils.parametrizations.orthogonal`` keeps it orthogonal). With ``d = d_model`` the
edit is the full-state interchange (``W W^T = I``); with ``d = 0`` it is no edit at all.
Boundless DAS (Wu et al. 2023) learns the size instead: a soft mask ``m`` in ``[0, 1]`` per
rotated coordinate, ``x' = x_base + ((x_source - x_base) @ W * m) @ W.T``, with a penalty on
``sum(m)`` and a sigmoid temperature annealed towards a hard mask.

Pairs come from the counterfactual machinery (:func:`das_pairs`): the schema's swaps that set
the intermediate (``h`` and ``r1`` for the bridge; ``e1`` for ``v1``), so the source's
intermediate differs and its answer is what the interchange should produce. The patched
forward runs on the engine from the cached residual (``start_at_layer=l``)::

    from interp.features.das import das_pairs, train_das, interchange_accuracy

    train = das_pairs(run.dataset, "bridge", "train", n=2000)
    held_out = das_pairs(run.dataset, "bridge", "test_id")
    fit = train_das(run.model, train, layer=2, position="r1", d=8)
    iia = interchange_accuracy(run.model, fit.das, held_out, layer=2, position="r1")

Curves over ``d``, boundless DAS and checkpoints: :mod:`interp.features.das_runs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal

from interp.counterfactuals import CounterfactualError, counterfactual_batch
from interp.data import KGDataset, TaskSchemaError
from interp.features.config import EmptyPromptSetError, FeatureError
from interp.intervene import as_bridge, cache_activations, check_layer, check_position, n_layers, run_with_interventions
from interp.lens import residual_hooks
from interp.models.protocol import Bridge, HookedModel
from interp.pairs import PromptPairs, concat_pairs


# ------------------------------------------------------------------------------- pairs
def das_pairs(
    dataset: KGDataset,
    target: str = "bridge",
    split: str = "train",
    *,
    n: int | None = None,
    seed: int = 0,
    id_only: bool = True,
) -> PromptPairs:
    """Counterfactual pairs whose intermediate ``target`` differs: one batch per swap that sets it, concatenated.

    Clean prompts are the split's inferred prompts (the first ``n`` per swap); the corrupt
    prompt is the source, ``corrupt_answer`` the answer its intermediate implies.
    """
    try:
        schema = dataset.schema
        where = schema.intermediate(target)
    except TaskSchemaError as err:
        raise FeatureError(str(err)) from None
    examples = [ex for ex in dataset.examples(split) if schema.is_prompt(ex)]
    if not examples:
        raise EmptyPromptSetError(f"split {split!r} has no inferred {schema.label} prompts; choose another split")
    parts = []
    for swap in where.swaps:
        try:
            parts.append(counterfactual_batch(dataset, examples, swap, n=n, seed=seed, id_only=id_only))
        except CounterfactualError:
            continue
    if not parts:
        raise EmptyPromptSetError(
            f"no prompt of split {split!r} has a counterfactual for {target}; choose another split"
        )
    return concat_pairs(parts, name=f"{dataset.task} ({target} interchange, {split})")


# ---------------------------------------------------------------------------- the module
class DAS(nn.Module):
    """An orthogonal rotation of a ``d_model``-wide state and a subspace: the first ``d`` coordinates,
    or (``d=None``, boundless) a learned soft mask over all of them."""

    def __init__(
        self,
        d_model: int,
        d: int | None,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= d_model):
            raise FeatureError(f"subspace size d = {d!r} is out of range; allowed: 0..{d_model} (d_model)")
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(d_model, d_model, generator=gen, dtype=torch.float64))
        lin = nn.Linear(d_model, d_model, bias=False, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(q.to(dtype))
        self.rotation = orthogonal(lin)
        self.d = d
        self.temperature = temperature
        self.mask_logits = nn.Parameter(torch.zeros(d_model, dtype=dtype)) if d is None else None

    @property
    def d_model(self) -> int:
        """The width of the rotated residual stream."""
        return self.rotation.weight.shape[0]

    @property
    def weight(self) -> Float[Tensor, "d_model d_model"]:
        """The rotation ``W``: orthogonal, its columns the rotated basis."""
        return self.rotation.weight

    def mask(self) -> Float[Tensor, " d_model"]:
        """The weight of each rotated coordinate in the interchange: 1 for the first ``d``, else the soft mask."""
        if self.mask_logits is None:
            raw = self.rotation.parametrizations.weight.original
            return (torch.arange(raw.shape[0], device=raw.device) < self.d).to(raw.dtype)
        return torch.sigmoid(self.mask_logits / self.temperature)

    def size(self) -> int:
        """The subspace's size: ``d``, or the number of mask weights above one half."""
        return int(self.d) if self.mask_logits is None else int((self.mask() > 0.5).sum())

    def basis(self) -> Float[Tensor, "d_model sub"]:
        """The subspace's basis vectors (columns of ``W``; those with mask above one half when boundless)."""
        keep = self.mask() > 0.5
        return self.weight[:, keep]

    def coords(self, x: Float[Tensor, "*row d_model"]) -> Float[Tensor, "*row sub"]:
        """Coordinates of ``x`` in the subspace's basis."""
        return x @ self.basis()

    def forward(
        self, base: Float[Tensor, "*row d_model"], source: Float[Tensor, "*row d_model"], *, hard: bool = False
    ) -> Float[Tensor, "*row d_model"]:
        """``base`` with its subspace coordinates taken from ``source`` (``hard``: a boundless mask rounded)."""
        w = self.weight.to(base.dtype)
        if self.mask_logits is None:
            if self.d == 0:
                return base
            sub = w[:, : self.d]
            return base + ((source - base) @ sub) @ sub.T
        m = self.mask().to(base.dtype)
        if hard:
            m = (m > 0.5).to(base.dtype)
        return base + (((source - base) @ w) * m) @ w.T


# ------------------------------------------------------------------------- the forward
def state_position(dataset_or_positions: KGDataset | Sequence[str] | None, position: int | str, n_pos: int) -> int:
    """A prompt position index: an int, or a name read from the task schema (``"r1"``, ``"e1"``)."""
    if isinstance(position, str):
        try:
            if isinstance(dataset_or_positions, KGDataset):
                return dataset_or_positions.schema.position(position)
            names = list(dataset_or_positions or ())
            if position not in names:
                raise TaskSchemaError(f"unknown position {position!r}; choose one of {', '.join(names) or 'none'}")
            return names.index(position)
        except TaskSchemaError as err:
            raise FeatureError(str(err)) from None
    return check_position(position, n_pos)


def state_hook(bridge: Bridge, layer: int) -> str:
    """The hook of residual state ``S[layer]`` (after ``layer`` blocks, ``0 .. n_layers``)."""
    n = n_layers(bridge)
    check_layer(layer, n + 1, "state layer")
    return residual_hooks(bridge)[layer]


@torch.no_grad()
def residual_states(bridge: Bridge, tokens: Int[Tensor, "batch pos"], layer: int) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream ``S[layer]`` at every position."""
    hook = state_hook(bridge, layer)
    _, store = cache_activations(bridge, tokens, [hook])
    return store[hook]


def patched_logits(
    bridge: Bridge,
    base_resid: Float[Tensor, "batch pos d_model"],
    new_state: Float[Tensor, "batch d_model"],
    layer: int,
    position: int,
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the last position when ``S[layer, position]`` of the base run is ``new_state``.

    Runs the blocks from ``layer`` on, from the cached residual (the state depends only on
    the tokens up to it, so this equals patching it during a full forward).
    """
    resid = base_resid.clone()
    resid[:, position] = new_state.to(resid.dtype)
    answer_pos = torch.full((resid.shape[0],), resid.shape[1] - 1, dtype=torch.long, device=resid.device)
    return run_with_interventions(bridge, resid, start_at_layer=layer, answer_pos=answer_pos)


@dataclass
class _Prepared:
    base: Float[Tensor, "batch pos d_model"]
    source: Float[Tensor, "batch d_model"]
    expected: Int[Tensor, " batch"]
    position: int


def _prepare(bridge: Bridge, pairs: PromptPairs, layer: int, position: int | str) -> _Prepared:
    if len(pairs) == 0:
        raise EmptyPromptSetError("no prompt pairs; build them with das_pairs on a split with inferred prompts")
    pos = state_position(pairs.positions, position, pairs.n_pos)
    device = next(iter(bridge.parameters())).device
    base = residual_states(bridge, pairs.clean.to(device), layer)
    source = residual_states(bridge, pairs.corrupt.to(device), layer)[:, pos]
    return _Prepared(base, source, pairs.corrupt_answer.to(device), pos)


# ---------------------------------------------------------------------------- training
@dataclass
class DASResult:
    """A trained DAS: the module, where it acts, and its training curve."""

    das: DAS
    layer: int
    position: int
    hook: str
    losses: list[float] = field(default_factory=list)
    train_iia: float = float("nan")

    @property
    def size(self) -> int:
        """The size of the trained subspace (:meth:`DAS.size`)."""
        return self.das.size()


def train_das(
    model: HookedModel,
    pairs: PromptPairs,
    *,
    layer: int,
    position: int | str,
    d: int | None,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
    mask_penalty: float = 1e-2,
    temperature: tuple[float, float] = (1.0, 0.05),
) -> DASResult:
    """Learn a rotation (and, ``d=None``, a soft mask with penalty ``mask_penalty * sum(m)`` and a sigmoid
    temperature annealed geometrically from ``temperature[0]`` to ``[1]``) so that interchanging the subspace
    of ``S[layer, position]`` makes the model give ``pairs.corrupt_answer``."""
    bridge = as_bridge(model)
    data = _prepare(bridge, pairs, layer, position)
    dtype = data.base.dtype
    das = DAS(data.base.shape[-1], d, seed=seed, dtype=dtype, temperature=temperature[0]).to(data.base.device)
    result = DASResult(das, layer, data.position, state_hook(bridge, layer))
    if d == 0:
        result.train_iia = _accuracy(bridge, das, data, layer)
        return result
    params = [p for p in das.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = data.base.shape[0]
    for step in range(steps):
        if d is None:
            das.temperature = temperature[0] * (temperature[1] / temperature[0]) ** (step / max(steps - 1, 1))
        rows = torch.randperm(n, generator=gen)[: min(batch_size, n)].to(data.base.device)
        base = data.base[rows]
        new = das(base[:, data.position], data.source[rows])
        logits = patched_logits(bridge, base, new, layer, data.position)
        loss = F.cross_entropy(logits.float(), data.expected[rows])
        if d is None:
            loss = loss + mask_penalty * das.mask().sum()
        for p, g in zip(params, torch.autograd.grad(loss, params)):  # the model's weights get no gradient
            p.grad = g
        opt.step()
        result.losses.append(float(loss.detach()))
    das.requires_grad_(False)
    result.train_iia = _accuracy(bridge, das, data, layer)
    return result


@torch.no_grad()
def _accuracy(bridge: Bridge, das: DAS | None, data: _Prepared, layer: int, chunk: int = 2048) -> float:
    """IIA of ``das`` (None: the whole state interchanged) on prepared pairs."""
    correct = 0
    for start in range(0, data.base.shape[0], chunk):
        base = data.base[start : start + chunk]
        source = data.source[start : start + chunk]
        new = source if das is None else das(base[:, data.position], source, hard=True)
        logits = patched_logits(bridge, base, new, layer, data.position)
        correct += int((logits.argmax(-1) == data.expected[start : start + chunk]).sum())
    return correct / data.base.shape[0]


@torch.no_grad()
def interchange_accuracy(
    model: HookedModel, das: DAS | None, pairs: PromptPairs, *, layer: int, position: int | str
) -> float:
    """IIA: the fraction of pairs on which interchanging ``das``'s subspace (None: the whole state) from the
    source makes the model's top-1 answer the source's intermediate's answer."""
    bridge = as_bridge(model)
    data = _prepare(bridge, pairs, layer, position)
    if das is not None and das.d_model != data.base.shape[-1]:
        raise FeatureError(f"this DAS rotates {das.d_model}-wide states but S[{layer}] is {data.base.shape[-1]} wide")
    return _accuracy(bridge, das, data, layer)


def orthogonality_error(das: DAS) -> float:
    """``max |W^T W - I|``: how far the rotation is from orthogonal."""
    w = das.weight.detach()
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    err = float((w.T @ w - eye).abs().max())
    return err if math.isfinite(err) else float("inf")


__all__ = [
    "DAS",
    "DASResult",
    "das_pairs",
    "interchange_accuracy",
    "orthogonality_error",
    "patched_logits",
    "residual_states",
    "state_hook",
    "state_position",
    "train_das",
]
