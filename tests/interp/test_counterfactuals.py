"""Counterfactuals: one token of the same type swapped, and the graph's answer really changes."""

from __future__ import annotations

import pytest
import torch

from interp.counterfactuals import CounterfactualError, counterfactual, counterfactual_batch
from interp.data import KGDataset, compare


def _follow(graph, h, rels):
    e = h
    for r in rels:
        e = graph.tail(e, r)
    return e


@pytest.mark.parametrize("swap", ["h", "r1", "r2"])
def test_composition_counterfactuals_change_the_answer(graph, swap):
    batch = counterfactual_batch(graph, "train_inferred", swap, n=40, seed=1)
    assert len(batch) >= 20  # most inferred facts have a counterfactual in this graph
    pos = {"h": 0, "r1": 1, "r2": 2}[swap]
    assert batch.position == pos
    differs = batch.clean != batch.corrupt
    assert bool(differs[:, pos].all()) and int(differs.sum()) == len(batch)
    for ex, cf, ans in zip(batch.examples, batch.counterfactuals, batch.corrupt_answer.tolist()):
        h, *rels = cf.input_tokens
        truth = _follow(graph, h, rels)
        assert truth == cf.answer == graph.vocab.decode([ans])[0]
        assert truth != ex.answer
        assert cf.input_tokens[pos][:3] == ex.input_tokens[pos][:3]  # same type: <e_ or <r_
        # in-distribution by default: every hop of the counterfactual chain is an ID fact
        e = h
        for r in rels:
            assert not graph.is_ood(e, r)
            e = graph.tail(e, r)
    assert torch.equal(batch.clean_answer, torch.tensor(graph.vocab.encode([ex.answer for ex in batch.examples])))


@pytest.mark.parametrize("swap", ["e1", "e2", "attr"])
def test_comparison_counterfactuals_flip_the_label(comparison_graph, swap):
    ds = comparison_graph
    batch = counterfactual_batch(ds, "train_inferred", swap, n=30)
    assert len(batch) >= 15
    for ex, cf in zip(batch.examples, batch.counterfactuals):
        a, _, e1, _, e2 = cf.input_tokens
        label = compare(ds.value(e1, a), ds.value(e2, a))
        assert cf.answer == f"<{a[1:-1]}_{label}>"
        clean_a, _, c1, _, c2 = ex.input_tokens
        assert label != compare(ds.value(c1, clean_a), ds.value(c2, clean_a))
        assert sum(x != y for x, y in zip(ex.input_tokens, cf.input_tokens)) == 1


def test_counterfactuals_are_reproducible(graph):
    a = counterfactual_batch(graph, "train_inferred", "h", n=20, seed=3)
    b = counterfactual_batch(graph, "train_inferred", "h", n=20, seed=3)
    assert torch.equal(a.corrupt, b.corrupt) and a.index == b.index


def test_examples_without_counterfactual_are_dropped(graph):
    examples = graph.examples("train_inferred")[:30]
    batch = counterfactual_batch(graph, examples, "r2")
    alone = [counterfactual(graph, ex, "r2") is not None for ex in examples]
    assert batch.index == [i for i, ok in enumerate(alone) if ok]


def test_unsupported_requests_are_refused(graph, comparison_graph, one_line):
    with pytest.raises(CounterfactualError) as err:
        counterfactual_batch(graph, "train_inferred", "e1")
    assert "h, r1, r2" in one_line(err.value)
    with pytest.raises(CounterfactualError) as err:
        counterfactual(graph, graph.examples("id_atomic")[0], "r2")
    one_line(err.value)
    c = comparison_graph
    complex_ds = KGDataset("complex", None, c.vocab, c.splits, c.graph)
    with pytest.raises(CounterfactualError) as err:
        counterfactual_batch(complex_ds, "train_inferred", "e1")
    one_line(err.value)
