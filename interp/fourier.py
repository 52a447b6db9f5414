"""Fourier analysis of a model of modular arithmetic (Nanda et al. 2023, "Progress measures").

A one-layer transformer that groks ``a + b mod p`` embeds each number as waves
``cos(w_k a), sin(w_k a)`` (``w_k = 2 pi k / p``) for a few *key frequencies* k, multiplies
them in its MLP (trig identities give ``cos(w_k (a + b))``) and reads the answer ``c`` off
``cos(w_k (a + b - c))``. Everything here is a measurement of that algorithm on one model:

* :func:`fourier_basis` ``(p, p)``: the orthonormal real Fourier basis over Z_p (rows
  ``const, cos 1, sin 1, cos 2, ...``); :func:`frequency_norms` groups a transformed axis
  by frequency;
* :func:`neuron_frequencies`: each MLP neuron's activation over all ``p^2`` inputs, 2D
  Fourier-transformed; the fraction of its variance that one frequency explains (Nanda:
  84.6% of neurons above 0.85);
* :func:`key_frequencies`: the frequencies the single-frequency neurons use;
* :func:`fourier_measures`: the per-checkpoint numbers of :mod:`interp.progress`: the
  embedding's power in the key frequencies, the Gini coefficients of the Fourier norms of
  ``W_E`` and ``W_U W_out`` (sparse in frequency once the circuit forms), the share of
  single-frequency neurons, train / test loss and Nanda's *restricted loss* (logits
  projected onto ``const, cos/sin(w_k (a + b))`` for the key frequencies) and *excluded
  loss* (those directions removed, on the training pairs).

Axes: ``pair`` runs over all ``p^2`` inputs ``(a, b)``, ``a`` major; ``neuron`` over
``d_mlp``; logits are restricted to the ``p`` element tokens (the model's classes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.data.dataset import KGDataset
from interp.data.operations import MODULAR, OperationTable, apply, operator_token
from interp.errors import GrokscopeError
from interp.intervene.checks import as_bridge
from interp.models.protocol import HookedModel

SINGLE_FREQUENCY = 0.85
"""A neuron is single-frequency when one frequency explains more than this share of its variance (Nanda)."""
RESTRICTABLE = ("add", "sub")
"""Operations whose answer is a wave in ``a +- b``: restricted and excluded loss are defined for them."""


def fourier_basis(p: int, *, dtype: torch.dtype = torch.float64) -> tuple[Float[Tensor, "p p"], list[str]]:
    """The orthonormal real Fourier basis of functions on Z_p, one row per component, and the rows' names."""
    x = torch.arange(p, dtype=dtype)
    rows, names = [torch.ones(p, dtype=dtype)], ["const"]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        names.append(f"cos {k}")
        if 2 * k != p:  # for even p the last frequency has no sine
            rows.append(torch.sin(2 * math.pi * k * x / p))
            names.append(f"sin {k}")
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), names


def row_frequencies(p: int) -> Int[Tensor, " p"]:
    """The frequency of each row of :func:`fourier_basis` (0 for the constant)."""
    return torch.tensor([0] + [(i + 1) // 2 for i in range(1, p)])


def frequency_norms(coefficients: Float[Tensor, "p ..."]) -> Float[Tensor, " n_freq"]:
    """The norm of each frequency ``1 .. p // 2`` of Fourier coefficients along the first axis (cos and sin together)."""
    p = coefficients.shape[0]
    sq = coefficients.detach().reshape(p, -1).double().pow(2).sum(-1)
    freq = row_frequencies(p)
    return torch.zeros(p // 2 + 1, dtype=sq.dtype).index_add_(0, freq, sq)[1:].sqrt()


def gini(values: Tensor) -> float:
    """The Gini coefficient of non-negative ``values``: 0 when all are equal, near 1 when one holds everything."""
    x = values.double().flatten().sort().values
    n, total = x.numel(), x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    ranks = torch.arange(1, n + 1, dtype=x.dtype)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


@dataclass
class NeuronFrequencies:
    """Each neuron's dominant frequency and the share of its variance that frequency explains."""

    frequency: Int[Tensor, " neuron"]
    explained: Float[Tensor, " neuron"]

    @property
    def single(self) -> Tensor:
        """Which neurons are single-frequency (explained > :data:`SINGLE_FREQUENCY`)."""
        return self.explained > SINGLE_FREQUENCY


def neuron_frequencies(acts: Float[Tensor, "pair neuron"], p: int) -> NeuronFrequencies:
    """Nanda's clustering: 2D-transform each neuron's activation over ``(a, b)``; the share of its variance
    (constant removed) in the components whose two frequencies are each 0 or k, for the best k."""
    basis, _ = fourier_basis(p)
    grid = acts.detach().double().reshape(p, p, -1)
    coef = torch.einsum("ia,abn,jb->ijn", basis, grid, basis)  # (p, p, neuron)
    coef[0, 0] = 0
    total = coef.pow(2).sum((0, 1))
    freq = row_frequencies(p)
    shares = []
    for k in range(1, p // 2 + 1):
        rows = (freq == 0) | (freq == k)
        shares.append(coef[rows][:, rows].pow(2).sum((0, 1)))
    share = torch.stack(shares) / total.clamp_min(1e-30)  # (n_freq, neuron); dead neurons explain nothing
    share[:, total <= 1e-30] = 0
    best = share.max(0)
    return NeuronFrequencies(frequency=best.indices + 1, explained=best.values)


def key_frequencies(neurons: NeuronFrequencies, *, min_share: float = 0.05) -> list[int]:
    """The frequencies used by at least ``min_share`` of the single-frequency neurons, ascending."""
    freq = neurons.frequency[neurons.single]
    if freq.numel() == 0:
        return []
    counts = torch.bincount(freq)
    return [k for k in range(len(counts)) if counts[k] >= max(1, min_share * freq.numel())]


def is_modular(dataset: KGDataset) -> bool:
    """Does ``dataset`` hold a modular-arithmetic table (:data:`~interp.data.operations.MODULAR`): do the
    Fourier measures apply."""
    return isinstance(dataset.kg, OperationTable) and dataset.kg.operation in MODULAR


class ModularTask:
    """The inputs and answers of a modular-arithmetic dataset, in the token ids of its vocabulary."""

    def __init__(self, dataset: KGDataset):
        kg = dataset.kg
        if not is_modular(dataset):
            raise GrokscopeError(
                f"Fourier measures need a modular-arithmetic dataset (operation one of {', '.join(MODULAR)}); "
                f"this one is {getattr(kg, 'operation', dataset.task)}"
            )
        self.p, self.operation = kg.modulus, kg.operation
        p, vocab = self.p, dataset.vocab
        self.element_ids = torch.tensor(vocab.encode([f"<{i}>" for i in range(p)]))
        a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
        self.a, self.b = a.flatten(), b.flatten()
        op = torch.full_like(self.a, vocab.id(operator_token(self.operation)))
        self.tokens = torch.stack([self.element_ids[self.a], self.element_ids[self.b], op], dim=1)  # (pair, 3)
        answers = [apply(self.operation, p, int(x), int(y)) for x, y in zip(self.a, self.b)]
        self.defined = torch.tensor([c is not None for c in answers])
        self.answer = torch.tensor([-1 if c is None else c for c in answers])
        train = torch.zeros(p, p, dtype=torch.bool)
        for x, y in kg.train_pairs:
            train[x, y] = True
        self.train = train.flatten() & self.defined
        self.test = ~train.flatten() & self.defined

    def answer_waves(self, frequencies: Sequence[int]) -> Float[Tensor, "pair n_wave"]:
        """Unit vectors over the pairs: ``cos, sin (w_k (a +- b))`` for each ``k`` (the restricted logits' span)."""
        sign = 1 if self.operation == "add" else -1
        phase = 2 * math.pi * (self.a + sign * self.b).double() / self.p
        waves = [f(k * phase) for k in frequencies for f in (torch.cos, torch.sin)]
        if not waves:
            return torch.zeros(len(self.a), 0, dtype=torch.float64)
        w = torch.stack(waves, dim=1)
        return w / w.norm(dim=0, keepdim=True)


def _loss(logits: Float[Tensor, "pair p"], answer: Int[Tensor, " pair"], rows: Tensor) -> float:
    return float(F.cross_entropy(logits[rows], answer[rows]))


@torch.no_grad()
def fourier_measures(model: HookedModel, task: ModularTask, key: Sequence[int] | None = None) -> dict[str, object]:
    """The progress measures of one model (a row of :func:`interp.progress.progress_measures`).

    ``key`` (default: this model's own :func:`key_frequencies`) fixes the frequencies the
    embedding power and the restricted / excluded losses use; progress over a run uses the
    final checkpoint's for every checkpoint, as Nanda does.
    """
    bridge = as_bridge(model)
    last = bridge.cfg.n_layers - 1
    device = bridge.W_E.device
    logits, cache = bridge.run_with_cache(task.tokens.to(device), names_filter=f"blocks.{last}.mlp.hook_post")
    out = logits[:, -1, task.element_ids.to(device)].double().cpu()  # (pair, p)
    acts = cache[f"blocks.{last}.mlp.hook_post"][:, -1].cpu()  # (pair, neuron)
    p = task.p
    basis, _ = fourier_basis(p)
    neurons = neuron_frequencies(acts, p)
    key = list(key_frequencies(neurons) if key is None else key)
    w_e = bridge.W_E[task.element_ids.to(device)].double().cpu()  # (p, d_model)
    emb = frequency_norms(basis @ w_e)  # (n_freq,)
    w_out = bridge.blocks[last].mlp.W_out.double().cpu()  # (neuron, d_model)
    w_u = bridge.W_U[:, task.element_ids.to(device)].double().cpu()  # (d_model, p)
    neuron_logits = frequency_norms(basis @ (w_out @ w_u).T)  # Fourier over the output axis
    power = emb.pow(2)
    row: dict[str, object] = {
        "key_frequencies": key,
        "embedding_key_power": float(power[[k - 1 for k in key]].sum() / power.sum()) if key else 0.0,
        "gini_embedding": gini(emb),
        "gini_unembed_out": gini(neuron_logits),
        "single_frequency_neurons": float(neurons.single.double().mean()),
        "train_loss": _loss(out, task.answer, task.train),
        "test_loss": _loss(out, task.answer, task.test),
        "train_accuracy": float((out.argmax(-1) == task.answer)[task.train].double().mean()),
        "test_accuracy": float((out.argmax(-1) == task.answer)[task.test].double().mean()),
        "chance_loss": math.log(p),
        "restricted_loss": None,
        "excluded_loss": None,
        "embedding_frequency_norms": emb.tolist(),
        "unembed_out_frequency_norms": neuron_logits.tolist(),
    }
    if task.operation in RESTRICTABLE:
        restricted, excluded = split_logits(out, task.answer_waves(key))
        row["restricted_loss"] = _loss(restricted, task.answer, task.defined)
        row["excluded_loss"] = _loss(excluded, task.answer, task.train)
    return row


@torch.no_grad()
def dictionary_frequencies(dictionary: torch.nn.Module, model: HookedModel, task: ModularTask) -> NeuronFrequencies:
    """Nanda's clustering applied to a sparse dictionary's features: each feature's activation over all pairs
    (read at the dictionary's hook, at the answer position) 2D-transformed; dead features explain nothing."""
    bridge = as_bridge(model)
    hook = dictionary.cfg.hook_name
    _, cache = bridge.run_with_cache(task.tokens.to(bridge.W_E.device), names_filter=hook)
    x = cache[hook][:, -1].reshape(len(task.tokens), -1)  # (pair, d_in): heads flattened for attn.hook_z
    return neuron_frequencies(dictionary.encode(x.to(dictionary.W_dec.dtype)).cpu(), task.p)


def cluster_purity(directions: Float[Tensor, "n neuron"], neurons: NeuronFrequencies) -> Float[Tensor, " n"]:
    """For directions over the MLP neurons (a dictionary's decoder rows at ``mlp.hook_post``): the largest share
    of each one's squared norm on the single-frequency neurons of one frequency (1: it writes to one cluster)."""
    clusters = torch.where(neurons.single, neurons.frequency, torch.zeros_like(neurons.frequency))
    sq = directions.detach().double().cpu().pow(2)
    n_freq = int(neurons.frequency.max()) if neurons.frequency.numel() else 0
    mass = torch.stack([sq[:, clusters == k].sum(1) for k in range(1, n_freq + 1)], 1) if n_freq else sq[:, :0]
    total = sq.sum(1).clamp_min(1e-30)
    return mass.max(1).values / total if n_freq else torch.zeros(len(sq), dtype=sq.dtype)


def split_logits(
    logits: Float[Tensor, "pair p"], waves: Float[Tensor, "pair n_wave"]
) -> tuple[Float[Tensor, "pair p"], Float[Tensor, "pair p"]]:
    """Nanda's restricted and excluded logits: each output's logits over the pairs projected onto the
    orthonormal ``waves`` (plus the mean over pairs), and the logits with that projection removed."""
    along = waves @ (waves.T @ logits)  # (pair, p)
    return logits.mean(0, keepdim=True) + along, logits - along


__all__ = [
    "RESTRICTABLE",
    "SINGLE_FREQUENCY",
    "ModularTask",
    "NeuronFrequencies",
    "cluster_purity",
    "dictionary_frequencies",
    "fourier_basis",
    "fourier_measures",
    "frequency_norms",
    "gini",
    "is_modular",
    "key_frequencies",
    "neuron_frequencies",
    "row_frequencies",
    "split_logits",
]
