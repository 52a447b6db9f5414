"""Composition (2-hop and k-hop): every split means what the paper's recipe says it means."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from interp.data import SPECIALS, KGDataset

INFERRED_SPLITS = ("train_inferred", "test_id", "test_ood")


def inferred(ds: KGDataset, split: str):
    return [ex for ex in ds.splits[split] if split != "train" or ex.type == "inferred"]


def all_chains(ds: KGDataset) -> dict[tuple[str, ...], tuple[str, list[bool]]]:
    """Every k-chain of the graph, re-derived from the atomic facts: prompt -> (answer, OOD flag per hop)."""
    k = ds.config.n_hops
    out_edges: dict[str, list[tuple[str, str, bool]]] = {}
    for h, r, t, ood in ds.graph["atomic"]:
        out_edges.setdefault(h, []).append((r, t, ood))
    chains = {}
    frontier = [((h,), h, []) for h in out_edges]
    for _ in range(k):
        frontier = [
            (prompt + (r,), t, flags + [ood]) for prompt, e, flags in frontier for r, t, ood in out_edges.get(e, [])
        ]
    for prompt, t, flags in frontier:
        chains[prompt] = (t, flags)
    return chains


@pytest.fixture(params=["composition", "khop"])
def ds(request) -> KGDataset:
    return request.getfixturevalue(request.param)


def test_graph_shape(ds):
    cfg = ds.config
    facts = ds.graph["atomic"]
    assert len(facts) == cfg.n_entities * cfg.out_degree
    per_head = Counter(h for h, *_ in facts)
    assert set(per_head.values()) == {cfg.out_degree} and len(per_head) == cfg.n_entities
    assert len({(h, r) for h, r, _, _ in facts}) == len(facts)  # distinct relations per head
    n_ood = sum(ood for *_, ood in facts)
    assert n_ood == round(cfg.ood_fraction * len(facts))
    assert ds.vocab.tokens == (
        [f"<e_{i}>" for i in range(cfg.n_entities)]
        + [f"<r_{i}>" for i in range(cfg.n_relations)]
        + SPECIALS
        + ["<pad>"]
    )


def test_train_is_all_atomic_facts_plus_phi_times_id_atomic_inferred(ds):
    cfg = ds.config
    atomic = [ex for ex in ds.splits["train"] if ex.type == "atomic"]
    trained = sorted((*ex.input_tokens, ex.answer) for ex in atomic)
    assert trained == sorted((h, r, t) for h, r, t, _ in ds.graph["atomic"])
    n_id_atomic = sum(not ood for *_, ood in ds.graph["atomic"])
    assert len(inferred(ds, "train")) == round(cfg.phi * n_id_atomic)
    assert len(ds.splits["train"]) == len(atomic) + len(inferred(ds, "train"))
    assert all(ex.target_tokens[-1] == "</a>" and len(ex.target_tokens) == 2 for ex in ds.splits["train"])


def test_inferred_facts_follow_from_their_atomic_facts(ds):
    k = ds.config.n_hops
    facts = {(h, r, t) for h, r, t, _ in ds.graph["atomic"]}
    for split in ("train",) + INFERRED_SPLITS:
        for ex in inferred(ds, split):
            h, *rels = ex.input_tokens
            prov = ex.provenance
            assert len(rels) == k and len(prov["atomic"]) == k and len(prov["bridges"]) == k - 1
            # walk the provenance: h -r1-> b1 -r2-> ... -rk-> answer, each hop a fact of the graph
            e = h
            for i, (fh, fr, ft) in enumerate(prov["atomic"]):
                assert (fh, fr) == (e, rels[i]) and (fh, fr, ft) in facts
                e = ft
                if i < k - 1:
                    assert prov["bridges"][i] == ft
            assert e == ex.answer
            # and re-derive from the graph alone
            e = h
            for r in rels:
                e = ds.tail(e, r)
            assert e == ex.answer


def test_ood_and_id_inferred_facts_use_only_ood_and_id_atomic_facts(ds):
    for ex in inferred(ds, "test_ood"):
        assert all(ds.is_ood(h, r) for h, r, _ in ex.provenance["atomic"])
    for split in ("train", "train_inferred", "test_id"):
        for ex in inferred(ds, split):
            assert not any(ds.is_ood(h, r) for h, r, _ in ex.provenance["atomic"])


def test_no_test_fact_is_trained(ds):
    train = {ex.input_tokens for ex in ds.splits["train"]}
    for split in ("test_id", "test_ood"):
        assert not train & {ex.input_tokens for ex in ds.splits[split]}


def test_test_sets_are_the_recipes_candidates(ds):
    """Re-enumerate every chain: OOD test = all-OOD chains, ID test = a Bernoulli slice of all-ID ones."""
    cfg = ds.config
    chains = all_chains(ds)
    assert len(chains) == cfg.n_entities * cfg.out_degree**cfg.n_hops
    all_ood = {p for p, (_, flags) in chains.items() if all(flags)}
    all_id = {p for p, (_, flags) in chains.items() if not any(flags)}
    for split in ("train",) + INFERRED_SPLITS:
        for ex in inferred(ds, split):
            assert chains[ex.input_tokens][0] == ex.answer
    test_ood = {ex.input_tokens for ex in ds.splits["test_ood"]}
    assert test_ood <= all_ood and len(test_ood) == min(cfg.probe_size, len(all_ood)) > 0
    test_id = {ex.input_tokens for ex in ds.splits["test_id"]}
    assert test_id <= all_id and {ex.input_tokens for ex in inferred(ds, "train")} <= all_id - test_id
    if len(test_id) < cfg.probe_size:  # not subsampled: the whole held-out set, Binomial(#ID chains, fraction)
        n, p = len(all_id), cfg.test_id_fraction
        assert abs(len(test_id) - n * p) < 6 * math.sqrt(n * p * (1 - p))


def test_probes(ds):
    cfg = ds.config
    train = {ex.input_tokens: ex for ex in ds.splits["train"]}
    expected_types = {
        "id_atomic": "id_atomic",
        "ood_atomic": "ood_atomic",
        "train_inferred": "train_inferred",
        "test_id": "test_inferred_iid",
        "test_ood": "test_inferred_ood",
    }
    for split, kind in expected_types.items():
        examples = ds.splits[split]
        assert 0 < len(examples) <= cfg.probe_size
        assert {ex.type for ex in examples} == {kind}
        assert len({ex.input_tokens for ex in examples}) == len(examples)  # drawn without replacement
    for ex in ds.splits["id_atomic"] + ds.splits["ood_atomic"] + ds.splits["train_inferred"]:
        assert train[ex.input_tokens].target_tokens == ex.target_tokens
    assert all(not ds.is_ood(*ex.input_tokens) for ex in ds.splits["id_atomic"])
    assert all(ds.is_ood(*ex.input_tokens) for ex in ds.splits["ood_atomic"])
    assert len(ds.splits["ood_atomic"]) == min(cfg.probe_size, round(cfg.ood_fraction * cfg.n_atomic))


def test_lookups(composition):
    h, r, t, ood = composition.graph["atomic"][5]
    assert composition.tail(h, r) == t and composition.is_ood(h, r) == ood
    assert composition.tail(h, "<r_no_such>") is None
    rels = composition.relations_of(h)
    assert len(rels) == composition.config.out_degree and r in rels
    assert [composition.tail(h, x) for x in rels] == [f[2] for f in composition.graph["atomic"] if f[0] == h]


def test_khop_prompts_have_k_relations(khop):
    lengths = Counter(len(ex.input_tokens) for ex in khop.splits["train"])
    assert set(lengths) == {2, 4}
    assert all(len(ex.input_tokens) == 4 for s in INFERRED_SPLITS for ex in khop.splits[s])


def test_relation_choice_uses_many_relations(composition):
    # each head draws its relations independently: every relation is used, tails spread over entities
    facts = composition.graph["atomic"]
    assert {r for _, r, _, _ in facts} == {f"<r_{i}>" for i in range(composition.config.n_relations)}
    assert len({t for *_, t, _ in facts}) > 0.9 * composition.config.n_entities
