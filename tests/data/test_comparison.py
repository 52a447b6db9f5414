"""Comparison and complex reasoning: labels, ID/OOD pairs and hard queries mean what they should."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from interp.data import ComparisonConfig, KGDataset, generate

QUERY_SPLITS = ("train_inferred", "test_id", "test_ood")


def query(ex) -> tuple[str, str, str]:
    """(attribute, e1, e2) of a comparison prompt ``<attr><q><e1><mask><e2>[</q><a>]``."""
    attr, q, e1, mask, e2, *rest = ex.input_tokens
    assert (q, mask) == ("<q>", "<mask>")
    return attr, e1, e2


def is_query(ex) -> bool:
    return ex.input_tokens[0].startswith("<attr_")


def true_label(ds: KGDataset, attr: str, e1: str, e2: str) -> str:
    v1, v2 = ds.value(e1, attr), ds.value(e2, attr)
    return f"{attr[:-1]}_{0 if v1 < v2 else 1 if v1 == v2 else 2}>"


@pytest.fixture(params=["comparison", "complex_ds"])
def ds(request) -> KGDataset:
    return request.getfixturevalue(request.param)


def test_labels_agree_with_values(ds):
    for examples in ds.splits.values():
        for ex in examples:
            if is_query(ex):
                attr, e1, e2 = query(ex)
                assert ex.answer == true_label(ds, attr, e1, e2)
                if ex.type != "test_hard":
                    assert ex.provenance == {
                        "values": [ds.value(e1, attr), ds.value(e2, attr)],
                        "atomic": [[e1, attr, f"<{ds.value(e1, attr)}>"], [e2, attr, f"<{ds.value(e2, attr)}>"]],
                    }
            else:
                (e,) = [t for t in ex.input_tokens if t.startswith("<e_")]
                (attr,) = [t for t in ex.input_tokens if t.startswith("<attr_")]
                assert ex.answer == f"<{ds.value(e, attr)}>"


def test_per_attribute_entity_split(ds):
    cfg = ds.config
    assert ds.graph["attributes"] == [f"<attr_{j}>" for j in range(cfg.n_attributes)]
    for oods in ds.graph["ood_entities"].values():
        assert len(oods) == len(set(oods)) == round(cfg.ood_fraction * cfg.n_entities)
    values = [v for row in ds.graph["values"] for v in row]
    assert len(values) == cfg.n_entities * cfg.n_attributes and set(values) <= set(range(cfg.n_values))


def test_pairs_are_id_id_in_train_and_ood_ood_in_the_ood_test(ds):
    for ex in ds.splits["test_ood"]:
        attr, e1, e2 = query(ex)
        assert ds.is_ood(e1, attr) and ds.is_ood(e2, attr) and e1 != e2
    for ex in ds.splits["test_id"]:
        attr, e1, e2 = query(ex)
        assert not ds.is_ood(e1, attr) and not ds.is_ood(e2, attr)
    train_pairs = [query(ex) for ex in ds.splits["train"] if is_query(ex)]
    if ds.task == "comparison":
        assert all(not ds.is_ood(e1, a) and not ds.is_ood(e2, a) for a, e1, e2 in train_pairs)
    else:  # complex: ID-ID and ID-OOD, never OOD-OOD
        assert all(not (ds.is_ood(e1, a) and ds.is_ood(e2, a)) for a, e1, e2 in train_pairs)
        assert any(ds.is_ood(e1, a) or ds.is_ood(e2, a) for a, e1, e2 in train_pairs)


def test_no_test_pair_is_trained_in_either_order(ds):
    trained = {frozenset([(a, e1), (a, e2)]) for a, e1, e2 in map(query, filter(is_query, ds.splits["train"]))}
    for split in ("test_id", "test_ood"):
        for ex in ds.splits[split]:
            a, e1, e2 = query(ex)
            assert frozenset([(a, e1), (a, e2)]) not in trained


def test_comparison_training_counts(comparison):
    cfg = comparison.config
    train = comparison.splits["train"]
    atomic = [ex for ex in train if ex.type == "atomic"]
    assert sorted(ex.input_tokens for ex in atomic) == sorted(
        (e, a) for e in comparison.graph["entities"] for a in comparison.graph["attributes"]
    )
    n_id_atomic = sum(not comparison.is_ood(e, a) for e, a in (ex.input_tokens for ex in atomic))
    assert sum(ex.type == "inferred" for ex in train) == round(cfg.phi * n_id_atomic)


def test_both_orders_and_complete_ood_test_on_a_tiny_table():
    cfg = ComparisonConfig(n_entities=30, n_attributes=3, n_values=5, phi=2.0, probe_size=100_000)
    ds = generate(cfg)
    n_ood = round(cfg.ood_fraction * cfg.n_entities)
    test_ood = {query(ex) for ex in ds.splits["test_ood"]}
    assert len(test_ood) == cfg.n_attributes * n_ood * (n_ood - 1)  # every ordered OOD-OOD pair
    for split in ("test_id", "test_ood"):
        pairs = {query(ex) for ex in ds.splits[split]}
        assert pairs == {(a, e2, e1) for a, e1, e2 in pairs}  # both orders of each pair
    n_id = cfg.n_entities - n_ood
    n_test = len(ds.splits["test_id"]) // 2  # held-out pairs, Bernoulli(0.1) of all ID-ID pairs
    n_pairs = cfg.n_attributes * n_id * (n_id - 1) // 2
    assert 0 < n_test < 0.2 * n_pairs


# ------------------------------------------------------------------------------ complex
def test_complex_format_and_training_set(complex_ds):
    ds, cfg = complex_ds, complex_ds.config
    for ex in ds.splits["train"] + ds.splits["test_ood"]:
        assert ex.input_tokens[-2:] == ("</q>", "<a>") and ex.target_tokens[-1] == "</a>"
        record = ex.to_record()
        assert record["target_text"] == record["input_text"] + "<a>" + ex.answer + "</a>"  # the notebook's format
    atomic = [ex for ex in ds.splits["train"] if ex.type == "atomic"]
    assert all(ex.input_tokens[0] == "<q>" for ex in atomic)
    # OOD atomic facts are not trained: every trained atomic fact is ID, and all ID ones are there
    facts = {(ex.input_tokens[1], ex.input_tokens[2]) for ex in atomic}
    assert facts == {(e, a) for e in ds.graph["entities"] for a in ds.graph["attributes"] if not ds.is_ood(e, a)}
    n_ood = round(cfg.ood_fraction * cfg.n_entities)
    n_id = cfg.n_entities - n_ood
    queries = map(query, filter(is_query, ds.splits["train"]))
    cross = [(a, e1, e2) for a, e1, e2 in queries if ds.is_ood(e1, a) or ds.is_ood(e2, a)]
    assert len(cross) == round(cfg.train_id_ood_fraction * 2 * cfg.n_attributes * n_id * n_ood)
    assert all(ds.is_ood(*ex.input_tokens[1:3]) for ex in ds.splits["ood_atomic"])


def test_complex_hard_queries(complex_ds):
    ds, cfg = complex_ds, complex_ds.config
    hard = ds.splits["test_ood"]
    labels = [ex.answer[-2] for ex in hard]
    assert {lab: labels.count(lab) for lab in "012"} == {lab: cfg.n_hard_per_label for lab in "012"}
    assert {ex.type for ex in hard} == {"test_hard"}
    assert len({query(ex) for ex in hard}) == len(hard)
    train_atomic = {(ex.input_tokens[1], ex.input_tokens[2]) for ex in ds.splits["train"] if ex.type == "atomic"}
    train_queries = {query(ex): ex.answer for ex in ds.splits["train"] if is_query(ex)}
    for ex in hard:
        attr, e1, e2 = query(ex)
        assert ds.is_ood(e1, attr) and ds.is_ood(e2, attr)
        assert (e1, attr) not in train_atomic and (e2, attr) not in train_atomic
        assert ex.answer == true_label(ds, attr, e1, e2)
        assert derive_from_provenance(ex, train_atomic, train_queries) == ex.answer


def derive_from_provenance(ex, train_atomic, train_queries) -> str:
    """Walk the provenance chains, checking each ">=" step against the training data only."""
    attr, e1, e2 = query(ex)
    prov = ex.provenance
    atomic_values = {(e, a): int(v.strip("<>")) for e, a, v in prov["atomic"]}
    used = {tuple(c[:3]): c[3] for c in prov["comparisons"]}
    for e, a in atomic_values:
        assert (e, a) in train_atomic
    for q, label in used.items():
        assert train_queries[q] == label

    def at_least(x: str, y: str) -> bool:  # is x >= y stated by a trained fact named in the provenance?
        if (x, attr) in atomic_values and (y, attr) in atomic_values:
            return atomic_values[x, attr] >= atomic_values[y, attr]
        if (attr, x, y) in used:
            return used[attr, x, y][-2] in "12"
        if (attr, y, x) in used:
            return used[attr, y, x][-2] in "01"
        return False

    directions = set()
    for chain in prov["chains"]:
        assert all(at_least(x, y) for x, y in itertools.pairwise(chain))
        assert all((x, attr) not in atomic_values or (x, attr) in train_atomic for x in chain[1:-1])
        directions.add((chain[0], chain[-1]))
    label = 1 if directions == {(e1, e2), (e2, e1)} else 2 if directions == {(e1, e2)} else 0
    assert directions in ({(e1, e2)}, {(e2, e1)}, {(e1, e2), (e2, e1)})
    return f"{attr[:-1]}_{label}>"


def test_complex_hard_queries_need_the_id_atomic_facts(complex_ds):
    """The notebook's check, with networkx: no path between the two OOD entities in the graph of
    trained comparisons alone ("easy"), but a path once the ID atomic facts order the ID entities."""
    ds = complex_ds
    by_attr: dict[str, list] = {}
    for ex in ds.splits["test_ood"]:
        by_attr.setdefault(query(ex)[0], []).append(ex)
    trained = [(query(ex), ex.answer) for ex in ds.splits["train"] if is_query(ex)]
    for attr, examples in by_attr.items():
        easy = nx.DiGraph()  # a -> b iff a >= b is stated by a trained comparison
        for (a, e1, e2), label in trained:
            if a == attr:
                lab = int(label[-2])
                if lab >= 1:
                    easy.add_edge(e1, e2)
                if lab <= 1:
                    easy.add_edge(e2, e1)
        # plus x -> y iff v_x >= v_y for ID entities: a chain through the ID entities sorted by
        # value, both ways between equal values, has the same paths as all those edges
        full = easy.copy()
        ids = sorted((e for e in ds.graph["entities"] if not ds.is_ood(e, attr)), key=lambda e: -ds.value(e, attr))
        for x, y in itertools.pairwise(ids):
            full.add_edge(x, y)
            if ds.value(x, attr) == ds.value(y, attr):
                full.add_edge(y, x)
        for ex in examples:
            _, e1, e2 = query(ex)
            for graph in (easy, full):
                graph.add_nodes_from([e1, e2])
            assert not nx.has_path(easy, e1, e2) and not nx.has_path(easy, e2, e1)
            ge, le = nx.has_path(full, e1, e2), nx.has_path(full, e2, e1)
            assert ex.answer[-2] == ("1" if ge and le else "2" if ge else "0" if le else "?")
