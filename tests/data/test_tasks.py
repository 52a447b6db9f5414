"""Task schemas: positions match the generated prompts, swaps change the graph's answer, look-ups agree."""

from __future__ import annotations

import pytest

from interp.data import (
    SCHEMAS,
    AttributeGraph,
    CompositionGraph,
    KGDataset,
    TaskSchema,
    TaskSchemaError,
    load_dataset,
    task_schema,
)
from interp.data.graphs import compare
from interp.data.tasks import ComparisonSchema, KHopSchema, register, schema_for
from interp.errors import GrokscopeError

DATASETS = {"composition": "composition", "khop": "khop", "comparison": "comparison", "complex": "complex_ds"}
"""Registered schema -> the data fixture generated with it."""

INFERRED = ("train_inferred", "test_id", "test_ood")


@pytest.fixture(params=list(DATASETS))
def case(request) -> tuple[str, KGDataset]:
    return request.param, request.getfixturevalue(DATASETS[request.param])


OWN_MODULE = {"algorithmic": "tests/data/test_algorithmic.py"}
"""Schemas tested in a module of their own (an operation table has no atomic facts and no OOD split,
which the shared cases here assume)."""


def test_every_registered_schema_is_tested():
    assert set(SCHEMAS) == set(DATASETS) | set(OWN_MODULE)


def test_positions_match_the_generated_prompts(case):
    name, ds = case
    schema = task_schema(ds)
    assert type(schema) is SCHEMAS[name] and schema is ds.schema  # chosen once, cached on the dataset
    for split in INFERRED:
        assert ds.examples(split), split
        for ex in ds.examples(split):
            assert len(ex.input_tokens) == schema.n_pos and schema.is_prompt(ex), (split, ex)
    for split in ("id_atomic", "ood_atomic"):
        assert all(schema.is_atomic(ex) and not schema.is_prompt(ex) for ex in ds.examples(split))
    kinds = {ex.type: schema.is_atomic(ex) for ex in ds.examples("train")}
    assert kinds == {"atomic": True, "inferred": False}


def test_schema_parts_name_each_other_consistently(case):
    _, ds = case
    schema = ds.schema
    assert len(set(schema.positions)) == schema.n_pos
    assert set(schema.swaps) <= set(schema.positions)
    assert set(schema.report_targets) <= set(schema.lens_targets) and "answer" in schema.lens_targets
    for name, state in schema.key_states.items():
        assert schema.positions[state.position] == name
        assert state.target in schema.lens_targets and state.swap in schema.swaps
    for target, where in schema.intermediates.items():
        assert target in schema.lens_targets and 0 <= where.position < schema.n_pos
        assert set(where.swaps) <= set(schema.swaps)


def test_lens_targets_are_tokens_of_each_prompt(case):
    _, ds = case
    schema = ds.schema
    for ex in ds.examples("test_id")[:20]:
        for which in schema.lens_targets:
            token = schema.target_token(ex, which)
            assert token in ds.vocab
            if which in schema.positions:
                assert token == ex.input_tokens[schema.position(which)]
        if isinstance(ds.kg, CompositionGraph):
            assert schema.target_token(ex, "bridge") == ds.kg.tail(*ex.input_tokens[:2])
        else:
            assert schema.target_token(ex, "v1") == f"<{ds.value(ex.input_tokens[2], ex.input_tokens[0])}>"


def _answer_by_graph(ds: KGDataset, prompt: tuple[str, ...]) -> str | None:
    if isinstance(ds.kg, CompositionGraph):
        e = prompt[0]
        for r in prompt[1:]:
            e = ds.tail(e, r) if e is not None else None
        return e
    a, _, e1, _, e2 = prompt[:5]
    return f"<{a[1:-1]}_{compare(ds.value(e1, a), ds.value(e2, a))}>"


def _uses_only_id_facts(ds: KGDataset, prompt: tuple[str, ...]) -> bool:
    if isinstance(ds.kg, CompositionGraph):
        e, ok = prompt[0], True
        for r in prompt[1:]:
            ok = ok and not ds.is_ood(e, r)
            e = ds.tail(e, r)
        return ok
    a, _, e1, _, e2 = prompt[:5]
    return not ds.is_ood(e1, a) and not ds.is_ood(e2, a)


@pytest.mark.parametrize("id_only", [True, False])
def test_every_swap_rule_changes_the_answer_by_the_graph(case, id_only):
    name, ds = case
    schema = ds.schema
    if not schema.swaps:
        assert name == "complex"  # the hard queries chain comparisons: no one-token counterfactual rule
        return
    for swap in schema.swaps:
        pos = schema.swap_position(swap)
        n_found = 0
        for ex in ds.examples("train_inferred")[:15]:
            found = schema.candidates(ds.kg, ex.input_tokens, swap, id_only)
            assert len(set(found)) == len(found)
            n_found += len(found)
            for prompt, answer in found:
                differs = [i for i, (x, y) in enumerate(zip(prompt, ex.input_tokens)) if x != y]
                assert differs == [pos] and len(prompt) == schema.n_pos
                assert prompt[pos][:3] == ex.input_tokens[pos][:3]  # a token of the same type
                assert answer == _answer_by_graph(ds, prompt) != ex.answer
                if id_only:
                    assert _uses_only_id_facts(ds, prompt)
        assert n_found > 0, swap


def test_interchange_sources_change_the_intermediate(case):
    _, ds = case
    schema = ds.schema
    for target in schema.intermediates:
        for ex in ds.examples("train_inferred")[:10]:
            for prompt, expected in schema.interchange_sources(ds.kg, ex, target):
                assert len(prompt) == schema.n_pos and _uses_only_id_facts(ds, prompt)
                assert _intermediate(ds, prompt, target) != _intermediate(ds, ex.input_tokens, target)
                assert expected == _answer_by_graph(ds, prompt) != ex.answer


def _intermediate(ds: KGDataset, prompt: tuple[str, ...], target: str) -> str | int | None:
    if target == "bridge":
        return ds.tail(prompt[0], prompt[1])
    return ds.value(prompt[2 if target == "v1" else 4], prompt[0])


def test_typed_graph_is_built_once_and_agrees_with_the_json(composition, comparison):
    kg = composition.kg
    assert isinstance(kg, CompositionGraph) and composition.kg is kg
    for h, r, t, ood in composition.graph["atomic"][:50]:
        assert kg.tail(h, r) == t and kg.is_ood(h, r) == bool(ood) and h in kg.heads_with(r)
    r = composition.graph["atomic"][0][1]
    assert kg.heads_with(r) == [f[0] for f in composition.graph["atomic"] if f[1] == r]  # the graph's order
    av = comparison.kg
    assert isinstance(av, AttributeGraph) and comparison.kg is av
    g = comparison.graph
    assert av.value(g["entities"][3], g["attributes"][1]) == g["values"][3][1]
    assert av.label(g["attributes"][0], g["entities"][0], g["entities"][0]) == 1


def test_khop_schema_comes_from_the_prompts_when_the_config_is_gone(khop, tmp_path):
    d = khop.save(tmp_path / "ds")
    (d / "config.json").unlink()
    (d / "graph.json").unlink()
    back = load_dataset(d)
    assert back.config is None and isinstance(back.schema, KHopSchema)
    assert back.schema.positions == ("h", "r1", "r2", "r3") and back.schema.label == "3-hop composition"
    assert [ex.provenance for ex in back.splits["test_id"]] == [ex.provenance for ex in khop.splits["test_id"]]


def test_a_task_is_one_schema_and_one_registration(comparison):
    class Reversed(ComparisonSchema):
        """A made-up task: the comparison table, asked the other way round."""

        name = "reversed"
        task = "reversed"

    try:
        register(Reversed)
        ds = KGDataset("reversed", None, comparison.vocab, comparison.splits, comparison.graph)
        assert isinstance(ds.schema, Reversed) and isinstance(ds.schema, TaskSchema)
        assert ds.schema.swap_position("e1") == 2 and isinstance(ds.kg, AttributeGraph)
    finally:
        SCHEMAS.pop("reversed", None)
    assert isinstance(schema_for("comparison"), ComparisonSchema)


def test_bad_requests_are_one_line_and_name_the_choices(composition, comparison, one_line):
    def message(call) -> str:
        with pytest.raises(TaskSchemaError) as err:
            call()
        return one_line(err.value)

    schema = composition.schema
    assert "choose one of h, r1, r2" in message(lambda: schema.swap_position("e1"))
    assert "choose one of h, r1, r2" in message(lambda: schema.position("x"))
    assert "choose from answer, bridge, h, r1, r2" in message(
        lambda: schema.target_token(composition.examples("test_id")[0], "v1")
    )
    assert "choose one of bridge" in message(lambda: schema.intermediate("v1"))
    assert "known: composition, khop, comparison, complex" in message(lambda: task_schema("nope"))
    odd = KGDataset("nope", None, comparison.vocab, comparison.splits, comparison.graph)
    assert "unknown task 'nope'; known: composition, comparison, complex" in message(lambda: odd.schema)
    assert "no token of a complex prompt" in message(lambda: SCHEMAS["complex"]().swap_position("e1"))
    assert "n_hops = 2 is out of range" in message(lambda: KHopSchema(2))
    with pytest.raises(GrokscopeError) as err:
        comparison.tail("<e_0>", "<r_0>")
    assert "this lookup is for composition datasets" in one_line(err.value)
