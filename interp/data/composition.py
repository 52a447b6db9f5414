"""Composition: infer (h, r1, ..., rk) -> t by chaining k atomic facts through bridge entities.

Recipe (Wang et al. 2024, ``composition.ipynb``): every entity gets ``out_degree`` distinct
random relations, each to a uniformly random tail. Exactly round(ood_fraction * #atomic)
atomic *facts* are OOD; all atomic facts are trained. Every k-chain of facts
h -r1-> b1 -r2-> ... -rk-> t is a candidate inferred fact ``<h><r1>...<rk>`` -> ``<t></a>``:
all hops ID -> training candidate, or (Bernoulli ``test_id_fraction``) ID test; all hops
OOD -> OOD test; mixed -> discarded. Training adds round(phi * #ID atomic) sampled ID
inferred facts. Chains are enumerated with numpy as indices (h, slot_1, ..., slot_k), so
the paper's 800K two-hop candidates take well under a second.

Depth extrapolation (recurrent-depth / looped transformers): ``min_hops`` adds, for every
depth ``min_hops .. n_hops - 1``, round(phi * #ID atomic) sampled all-ID chains of that
depth to training (the ``train_inferred`` probe stays at ``n_hops``); ``test_hops`` moves
``test_id`` / ``test_ood`` to chains of that depth (all hops ID / all hops OOD), deeper
than any training prompt. Deep ID chains are sampled (rejection over uniform chains, so
uniform over all-ID chains); deep OOD chains are enumerated along the sparse OOD facts.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from interp.data.config import MAX_CHAINS, CompositionConfig
from interp.data.dataset import Example, KGDataset, choose
from interp.data.vocab import SPECIALS, Vocab
from interp.errors import ConfigError


def composition_vocab(n_entities: int, n_relations: int) -> Vocab:
    """Entities, relations, then the paper's specials (and ``<pad>``)."""
    return Vocab([f"<e_{i}>" for i in range(n_entities)] + [f"<r_{i}>" for i in range(n_relations)] + SPECIALS)


def generate_composition(config: CompositionConfig) -> KGDataset:
    """Build the two-hop (``n_hops=2``) or k-hop composition dataset ``config`` describes."""
    rng = np.random.default_rng(config.seed)
    n, d, k = config.n_entities, config.out_degree, config.n_hops
    ent = [f"<e_{i}>" for i in range(n)]
    rel = [f"<r_{i}>" for i in range(config.n_relations)]

    # Atomic facts, indexed (head, slot): relation rels[h, s], tail tails[h, s].
    rels = np.argsort(rng.random((n, config.n_relations)), axis=1)[:, :d].astype(np.int32)
    tails = rng.integers(0, n, size=(n, d), dtype=np.int32)
    ood = np.zeros(n * d, dtype=bool)
    ood[rng.choice(n * d, config.n_ood_atomic, replace=False)] = True
    ood = ood.reshape(n, d)

    id_chains, ood_chains = _enumerate_chains(tails, ood, k)
    held_out = rng.random(len(id_chains)) < config.test_id_fraction
    test_id_chains = id_chains[held_out]
    train_chains = id_chains[~held_out]
    if config.n_inferred > len(train_chains):
        phi_max = math.floor(10 * len(train_chains) / config.n_id_atomic) / 10
        raise ConfigError(
            f"phi = {config.phi!r} is out of range for this graph; allowed: (0, {phi_max}] "
            f"(only {len(train_chains)} ID inferred facts remain for training, {config.n_inferred} needed)"
        )
    sampled = train_chains[rng.choice(len(train_chains), config.n_inferred, replace=False)]

    rels_l, tails_l = rels.tolist(), tails.tolist()
    facts: dict[int, list[str]] = {}  # shared [h, r, t] lists for provenance

    def fact(h: int, s: int) -> list[str]:
        key = h * d + s
        if key not in facts:
            facts[key] = [ent[h], rel[rels_l[h][s]], ent[tails_l[h][s]]]
        return facts[key]

    def atomic_examples(is_ood: bool) -> list[Example]:
        hs, ss = np.nonzero(ood == is_ood)
        return [
            Example((ent[h], rel[r]), (ent[t], "</a>"), "atomic")
            for h, r, t in zip(hs.tolist(), rels[hs, ss].tolist(), tails[hs, ss].tolist())
        ]

    def inferred_examples(chains: np.ndarray, kind: str, depth: int = k) -> list[Example]:
        heads, *slots = np.unravel_index(chains, (n,) + (d,) * depth)
        out = []
        for h, path in zip(heads.tolist(), zip(*(s.tolist() for s in slots))):
            hops, e = [], h
            for s in path:
                hops.append(fact(e, s))
                e = tails_l[e][s]
            prompt = (ent[h],) + tuple(f[1] for f in hops)
            prov = {"bridges": [f[2] for f in hops[:-1]], "atomic": hops}
            out.append(Example(prompt, (ent[e], "</a>"), kind, prov))
        return out

    def probe(examples: list[Example], kind: str) -> list[Example]:
        idx = choose(rng, len(examples), config.probe_size)
        return [dataclasses.replace(examples[i], type=kind) for i in idx.tolist()]

    def probe_chains(chains: np.ndarray, kind: str) -> list[Example]:
        return inferred_examples(chains[choose(rng, len(chains), config.probe_size)], kind)

    id_atomic = atomic_examples(False)
    ood_atomic = atomic_examples(True)
    inferred = inferred_examples(sampled, "inferred")
    shallower = []
    for depth in range(config.min_hops or k, k):  # extra training depths, each from its own stream
        chains, _ = _enumerate_chains(tails, ood, depth)
        if config.n_inferred > len(chains):
            raise ConfigError(
                f"min_hops = {config.min_hops} is out of range for this graph: {depth}-hop training needs "
                f"{config.n_inferred} ID chains, it has {len(chains)}; raise min_hops or lower phi"
            )
        sub = np.random.default_rng([config.seed, depth])
        shallower += inferred_examples(
            chains[sub.choice(len(chains), config.n_inferred, replace=False)], "inferred", depth
        )
    splits = {
        "train": id_atomic + ood_atomic + shallower + inferred,
        "id_atomic": probe(id_atomic, "id_atomic"),
        "ood_atomic": probe(ood_atomic, "ood_atomic"),
        "train_inferred": probe(inferred, "train_inferred"),
    }
    test_hops = config.test_hops or k
    if test_hops == k:
        splits["test_id"] = probe_chains(test_id_chains, "test_inferred_iid")
        splits["test_ood"] = probe_chains(ood_chains, "test_inferred_ood")
    else:  # deeper than every training prompt: no deep chain is trained on
        deep = np.random.default_rng([config.seed, 1000 + test_hops])
        deep_id = _sample_id_chains(deep, tails, ood, test_hops, config.probe_size)
        deep_ood = _ood_chains(tails, ood, test_hops, required="test_hops")
        splits["test_id"] = inferred_examples(deep_id, "test_inferred_iid", test_hops)
        splits["test_ood"] = inferred_examples(
            deep_ood[choose(deep, len(deep_ood), config.probe_size)], "test_inferred_ood", test_hops
        )
    ood_l = ood.tolist()
    graph = {"atomic": [fact(h, s) + [ood_l[h][s]] for h in range(n) for s in range(d)]}
    return KGDataset("composition", config, composition_vocab(n, config.n_relations), splits, graph)


def _enumerate_chains(tails: np.ndarray, ood: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every k-chain as a flat index into shape (n, d, ..., d): the all-ID ones and the all-OOD ones."""
    n = tails.shape[0]
    end = np.arange(n, dtype=np.int32)
    all_id = np.ones(n, dtype=bool)
    all_ood = np.ones(n, dtype=bool)
    for hop in range(k):
        all_id = (all_id[:, None] & ~ood[end]).reshape(-1)
        all_ood = (all_ood[:, None] & ood[end]).reshape(-1)
        if hop < k - 1:
            end = tails[end].reshape(-1)
    return np.flatnonzero(all_id), np.flatnonzero(all_ood)


def _ood_chains(tails: np.ndarray, ood: np.ndarray, k: int, required: str | None = None) -> np.ndarray:
    """Every all-OOD k-chain (flat index, sorted), walked along the OOD facts only.

    ``required`` names the setting that needs at least one (an error if there is none).
    """
    n, d = tails.shape
    heads, slots = np.nonzero(ood)
    index, end = heads.astype(np.int64) * d + slots, tails[heads, slots]
    for _ in range(k - 1):
        rows, nxt = np.nonzero(ood[end])
        index, end = index[rows] * d + nxt, tails[end[rows], nxt]
        if len(index) > MAX_CHAINS:
            raise ConfigError(f"more than {MAX_CHAINS:,} all-OOD {k}-hop chains; lower test_hops or ood_fraction")
    if not len(index) and required:
        raise ConfigError(
            f"{required} = {k} is more hops than this graph allows: it has no {k}-hop chain of OOD facts "
            "(lower test_hops, or raise ood_fraction or out_degree)"
        )
    return np.sort(index)


def _sample_id_chains(rng: np.random.Generator, tails: np.ndarray, ood: np.ndarray, k: int, size: int) -> np.ndarray:
    """``size`` distinct all-ID k-chains drawn uniformly (all of them if there are fewer), sorted."""
    n, d = tails.shape
    if n * d**k <= MAX_CHAINS:
        chains, _ = _enumerate_chains(tails, ood, k)
        return np.sort(chains[choose(rng, len(chains), size)])
    found: set[int] = set()
    for _ in range(1000):  # rejection: a uniform chain, kept if every hop is ID
        heads = rng.integers(0, n, size=4 * size)
        slots = rng.integers(0, d, size=(4 * size, k))
        ok, end, index = np.ones(len(heads), dtype=bool), heads, heads.astype(np.int64)
        for hop in range(k):
            ok &= ~ood[end, slots[:, hop]]
            index, end = index * d + slots[:, hop], tails[end, slots[:, hop]]
        for c in index[ok].tolist():
            if len(found) < size:
                found.add(c)
        if len(found) >= size:
            break
    if not found:
        raise ConfigError(f"{k} hops is more than this graph allows: no {k}-hop chain of ID facts was found")
    return np.array(sorted(found), dtype=np.int64)


def _chain_examples(
    chains: np.ndarray, depth: int, kind: str, rels: np.ndarray, tails: np.ndarray, ent: list[str], rel: list[str]
) -> list[Example]:
    """Examples of flat-indexed chains (shape (n, d, ..., d)), with bridges and facts as provenance."""
    n, d = tails.shape
    heads, *slots = np.unravel_index(chains, (n,) + (d,) * depth)
    rels_l, tails_l = rels.tolist(), tails.tolist()
    out = []
    for h, path in zip(heads.tolist(), zip(*(s.tolist() for s in slots))):
        hops, e = [], h
        for s in path:
            hops.append([ent[e], rel[rels_l[e][s]], ent[tails_l[e][s]]])
            e = tails_l[e][s]
        prompt = (ent[h],) + tuple(f[1] for f in hops)
        out.append(Example(prompt, (ent[e], "</a>"), kind, {"bridges": [f[2] for f in hops[:-1]], "atomic": hops}))
    return out


def _graph_arrays(dataset: KGDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """A generated composition graph as arrays: relation and tail ids and OOD flags per
    (entity, out-edge), shape (n_entities, out_degree), and the entity and relation tokens."""
    config = dataset.config
    n, d = config.n_entities, config.out_degree
    facts = dataset.graph["atomic"]
    rels = np.array([int(r[3:-1]) for _, r, _, _ in facts], dtype=np.int64).reshape(n, d)
    tails = np.array([int(t[3:-1]) for _, _, t, _ in facts], dtype=np.int64).reshape(n, d)
    ood = np.array([bool(o) for *_, o in facts]).reshape(n, d)
    return rels, tails, ood, [f"<e_{i}>" for i in range(n)], [f"<r_{i}>" for i in range(config.n_relations)]


def heldout_chains(dataset: KGDataset, depth: int, *, size: int | None = None, seed: int = 0) -> list[Example]:
    """Up to ``size`` (default: the config's ``probe_size``) all-ID chains of a *trained* depth
    (``min_hops .. n_hops``) that are not training prompts, drawn uniformly: whether the model
    generalises at the depths it trains on, the baseline for :func:`depth_test`'s deeper ones.
    """
    config = dataset.config
    if not isinstance(config, CompositionConfig) or len(dataset.graph.get("atomic", ())) != config.n_atomic:
        raise ConfigError("held-out chains need a generated composition dataset (its config and full graph)")
    low = config.min_hops or config.n_hops
    if isinstance(depth, bool) or not isinstance(depth, int) or not low <= depth <= config.n_hops:
        raise ConfigError(f"depth = {depth!r} is out of range; allowed: a trained depth, {low} .. {config.n_hops}")
    rels, tails, ood, ent, rel = _graph_arrays(dataset)
    size = config.probe_size if size is None else size
    trained = {ex.input_tokens for ex in dataset.examples("train") if len(ex.input_tokens) == depth + 1}
    rng = np.random.default_rng([seed, depth, 1])
    chains = _sample_id_chains(rng, tails, ood, depth, size + len(trained))  # enough to leave size after the filter
    held = [
        ex
        for ex in _chain_examples(chains, depth, "test_inferred_iid", rels, tails, ent, rel)
        if ex.input_tokens not in trained
    ]
    return [held[i] for i in sorted(choose(rng, len(held), size))]


def depth_test(dataset: KGDataset, depth: int, *, size: int | None = None, seed: int = 0) -> dict[str, list[Example]]:
    """Chains of ``depth`` hops of a generated composition dataset, deeper than it trains on.

    ``{"id": ..., "ood": ...}``: up to ``size`` (default: the config's ``probe_size``) chains
    whose hops are all ID facts (in-distribution facts, a depth never trained), and as many
    all-OOD chains (none if the graph has no OOD chain that long), each drawn uniformly. A
    depth the model trained on (``<= n_hops``) is a one-line ConfigError.
    """
    config = dataset.config
    if not isinstance(config, CompositionConfig) or len(dataset.graph.get("atomic", ())) != config.n_atomic:
        raise ConfigError("depth tests need a generated composition dataset (its config and full graph)")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth <= config.n_hops:
        raise ConfigError(
            f"depth = {depth!r} is out of range; allowed: an integer > n_hops = {config.n_hops} (deeper than training)"
        )
    n, d = config.n_entities, config.out_degree
    if n * d**depth >= 2**62:
        raise ConfigError(
            f"depth = {depth} is more hops than this graph allows (n_entities*out_degree**depth must stay below 2**62)"
        )
    rels, tails, ood, ent, rel = _graph_arrays(dataset)
    rng = np.random.default_rng([seed, depth])
    size = config.probe_size if size is None else size
    id_chains = _sample_id_chains(rng, tails, ood, depth, size)
    ood_chains = _ood_chains(tails, ood, depth)
    ood_chains = np.sort(ood_chains[choose(rng, len(ood_chains), size)])
    return {
        "id": _chain_examples(id_chains, depth, "test_inferred_iid", rels, tails, ent, rel),
        "ood": _chain_examples(ood_chains, depth, "test_inferred_ood", rels, tails, ent, rel),
    }
