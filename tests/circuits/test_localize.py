"""Interchange pairs follow the knowledge graph; the interchange test is exact at its ends."""

from __future__ import annotations

import pytest
import torch

from circuits.localize import bridge_pairs, interchange, locate_bridge, locate_values, value_pairs
from circuits.tasks import dataset_task
from interp.data import CompositionConfig, compare, generate
from interp.patching import top1


def test_bridge_pairs_follow_the_graph(graph):
    examples = graph.examples("train_inferred")[:40]
    pairs = bridge_pairs(graph, examples, seed=1)
    assert len(pairs.examples) > 20
    vocab = graph.vocab
    for ex, src, expected in zip(pairs.examples, pairs.sources, pairs.expected.tolist()):
        h, r1, r2 = ex.input_tokens
        h2, r1b, r2b = src
        b, b2 = graph.tail(h, r1), graph.tail(h2, r1b)
        assert r2b == r2 and b2 != b
        assert vocab.id(graph.tail(b2, r2)) == expected != vocab.id(ex.answer)
        assert not graph.is_ood(h2, r1b) and not graph.is_ood(b2, r2)


def test_value_pairs_follow_the_table(comparison_graph):
    ds = comparison_graph
    examples = ds.examples("train_inferred")[:30]
    for which in ("v1", "v2"):
        pairs = value_pairs(ds, examples, which, seed=0)
        assert len(pairs.examples) == len(examples)
        for ex, src, expected in zip(pairs.examples, pairs.sources, pairs.expected.tolist()):
            a, _, e1, _, e2 = ex.input_tokens
            sa, _, s1, _, s2 = src
            assert sa == a
            assert (s2 == e2 and s1 != e1) if which == "v1" else (s1 == e1 and s2 != e2)
            k = compare(ds.value(s1, a), ds.value(s2, a))
            assert ds.vocab.decode([expected])[0] == f"<{a[1:-1]}_{k}>" != ex.answer


def test_interchange_is_exact_at_its_ends(bridge, graph):
    pairs = bridge_pairs(graph, graph.examples("train_inferred")[:30], seed=0)
    n = len(bridge.blocks)
    # the final residual at the answer position is the whole source run: it answers what the source answers
    source_top1 = top1(bridge, pairs.source)
    rates = interchange(bridge, pairs.clean, pairs.source, source_top1, position=2)
    assert float(rates[n]) == 1.0
    # the r2 embedding is the same in both prompts: pasting it changes nothing
    clean_rate = float((top1(bridge, pairs.clean) == source_top1).double().mean())
    assert float(rates[0]) == pytest.approx(clean_rate, abs=1e-6)  # a float32 mean


def test_localisations_have_the_documented_shapes(bridge, graph, comparison_bridge, comparison_graph):
    loc = locate_bridge(bridge, graph, n=20)
    n = len(bridge.blocks)
    assert loc.position_name == "r1"
    for t in (loc.decodable, loc.mrr, loc.causal):
        assert t.shape == (n + 1, 3) and bool(((t >= 0) & (t <= 1)).all())
    assert loc.interchange.shape == (n + 1,)
    assert 0 <= loc.best_layer <= n
    assert float(loc.causal[0, 2]) == 0.0  # S[0, r2] is the r2 embedding: swapping h or r1 leaves it alone
    summary = loc.summary()
    assert summary["position"] == "r1" and len(summary["interchange"]) == n + 1
    values = locate_values(comparison_bridge, comparison_graph, n=20)
    assert [v.position_name for v in values.values()] == ["e1", "e2"]
    assert torch.equal(values["v1"].causal[0, [0, 1, 3, 4]], torch.zeros(4, dtype=torch.float64))


def test_khop_bridge_sources_and_tasks_follow_the_schema():
    ds = generate(CompositionConfig(n_entities=40, n_relations=10, out_degree=3, n_hops=3, phi=2.0, probe_size=60))
    pairs = bridge_pairs(ds, ds.examples("train_inferred")[:20], seed=0)
    assert len(pairs.examples) > 5
    for ex, src, expected in zip(pairs.examples, pairs.sources, pairs.expected.tolist()):
        h, r1, *rest = ex.input_tokens
        h2, r1b, *rest2 = src
        assert rest2 == rest and ds.tail(h2, r1b) != ds.tail(h, r1)
        e = ds.tail(h2, r1b)
        for r in rest:
            assert not ds.is_ood(e, r)
            e = ds.tail(e, r)
        assert ds.vocab.id(e) == expected != ds.vocab.id(ex.answer)
    task = dataset_task(ds, n=10)
    assert task.positions == ["h", "r1", "r2", "r3"] and set(task.swaps) == {"h", "r1", "r2", "r3"}
