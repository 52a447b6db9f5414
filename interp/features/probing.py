"""Ground-truth checks of features: is a known variable linearly readable, and from how few dimensions?

Our tasks have known intermediate variables: the bridge entity ``b`` of ``<h><r1><r2>``, read
at the ``r1`` position, and the attribute values ``v1`` / ``v2`` of a comparison, read at
``e1`` / ``e2`` (:attr:`interp.data.tasks.TaskSchema.intermediates`). Two checks:

* **best single feature**: per value of the variable (per bridge entity), the input dimension
  whose activation best separates its prompts from the rest, by AUROC, and for a sparse
  dictionary the precision and recall of "that feature is active";
* **k-sparse probing** (Gurnee et al. 2023): rank the dimensions by how class-discriminative
  they are on the probe's training rows (the one-way ANOVA F statistic), keep the top ``k``,
  fit a multinomial logistic probe on them, and report held-out accuracy for each ``k``.

The dimensions are a sparse dictionary's features, raw residual dimensions or MLP neurons
(``blocks.L.mlp.hook_post``). The state at a position depends only on the prompt up to it, so
rows are distinct *prefixes* (``h r1`` for ``S[l, r1]``): held-out rows are prefixes the probe
never saw. The probe trains on a split's inferred prompts (default ``train``: every training
query; ``train_inferred`` is a sample of them) less a random ``holdout`` fraction of its
prefixes, which is the main held-out set; ``test_id`` / ``test_ood`` rows are their prefixes
the probe did not train on (often few: test queries share ``h r1`` with training ones)::

    from interp.features.probing import probe_site

    res = probe_site(run.model, run.dataset, "blocks.2.hook_resid_pre", "bridge", ks=(1, 4, 16))
    res.accuracy["held_out"]           # one accuracy per k
    res.single.mean_auroc              # best single dimension per bridge entity, averaged
    probe_site(run.model, run.dataset, sae.hook_name, "bridge", dictionary=sae)   # the dictionary's features
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.data import Example, KGDataset, TaskSchemaError
from interp.features.activations import check_site, flat, read_activation
from interp.features.config import DictionaryMismatchError, EmptyPromptSetError, FeatureError
from interp.features.dictionary import SparseDictionary
from interp.intervene import InterventionError, as_bridge, check_vocab
from interp.lens import example_targets
from interp.models.protocol import HookedModel


# -------------------------------------------------------------------------------- rows
@dataclass
class ProbeRows:
    """Activations at one hook and position, one row per distinct prompt prefix, with the variable's value."""

    x: Float[Tensor, "row d_in"]
    labels: Int[Tensor, " row"]
    """Token id of the variable's value (the bridge entity, the attribute value) per row."""
    prefixes: list[tuple[str, ...]]

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, rows: Sequence[int]) -> ProbeRows:
        """The rows ``rows`` (indices), in that order."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        return ProbeRows(self.x[idx], self.labels[idx], [self.prefixes[i] for i in idx.tolist()])


def variable_position(dataset: KGDataset, target: str, position: int | str | None = None) -> int:
    """The prompt position to read ``target`` at: ``position`` (index or name), else the schema's for it."""
    try:
        schema = dataset.schema
        if position is None:
            return schema.intermediate(target).position
        if isinstance(position, str):
            return schema.position(position)
    except TaskSchemaError as err:
        raise FeatureError(str(err)) from None
    if isinstance(position, bool) or not 0 <= position < schema.n_pos:
        raise FeatureError(
            f"position {position!r} is out of range; a {schema.label} prompt has {schema.n_pos} positions"
        )
    return position


def inferred_prompts(dataset: KGDataset, split: str) -> list[Example]:
    """The inferred prompts of a split (its atomic facts left out)."""
    schema = dataset.schema
    return [ex for ex in dataset.examples(split) if schema.is_prompt(ex)]


@torch.no_grad()
def probe_rows(
    model: HookedModel,
    dataset: KGDataset,
    hooks: Sequence[str],
    target: str,
    split: str,
    position: int | str | None = None,
) -> dict[str, ProbeRows]:
    """Rows of every hook in ``hooks`` (one forward) at the variable's position over a split's inferred prompts."""
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    for hook in hooks:
        check_site(bridge, hook)
    pos = variable_position(dataset, target, position)
    seen: dict[tuple[str, ...], Example] = {}
    for ex in inferred_prompts(dataset, split):
        seen.setdefault(tuple(ex.input_tokens[: pos + 1]), ex)
    if not seen:
        raise EmptyPromptSetError(f"split {split!r} has no inferred {dataset.task} prompts; choose another split")
    examples = list(seen.values())
    try:
        labels = example_targets(dataset, examples, target)
    except InterventionError as err:  # the lens's one-line error for an unknown target
        raise FeatureError(str(err)) from None
    device = next(iter(bridge.parameters())).device
    tokens = torch.tensor([dataset.vocab.encode(ex.input_tokens[: pos + 1]) for ex in examples], device=device)
    out = {}
    for hook in dict.fromkeys(hooks):
        act = flat(read_activation(bridge, tokens, hook))[:, pos]
        out[hook] = ProbeRows(act.float().cpu(), labels, list(seen))
    return out


@dataclass
class ProbeSplits:
    """The probe's training rows and its evaluation sets (``held_out`` and the named splits' unseen prefixes)."""

    train: ProbeRows
    evals: dict[str, ProbeRows]


def split_rows(
    model: HookedModel,
    dataset: KGDataset,
    hooks: Sequence[str],
    target: str,
    *,
    position: int | str | None = None,
    train_split: str = "train",
    eval_splits: Sequence[str] = ("test_id", "test_ood"),
    holdout: float = 0.25,
    seed: int = 0,
) -> dict[str, ProbeSplits]:
    """Per hook: training rows (``train_split`` prefixes less a ``holdout`` fraction) and evaluation rows."""
    if not 0 <= holdout < 1:
        raise FeatureError(f"holdout = {holdout!r} is out of range; allowed: 0 <= holdout < 1")
    rows = probe_rows(model, dataset, hooks, target, train_split, position)
    n = len(next(iter(rows.values())))
    perm = np.random.default_rng(seed).permutation(n)
    n_out = int(round(holdout * n))
    held, kept = sorted(perm[:n_out].tolist()), sorted(perm[n_out:].tolist())
    out = {hook: ProbeSplits(r.take(kept), {"held_out": r.take(held)} if held else {}) for hook, r in rows.items()}
    for split in eval_splits:
        if not inferred_prompts(dataset, split):
            continue
        for hook, r in probe_rows(model, dataset, hooks, target, split, position).items():
            train_prefixes = set(out[hook].train.prefixes)
            out[hook].evals[split] = r.take([i for i, p in enumerate(r.prefixes) if p not in train_prefixes])
    return out


# ---------------------------------------------------------------------- single features
@dataclass
class SingleFeatures:
    """Per class (value of the variable): the best single dimension, its AUROC, precision and recall."""

    classes: list[int]
    feature: list[int]
    auroc: list[float]
    precision: list[float]
    recall: list[float]
    """Of "the feature is active (> 0)": meaningful for a dictionary's non-negative features."""

    @property
    def mean_auroc(self) -> float:
        """The mean AUROC over the classes."""
        return float(np.mean(self.auroc))

    @property
    def distinct_features(self) -> int:
        """How many different features are some class's best."""
        return len(set(self.feature))

    def share(self, precision: float = 0.9, recall: float = 0.9) -> float:
        """Fraction of classes whose best feature has at least this precision and recall."""
        ok = [p >= precision and r >= recall for p, r in zip(self.precision, self.recall)]
        return float(np.mean(ok))


def auroc_matrix(x: Float[Tensor, "row dim"], labels: Int[Tensor, " row"]) -> tuple[list[int], Tensor]:
    """AUROC of every dimension for every class (one class against the rest; ties averaged), ``class dim``."""
    classes = sorted(set(labels.tolist()))
    xt = x.T.contiguous().double()  # (dim, row)
    sorted_x = xt.sort(dim=1).values
    lo = torch.searchsorted(sorted_x, xt, right=False)
    hi = torch.searchsorted(sorted_x, xt, right=True)
    ranks = (lo + hi + 1).double() / 2  # average 1-based rank
    onehot = (labels[:, None] == torch.tensor(classes)[None, :]).double()  # (row, class)
    n_pos = onehot.sum(0)
    n_neg = x.shape[0] - n_pos
    rank_sum = (ranks @ onehot).T  # (class, dim)
    auc = (rank_sum - n_pos[:, None] * (n_pos[:, None] + 1) / 2) / (n_pos * n_neg).clamp_min(1)[:, None]
    return classes, auc


def best_single_features(
    x: Float[Tensor, "row dim"], labels: Int[Tensor, " row"], *, either_sign: bool = False
) -> SingleFeatures:
    """Per class the dimension with the highest AUROC (``either_sign``: ``max(auc, 1 - auc)``, for raw dimensions)."""
    if x.shape[0] == 0:
        raise EmptyPromptSetError("no rows to score features on; choose a split with inferred prompts")
    classes, auc = auroc_matrix(x, labels)
    score = torch.maximum(auc, 1 - auc) if either_sign else auc
    best = score.argmax(1)
    active = x > 0
    precision, recall = [], []
    for c, j in zip(classes, best.tolist()):
        pos = labels == c
        tp = float((active[:, j] & pos).sum())
        precision.append(tp / max(float(active[:, j].sum()), 1.0))
        recall.append(tp / max(float(pos.sum()), 1.0))
    return SingleFeatures(classes, best.tolist(), score.max(1).values.tolist(), precision, recall)


# ------------------------------------------------------------------------ k-sparse probes
def f_statistic(x: Float[Tensor, "row dim"], labels: Int[Tensor, " row"]) -> Float[Tensor, " dim"]:
    """One-way ANOVA F per dimension: between-class over within-class variance (0 for a constant dimension)."""
    classes, inverse = torch.unique(labels, return_inverse=True)
    n, g = x.shape[0], len(classes)
    x = x.double()
    counts = torch.bincount(inverse, minlength=g).double()
    means = torch.zeros(g, x.shape[1], dtype=x.dtype).index_add_(0, inverse, x) / counts[:, None]
    grand = x.mean(0)
    between = (counts[:, None] * (means - grand).pow(2)).sum(0) / max(g - 1, 1)
    within = (x - means[inverse]).pow(2).sum(0) / max(n - g, 1)
    return torch.where(within > 0, between / within.clamp_min(1e-30), torch.where(between > 0, torch.inf, 0.0))


def fit_logistic(
    x: Float[Tensor, "row dim"], y: Int[Tensor, " row"], n_classes: int, *, l2: float = 1e-3, max_iter: int = 100
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A multinomial logistic probe on standardised inputs (L-BFGS): ``(weight, bias, mean, std)``."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = ((x - mean) / std).double()
    w = torch.zeros(z.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach(), mean, std


@dataclass
class ProbeResult:
    """k-sparse probe accuracies at one site, per evaluation set (one per ``k``), and the best single features."""

    hook: str
    source: str
    ks: list[int]
    accuracy: dict[str, list[float]]
    n_rows: dict[str, int]
    n_classes: int
    chance: float
    """Accuracy of always answering the training rows' most common value."""
    width: int
    single: SingleFeatures | None = None
    selected: list[int] = field(default_factory=list)
    """The dimensions in ranking order (the first ``k`` are the ``k``-sparse probe's)."""


def k_sparse_probe(
    train: ProbeRows, evals: Mapping[str, ProbeRows], ks: Sequence[int], *, l2: float = 1e-3
) -> tuple[dict[str, list[float]], list[int]]:
    """Held-out accuracy of the logistic probe on the top-``k`` F-ranked dimensions, per ``k``, per evaluation set."""
    if len(train) == 0:
        raise EmptyPromptSetError("no training rows for the probe; choose a split with inferred prompts")
    width = train.x.shape[1]
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= width:
            raise FeatureError(f"k = {k!r} is out of range; the site is {width} wide: choose 1..{width}")
    classes = torch.unique(train.labels)
    index = {int(c): i for i, c in enumerate(classes.tolist())}
    y = torch.tensor([index[int(c)] for c in train.labels.tolist()])
    order = f_statistic(train.x, train.labels).argsort(descending=True, stable=True)
    acc: dict[str, list[float]] = {name: [] for name in evals}
    for k in ks:
        dims = order[:k]
        w, b, mean, std = fit_logistic(train.x[:, dims], y, len(classes), l2=l2)
        for name, rows in evals.items():
            if len(rows) == 0:
                acc[name].append(float("nan"))
                continue
            pred = classes[(((rows.x[:, dims] - mean) / std).double() @ w + b).argmax(1)]
            acc[name].append(float((pred == rows.labels).double().mean()))
    return acc, order.tolist()


def default_ks(width: int) -> list[int]:
    """1, 2, 4, ... up to 64, no larger than ``width``."""
    return [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= width]


def probe_site(
    model: HookedModel,
    dataset: KGDataset,
    hook: str,
    target: str,
    *,
    dictionary: SparseDictionary | None = None,
    ks: Sequence[int] | None = None,
    position: int | str | None = None,
    train_split: str = "train",
    eval_splits: Sequence[str] = ("test_id", "test_ood"),
    holdout: float = 0.25,
    seed: int = 0,
    splits: Mapping[str, ProbeSplits] | None = None,
) -> ProbeResult:
    """k-sparse probes and best single features for ``target`` at ``hook`` (a dictionary's features when given).

    ``splits`` reuses rows from :func:`split_rows` (several hooks read in one forward).
    """
    if dictionary is not None and dictionary.hook_name != hook:
        raise DictionaryMismatchError(
            f"the dictionary was trained at {dictionary.hook_name}, not at {hook}; probe its own site or train one at {hook}"
        )
    if splits is not None and hook not in splits:
        raise FeatureError(f"the rows given were read at {', '.join(splits)}, not at {hook}; pass rows of {hook}")
    data = (
        splits
        or split_rows(
            model,
            dataset,
            [hook],
            target,
            position=position,
            train_split=train_split,
            eval_splits=eval_splits,
            holdout=holdout,
            seed=seed,
        )
    )[hook]
    if dictionary is not None:
        if dictionary.d_in != data.train.x.shape[1]:
            raise DictionaryMismatchError(
                f"the dictionary reads {dictionary.d_in}-wide activations but {hook} is {data.train.x.shape[1]} wide"
            )

        def encode(r):
            return ProbeRows(dictionary.encode(r.x.to(dictionary.W_enc)).detach().float().cpu(), r.labels, r.prefixes)

        data = ProbeSplits(encode(data.train), {k: encode(v) for k, v in data.evals.items()})
    width = data.train.x.shape[1]
    ks = list(default_ks(width) if ks is None else ks)
    acc, order = k_sparse_probe(data.train, data.evals, ks)
    counts = torch.unique(data.train.labels, return_counts=True)[1]
    source = "dictionary" if dictionary is not None else ("neurons" if "mlp.hook_post" in hook else "raw")
    single = best_single_features(data.train.x, data.train.labels, either_sign=dictionary is None)
    return ProbeResult(
        hook,
        source,
        ks,
        acc,
        {k: len(v) for k, v in data.evals.items()} | {"train": len(data.train)},
        len(counts),
        float(counts.max()) / len(data.train),
        width,
        single,
        order,
    )


__all__ = [
    "ProbeResult",
    "ProbeRows",
    "ProbeSplits",
    "SingleFeatures",
    "auroc_matrix",
    "best_single_features",
    "inferred_prompts",
    "default_ks",
    "f_statistic",
    "fit_logistic",
    "k_sparse_probe",
    "probe_rows",
    "probe_site",
    "split_rows",
    "variable_position",
]
