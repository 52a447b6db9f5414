"""Composition: infer (h, r1, ..., rk) -> t by chaining k atomic facts through bridge entities.

Recipe (Wang et al. 2024, ``composition.ipynb``): every entity gets ``out_degree`` distinct
random relations, each to a uniformly random tail. Exactly round(ood_fraction * #atomic)
atomic *facts* are OOD; all atomic facts are trained. Every k-chain of facts
h -r1-> b1 -r2-> ... -rk-> t is a candidate inferred fact ``<h><r1>...<rk>`` -> ``<t></a>``:
all hops ID -> training candidate, or (Bernoulli ``test_id_fraction``) ID test; all hops
OOD -> OOD test; mixed -> discarded. Training adds round(phi * #ID atomic) sampled ID
inferred facts. Chains are enumerated with numpy as indices (h, slot_1, ..., slot_k), so
the paper's 800K two-hop candidates take well under a second.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from interp.data.config import CompositionConfig
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

    # Every k-chain, as a flat index into shape (n, d, ..., d): are all its hops ID / all OOD?
    end = np.arange(n, dtype=np.int32)
    all_id = np.ones(n, dtype=bool)
    all_ood = np.ones(n, dtype=bool)
    for hop in range(k):
        all_id = (all_id[:, None] & ~ood[end]).reshape(-1)
        all_ood = (all_ood[:, None] & ood[end]).reshape(-1)
        if hop < k - 1:
            end = tails[end].reshape(-1)
    del end
    id_chains = np.flatnonzero(all_id)
    ood_chains = np.flatnonzero(all_ood)
    del all_id, all_ood
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

    def inferred_examples(chains: np.ndarray, kind: str) -> list[Example]:
        heads, *slots = np.unravel_index(chains, (n,) + (d,) * k)
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
    splits = {
        "train": id_atomic + ood_atomic + inferred,
        "id_atomic": probe(id_atomic, "id_atomic"),
        "ood_atomic": probe(ood_atomic, "ood_atomic"),
        "train_inferred": probe(inferred, "train_inferred"),
        "test_id": probe_chains(test_id_chains, "test_inferred_iid"),
        "test_ood": probe_chains(ood_chains, "test_inferred_ood"),
    }
    ood_l = ood.tolist()
    graph = {"atomic": [fact(h, s) + [ood_l[h][s]] for h in range(n) for s in range(d)]}
    return KGDataset("composition", config, composition_vocab(n, config.n_relations), splits, graph)
