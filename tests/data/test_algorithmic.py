"""The algorithmic tasks: operation tables, their split, their schema, and files that round-trip."""

from __future__ import annotations

import json

import pytest

from interp.data import AlgorithmicConfig, data_config, generate, load_dataset
from interp.data.operations import OperationTable, apply, permutations, table
from interp.data.tasks import task_schema
from interp.errors import ConfigError, DatasetFormatError


@pytest.mark.parametrize(
    ("operation", "a", "b", "expected"),
    [("add", 5, 9, 3), ("sub", 2, 9, 4), ("mul", 5, 9, 1), ("x2y2", 3, 4, 3), ("div", 1, 2, 6), ("div", 3, 0, None)],
)
def test_modular_operations(operation, a, b, expected):
    assert apply(operation, 11, a, b) == expected


def test_division_inverts_multiplication():
    p = 13
    for a in range(p):
        for b in range(1, p):
            assert apply("mul", p, apply("div", p, a, b), b) == a


def test_s5_is_a_group_under_composition():
    perms = permutations()
    assert len(perms) == 120 and perms[0] == (0, 1, 2, 3, 4)
    identity = 0
    assert all(apply("s5", 0, identity, x) == x == apply("s5", 0, x, identity) for x in range(120))
    # associative, and every element has an inverse; not commutative
    for x, y, z in [(5, 17, 99), (1, 2, 3), (119, 60, 7)]:
        assert apply("s5", 0, apply("s5", 0, x, y), z) == apply("s5", 0, x, apply("s5", 0, y, z))
    assert all(any(apply("s5", 0, x, y) == identity for y in range(120)) for x in range(0, 120, 7))
    assert any(apply("s5", 0, x, y) != apply("s5", 0, y, x) for x in range(10) for y in range(10))
    # (a o b)(i) = a(b(i))
    a, b = perms[7], perms[42]
    assert perms[apply("s5", 0, 7, 42)] == tuple(a[b[i]] for i in range(5))


def test_the_split_covers_the_table_once_with_the_fraction_asked():
    cfg = AlgorithmicConfig(operation="add", modulus=23, train_fraction=0.4, probe_size=50, seed=3)
    ds = generate(cfg)
    pairs = [tuple(ex.provenance["operands"]) for ex in ds.splits["train"] + ds.splits["test_id"]]
    assert sorted(pairs) == [(a, b) for a, b, _ in table("add", 23)]
    assert len(ds.splits["train"]) == round(0.4 * 23 * 23)
    for ex in ds.splits["train"] + ds.splits["test_id"]:
        a, b = ex.provenance["operands"]
        assert ex.input_tokens == (f"<{a}>", f"<{b}>", "<op_add>") and ex.answer == f"<{(a + b) % 23}>"
    train = {ex.input_tokens for ex in ds.splits["train"]}
    assert (
        all(ex.input_tokens in train for ex in ds.splits["train_inferred"]) and len(ds.splits["train_inferred"]) == 50
    )
    assert not ds.splits["id_atomic"] and not ds.splits["ood_atomic"] and not ds.splits["test_ood"]
    assert ds.kg.train_pairs == {tuple(ex.provenance["operands"]) for ex in ds.splits["train"]}
    # another seed, another split; the same seed, the same one
    assert generate(cfg).splits == ds.splits
    other = generate(AlgorithmicConfig(operation="add", modulus=23, train_fraction=0.4, probe_size=50, seed=4))
    assert other.splits["train"] != ds.splits["train"]


def test_division_leaves_out_division_by_zero():
    ds = generate(AlgorithmicConfig(operation="div", modulus=11, train_fraction=0.5))
    assert len(ds.splits["train"]) + len(ds.splits["test_id"]) == 11 * 10
    assert all(ex.input_tokens[1] != "<0>" for ex in ds.splits["train"] + ds.splits["test_id"])


def test_schema_positions_swaps_and_counterfactuals():
    ds = generate(AlgorithmicConfig(operation="add", modulus=17, train_fraction=0.5))
    schema = task_schema(ds)
    assert schema.positions == ("a", "b", "op") and schema.swap_position("b") == 1
    ex = ds.splits["test_id"][0]
    assert schema.target_token(ex, "a") == ex.input_tokens[0] and schema.target_token(ex, "answer") == ex.answer
    every = schema.candidates(ds.kg, ex.input_tokens, "a", id_only=False)
    assert len(every) == 16  # every other a changes a + b
    for prompt, answer in every:
        a, b = int(prompt[0][1:-1]), int(prompt[1][1:-1])
        assert prompt[1:] == ex.input_tokens[1:] and answer == f"<{(a + b) % 17}>"
    trained = schema.candidates(ds.kg, ex.input_tokens, "b", id_only=True)
    assert trained and all((int(p[0][1:-1]), int(p[1][1:-1])) in ds.kg.train_pairs for p, _ in trained)
    assert len(trained) < 16


def test_files_round_trip_and_a_bad_record_is_one_line(tmp_path):
    ds = generate(data_config("modular-addition", ["modulus=13", "probe_size=20"]))
    ds.save(tmp_path / "d")
    back = load_dataset(tmp_path / "d")
    assert back.splits == ds.splits and back.vocab == ds.vocab and back.graph == ds.graph
    assert isinstance(back.kg, OperationTable) and back.kg.operation == "add"
    # without config.json the operator token says which task it is
    (tmp_path / "d" / "config.json").unlink()
    assert load_dataset(tmp_path / "d").task == "algorithmic"
    lines = (tmp_path / "d" / "train.json").read_text().splitlines()
    lines[1] = json.dumps({"input_text": "<1><op_add><2>", "target_text": "<1><op_add><2><3></a>"}) + ","
    (tmp_path / "d" / "train.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"train\.json:2: <1><op_add><2> is not an algorithmic prompt"):
        load_dataset(tmp_path / "d")


def test_a_graph_without_its_pairs_is_refused(tmp_path):
    ds = generate(data_config("modular-addition", ["modulus=7"]))
    ds.save(tmp_path)
    (tmp_path / "graph.json").write_text(json.dumps({"operation": "add", "modulus": 7, "train_pairs": [[1, 9]]}))
    with pytest.raises(DatasetFormatError, match="train_pairs must be a list of"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["operation=pow"], "operation = 'pow' is not allowed"),
        (["operation=div", "modulus=12"], "must be a prime"),
        (["train_fraction=1.0"], "train_fraction"),
        (["modulus=1"], "modulus"),
    ],
)
def test_bad_configs_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        data_config("modular-addition", overrides)
