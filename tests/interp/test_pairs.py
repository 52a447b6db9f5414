"""One paired-prompt type: counterfactual batches and circuit tasks are both PromptPairs, rows kept aligned."""

from __future__ import annotations

import pytest
import torch

from circuits.tasks import Task, composition_task, dataset_task, task_from_counterfactuals
from interp.counterfactuals import CounterfactualBatch, CounterfactualError, counterfactual_batch
from interp.data import ComplexConfig, generate
from interp.intervene import InterventionError, ShapeMismatchError
from interp.pairs import PromptPairs, concat_pairs
from interp.tracing import trace_counterfactual

from ..tiny import tiny_bridge


def test_counterfactual_batches_and_tasks_are_one_type(graph):
    assert Task is PromptPairs and CounterfactualBatch is PromptPairs
    batch = counterfactual_batch(graph, "train_inferred", "r1", n=20, seed=2)
    assert isinstance(batch, PromptPairs)
    assert batch.positions == list(graph.schema.positions) and batch.vocab is graph.vocab
    assert (batch.swap, batch.position) == ("r1", 1) and batch.swaps == ["r1"] * len(batch)
    assert batch.name == "composition (r1 swapped)"
    task = composition_task(graph, n=10)
    assert isinstance(task, PromptPairs) and task.swaps is not None and len(task.examples) == len(task)


def test_rows_stay_aligned_when_sliced_and_concatenated(graph):
    parts = [counterfactual_batch(graph, "train_inferred", s, n=12, seed=0) for s in ("h", "r2")]
    both = task_from_counterfactuals(parts, positions=["h", "r1", "r2"], name="two")
    assert len(both) == sum(map(len, parts)) and both.index == parts[0].index + parts[1].index
    rows = [0, len(parts[0]), len(both) - 1]
    sub = both[rows]
    for k, row in enumerate(rows):
        assert torch.equal(sub.corrupt[k], both.corrupt[row])
        assert sub.counterfactuals[k] == both.counterfactuals[row] and sub.swaps[k] == both.swaps[row]
        assert graph.vocab.encode(sub.counterfactuals[k].input_tokens) == sub.corrupt[k].tolist()
        assert sub.decode(k, "corrupt") == list(sub.counterfactuals[k].input_tokens)
    assert sub.examples[0] is both.examples[0]


def test_dataset_task_mixes_the_schema_swaps(graph, comparison_graph):
    task = dataset_task(graph, n=8, seed=1)
    assert sorted(set(task.swaps)) == ["h", "r1", "r2"] and task.positions == ["h", "r1", "r2"]
    assert dataset_task(comparison_graph, n=8).positions == ["attr", "q", "e1", "mask", "e2"]


def test_bad_pairs_are_one_line(graph, one_line):
    task = composition_task(graph, n=6)
    with pytest.raises(InterventionError) as err:
        _ = task.swap
    assert "do not swap one token in every row" in one_line(err.value)
    with pytest.raises(ShapeMismatchError) as err:
        PromptPairs("x", task.clean, task.corrupt, task.clean_answer, task.corrupt_answer, ["a", "b"])
    one_line(err.value)
    with pytest.raises(InterventionError) as err:
        concat_pairs([], name="none")
    one_line(err.value)


def test_complex_has_no_counterfactuals(one_line):
    ds = generate(ComplexConfig(n_entities=250, n_attributes=6, n_hard_per_label=5, probe_size=50))
    with pytest.raises(CounterfactualError) as err:
        counterfactual_batch(ds, "train_inferred", "e1")
    assert "complex" in one_line(err.value)
    with pytest.raises(CounterfactualError) as err:
        trace_counterfactual(tiny_bridge(ds, 9), ds)
    assert "no token of a complex prompt can be swapped" in one_line(err.value)
