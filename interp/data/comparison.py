"""Comparison and complex reasoning over a table of entity attribute values.

Comparison (``comparison.ipynb``): each (entity, attribute) gets a uniform value in
0..n_values-1; per attribute, round(ood_fraction * n_entities) entities are OOD. All
atomic facts ``<e><attr>`` -> ``<v></a>`` are trained. A query
``<attr><q><e1><mask><e2>`` -> ``<attr_j_k></a>`` (k = 0, 1, 2 for v1 <, =, > v2) comes in
both orders of each pair: ID-ID pairs are training candidates (a ``test_id_fraction`` of
pairs held out as the ID test), OOD-OOD pairs the OOD test, mixed pairs are dropped.
Training adds round(phi * #ID atomic) sampled ID-ID queries.

Complex reasoning (``complex_reasoning.ipynb``, paper appendix F): the same table, in the
notebook's format (``<q><e><attr><mask></q>`` -> ``<a><v></a>``, queries wrapped in
``<q>...</q>``). OOD atomic facts are NOT trained; training has the ID atomic facts, a
fraction of ID-ID and of ID-OOD queries. The test is the *hard* OOD-OOD queries: those
whose answer follows by chaining training comparisons through the complete order of ID
values (o1 >= i (trained), v_i >= v_j (ID atomic facts), j >= o2 (trained)) but not from
the training comparisons alone; n_hard_per_label per label.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from interp.data.config import ComparisonConfig, ComplexConfig
from interp.data.dataset import Example, KGDataset, choose
from interp.data.graphs import compare
from interp.data.vocab import SPECIALS, Vocab
from interp.errors import ConfigError

LABEL_MEANING = ("v1 < v2", "v1 = v2", "v1 > v2")


def comparison_vocab(n_entities: int, n_attributes: int, n_values: int) -> Vocab:
    """Entities, attributes, values, the paper's specials, then three labels per attribute."""
    attrs = [f"<attr_{j}>" for j in range(n_attributes)]
    labels = [f"<attr_{j}_{k}>" for j in range(n_attributes) for k in range(3)]
    return Vocab(
        [f"<e_{i}>" for i in range(n_entities)] + attrs + [f"<{v}>" for v in range(n_values)] + SPECIALS + labels
    )


@dataclasses.dataclass
class _Table:
    """Values, per-attribute ID/OOD entities, and the token builders shared by both tasks."""

    values: np.ndarray  # (entity, attribute) -> value
    id_ents: np.ndarray  # (attribute, n_id), sorted
    ood_ents: np.ndarray  # (attribute, n_ood), sorted
    wrap: bool  # complex task format: <q> ... </q><a>

    def __post_init__(self) -> None:
        n, n_attr = self.values.shape
        self.ent = [f"<e_{i}>" for i in range(n)]
        self.attr = [f"<attr_{j}>" for j in range(n_attr)]
        self.vals = self.values.tolist()
        self._facts: dict[tuple[int, int], list[str]] = {}

    def fact(self, e: int, a: int) -> list[str]:
        """The atomic fact [entity, attribute, value] (one shared list per fact)."""
        key = (e, a)
        if key not in self._facts:
            self._facts[key] = [self.ent[e], self.attr[a], f"<{self.vals[e][a]}>"]
        return self._facts[key]

    def label(self, a: int, e1: int, e2: int) -> str:
        return f"<attr_{a}_{compare(self.vals[e1][a], self.vals[e2][a])}>"

    def atomic(self, a: int, e: int, kind: str) -> Example:
        prompt = (self.ent[e], self.attr[a])
        if self.wrap:
            prompt = ("<q>", *prompt, "<mask>", "</q>", "<a>")
        return Example(prompt, (f"<{self.vals[e][a]}>", "</a>"), kind)

    def query_prompt(self, a: int, e1: int, e2: int) -> tuple[str, ...]:
        prompt = (self.attr[a], "<q>", self.ent[e1], "<mask>", self.ent[e2])
        return prompt + ("</q>", "<a>") if self.wrap else prompt

    def queries(self, recs: tuple[np.ndarray, np.ndarray, np.ndarray], kind: str) -> list[Example]:
        """Examples for comparison records given as arrays (attribute, e1, e2)."""
        out = []
        for a, e1, e2 in zip(*(x.tolist() for x in recs)):
            prov = {"values": [self.vals[e1][a], self.vals[e2][a]], "atomic": [self.fact(e1, a), self.fact(e2, a)]}
            out.append(Example(self.query_prompt(a, e1, e2), (self.label(a, e1, e2), "</a>"), kind, prov))
        return out

    def atomic_examples(self, ents: np.ndarray) -> list[Example]:
        return [self.atomic(a, e, "atomic") for a in range(len(ents)) for e in ents[a].tolist()]

    def graph(self) -> dict[str, Any]:
        return {
            "entities": self.ent,
            "attributes": self.attr,
            "values": self.vals,
            "ood_entities": {self.attr[a]: [self.ent[e] for e in es] for a, es in enumerate(self.ood_ents.tolist())},
        }


def _table(rng: np.random.Generator, cfg: ComparisonConfig | ComplexConfig, wrap: bool) -> _Table:
    n, n_attr, n_ood = cfg.n_entities, cfg.n_attributes, cfg.n_ood_entities
    values = rng.integers(0, cfg.n_values, size=(n, n_attr))
    ood = np.stack([np.sort(rng.choice(n, n_ood, replace=False)) for _ in range(n_attr)])
    ids = np.stack([np.setdiff1d(np.arange(n), o) for o in ood])
    return _Table(values, ids, ood, wrap)


class _Pairs:
    """All unordered pairs of a per-attribute entity group, both orders: record g -> (attr, e1, e2).

    Record g is pair ``g // 2`` (attribute-major, then i < j in sorted entity order, as
    ``itertools.combinations``), in order (ei, ej) if g is even and flipped if odd.
    """

    def __init__(self, ents: np.ndarray, rows: np.ndarray | None = None):
        self.ents = ents
        self.iu, self.ju = np.triu_indices(ents.shape[1], 1)
        self.per_attr = len(self.iu)
        self.rows = rows  # the selected pairs (flat attr*per_attr + pair), or None for all

    def __len__(self) -> int:
        n_rows = self.ents.shape[0] * self.per_attr if self.rows is None else len(self.rows)
        return 2 * n_rows

    def decode(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row = g // 2 if self.rows is None else self.rows[g // 2]
        a, p = row // self.per_attr, row % self.per_attr
        x, y = self.ents[a, self.iu[p]], self.ents[a, self.ju[p]]
        flip = (g % 2).astype(bool)
        return a, np.where(flip, y, x), np.where(flip, x, y)


def _split_id_pairs(rng: np.random.Generator, table: _Table, test_fraction: float) -> tuple[_Pairs, _Pairs]:
    """ID-ID pairs: each held out (both orders) with probability ``test_fraction``."""
    all_pairs = _Pairs(table.id_ents)
    held = rng.random(len(all_pairs) // 2) < test_fraction
    return _Pairs(table.id_ents, np.flatnonzero(~held)), _Pairs(table.id_ents, np.flatnonzero(held))


def _probe(rng: np.random.Generator, examples: list[Example], size: int, kind: str) -> list[Example]:
    return [dataclasses.replace(examples[i], type=kind) for i in choose(rng, len(examples), size).tolist()]


def generate_comparison(config: ComparisonConfig) -> KGDataset:
    """Build the comparison dataset ``config`` describes."""
    rng = np.random.default_rng(config.seed)
    table = _table(rng, config, wrap=False)
    train_pairs, test_pairs = _split_id_pairs(rng, table, config.test_id_fraction)
    if config.n_inferred > len(train_pairs):
        phi_max = math.floor(10 * len(train_pairs) / config.n_id_atomic) / 10
        raise ConfigError(
            f"phi = {config.phi!r} is out of range for this graph; allowed: (0, {phi_max}] "
            f"(only {len(train_pairs)} ID-ID comparisons remain for training, {config.n_inferred} needed)"
        )
    ood_pairs = _Pairs(table.ood_ents)
    id_atomic = table.atomic_examples(table.id_ents)
    ood_atomic = table.atomic_examples(table.ood_ents)
    sampled = rng.choice(len(train_pairs), config.n_inferred, replace=False)
    inferred = table.queries(train_pairs.decode(sampled), "inferred")
    size = config.probe_size
    splits = {
        "train": id_atomic + ood_atomic + inferred,
        "id_atomic": _probe(rng, id_atomic, size, "id_atomic"),
        "ood_atomic": _probe(rng, ood_atomic, size, "ood_atomic"),
        "train_inferred": _probe(rng, inferred, size, "train_inferred"),
        "test_id": table.queries(test_pairs.decode(choose(rng, len(test_pairs), size)), "test_inferred_iid"),
        "test_ood": table.queries(ood_pairs.decode(choose(rng, len(ood_pairs), size)), "test_inferred_ood"),
    }
    vocab = comparison_vocab(config.n_entities, config.n_attributes, config.n_values)
    return KGDataset("comparison", config, vocab, splits, table.graph())


# ------------------------------------------------------------------------------ complex
def _cross_decode(table: _Table, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ID-OOD record g -> (attr, e1, e2): pair g // 2 (attribute, ID index, OOD index), lower id first if g even."""
    n_id, n_ood = table.id_ents.shape[1], table.ood_ents.shape[1]
    row = g // 2
    a, rem = row // (n_id * n_ood), row % (n_id * n_ood)
    x, y = table.id_ents[a, rem // n_ood], table.ood_ents[a, rem % n_ood]
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    flip = (g % 2).astype(bool)
    return a, np.where(flip, hi, lo), np.where(flip, lo, hi)


def _ge_edges(table: _Table, recs: tuple[np.ndarray, ...]) -> np.ndarray:
    """Rows (attr, p, q, record index) for every "p >= q" a comparison record states (two for "=")."""
    a, e1, e2 = recs
    v1, v2 = table.values[e1, a], table.values[e2, a]
    k = np.arange(len(a))
    fwd = np.stack([a, e1, e2, k], axis=1)[v1 >= v2]
    back = np.stack([a, e2, e1, k], axis=1)[v1 <= v2]
    return np.concatenate([fwd, back]).reshape(-1, 4)


def _hard_queries(table: _Table, id_id: tuple[np.ndarray, ...], cross: tuple[np.ndarray, ...], n_values: int):
    """All hard OOD-OOD queries (attr, o1, o2, label), sorted, and the witness records per (attr, OOD entity).

    Solvable (the notebook's graph of trained ID-OOD comparisons plus the full order of ID
    values): o1 >= o2 iff some trained o1 >= i and j >= o2 have v_i >= v_j, i.e. iff
    lower(o1) >= upper(o2). Easy: a path in the graph of trained comparisons alone. Hard =
    solvable and not easy. Witnesses: the first cross record giving lower(o), upper(o).
    """
    n, n_attr = table.values.shape
    cross_edges = _ge_edges(table, cross)
    id_edges = _ge_edges(table, id_id)
    is_ood = np.zeros((n_attr, n), dtype=bool)
    np.put_along_axis(is_ood, table.ood_ents, True, axis=1)
    lower = np.full((n_attr, n), -1)  # o >= an ID entity of this value
    upper = np.full((n_attr, n), n_values)  # o <= an ID entity of this value
    lower_rec: dict[tuple[int, int], int] = {}
    upper_rec: dict[tuple[int, int], int] = {}
    for a, p, q, k in cross_edges[np.argsort(cross_edges[:, 3], kind="stable")].tolist():
        if is_ood[a, p] and table.vals[q][a] > lower[a, p]:
            lower[a, p], lower_rec[a, p] = table.vals[q][a], k
        if is_ood[a, q] and table.vals[p][a] < upper[a, q]:
            upper[a, q], upper_rec[a, q] = table.vals[p][a], k

    found = []
    for a in range(n_attr):
        oods = table.ood_ents[a]
        ge = lower[a, oods][:, None] >= upper[a, oods][None, :]
        solvable = _labels(ge)
        mine = np.concatenate([cross_edges[cross_edges[:, 0] == a], id_edges[id_edges[:, 0] == a]])
        reach = _reachable(n, mine[:, 1], mine[:, 2], order=np.argsort(table.values[:, a], kind="stable"))
        reach = np.stack([_bits(reach[o], n) for o in oods.tolist()])
        easy = _labels(reach[:, oods])
        hard = (solvable >= 0) & (solvable != easy)
        np.fill_diagonal(hard, False)
        for i, j in zip(*np.nonzero(hard)):
            found.append((a, int(oods[i]), int(oods[j]), int(solvable[i, j])))
    return found, lower_rec, upper_rec


def _reachable(n: int, src: np.ndarray, dst: np.ndarray, order: np.ndarray) -> list[int]:
    """Transitive closure of the edges src -> dst over n nodes, as one bitset (int) per node.

    Iterates reach[x] = OR over edges x -> y of (y | reach[y]) to a fixed point; visiting
    nodes in ascending value (edges point to lower or equal values) makes that one or two sweeps.
    """
    succ: list[list[int]] = [[] for _ in range(n)]
    for p, q in zip(src.tolist(), dst.tolist()):
        succ[p].append(q)
    reach = [0] * n
    changed = True
    while changed:
        changed = False
        for x in order.tolist():
            r = reach[x]
            for y in succ[x]:
                r |= reach[y] | (1 << y)
            if r != reach[x]:
                reach[x], changed = r, True
    return reach


def _bits(mask: int, n: int) -> np.ndarray:
    """Bitset -> boolean array of length n."""
    raw = np.frombuffer(mask.to_bytes((n + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:n].astype(bool)


def _labels(ge: np.ndarray) -> np.ndarray:
    """Label matrix from "row >= column" reachability: 1 both ways, 2 one way, 0 the other, -1 unknown."""
    le = ge.T
    return np.where(ge & le, 1, np.where(ge, 2, np.where(le, 0, -1)))


def generate_complex(config: ComplexConfig) -> KGDataset:
    """Build the complex-reasoning dataset ``config`` describes."""
    rng = np.random.default_rng(config.seed)
    table = _table(rng, config, wrap=True)
    n_id, n_ood = table.id_ents.shape[1], table.ood_ents.shape[1]
    topleft, test_pairs = _split_id_pairs(rng, table, config.test_id_fraction)
    n_cross = 2 * config.n_attributes * n_id * n_ood
    id_id = topleft.decode(choose(rng, len(topleft), round(config.train_id_id_fraction * len(topleft))))
    cross = _cross_decode(table, choose(rng, n_cross, round(config.train_id_ood_fraction * n_cross)))

    found, lower_rec, upper_rec = _hard_queries(table, id_id, cross, config.n_values)
    by_label = [[q for q in found if q[3] == lab] for lab in range(3)]
    counts = [len(g) for g in by_label]
    if min(counts) < config.n_hard_per_label:
        raise ConfigError(
            f"n_hard_per_label = {config.n_hard_per_label} is out of range for this graph; allowed: at most "
            f"{min(counts)} (found {', '.join(f'{c} with {m}' for c, m in zip(counts, LABEL_MEANING))}; "
            "more entities or attributes give more)"
        )
    hard = [g[i] for g in by_label for i in choose(rng, len(g), config.n_hard_per_label).tolist()]

    def step_record(k: int) -> list[str]:
        a, e1, e2 = (int(x[k]) for x in cross)
        return [table.attr[a], table.ent[e1], table.ent[e2], table.label(a, e1, e2)]

    def hard_example(a: int, o1: int, o2: int, lab: int) -> Example:
        chains, comparisons, atomic = [], [], []
        for p, q in [(o1, o2)] if lab == 2 else [(o2, o1)] if lab == 0 else [(o1, o2), (o2, o1)]:
            lo_k, up_k = lower_rec[a, p], upper_rec[a, q]  # p >= i, j >= q
            i = next(e for e in (int(cross[1][lo_k]), int(cross[2][lo_k])) if e != p)
            j = next(e for e in (int(cross[1][up_k]), int(cross[2][up_k])) if e != q)
            chains.append([table.ent[e] for e in (p, i, j, q)])
            comparisons += [step_record(lo_k), step_record(up_k)]
            atomic += [table.fact(i, a), table.fact(j, a)]
        prov = {
            "values": [table.vals[o1][a], table.vals[o2][a]],
            "chains": chains,
            "comparisons": comparisons,
            "atomic": [f for k, f in enumerate(atomic) if f not in atomic[:k]],
        }
        return Example(table.query_prompt(a, o1, o2), (f"<attr_{a}_{lab}>", "</a>"), "test_hard", prov)

    id_atomic = table.atomic_examples(table.id_ents)
    ood_atomic = table.atomic_examples(table.ood_ents)
    inferred = table.queries(id_id, "inferred") + table.queries(cross, "inferred")
    size = config.probe_size
    splits = {
        "train": id_atomic + inferred,
        "id_atomic": _probe(rng, id_atomic, size, "id_atomic"),
        "ood_atomic": _probe(rng, ood_atomic, size, "ood_atomic"),
        "train_inferred": _probe(rng, inferred, size, "train_inferred"),
        "test_id": table.queries(test_pairs.decode(choose(rng, len(test_pairs), size)), "test_inferred_iid"),
        "test_ood": [hard_example(*q) for q in hard],
    }
    vocab = comparison_vocab(config.n_entities, config.n_attributes, config.n_values)
    return KGDataset("complex", config, vocab, splits, table.graph())
