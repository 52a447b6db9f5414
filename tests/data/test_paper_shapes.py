"""The paper-layout reader's naming and shape rules: a dataset outside them is refused at its record, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.data import load_dataset
from interp.data.vocab import token_role
from interp.errors import DatasetFormatError

SPECIAL = ["<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>"]
VOCAB = ["<e_0>", "<e_1>", "<e_2>", "<r_0>", "<r_1>"] + SPECIAL


def rec(inp: str, ans: str, kind: str | None = None) -> dict:
    r = {"input_text": inp, "target_text": inp + ans + "</a>"}
    return r if kind is None else {**r, "type": kind}


def write(d: Path, vocab: list[str], train: list[dict], test: list[dict]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, obj in (("vocab.json", vocab), ("train.json", train), ("test.json", test)):
        (d / name).write_text("[\n" + ",\n".join(json.dumps(x) for x in obj) + "\n]")
    return d


TRAIN = [rec("<e_0><r_0>", "<e_1>"), rec("<e_1><r_1>", "<e_2>"), rec("<e_0><r_0><r_1>", "<e_2>")]
TEST = [rec("<e_0><r_0>", "<e_1>", "id_atomic"), rec("<e_0><r_0><r_1>", "<e_2>", "train_inferred")]


def test_token_roles_follow_the_paper_names():
    assert [token_role(t) for t in ("<e_12>", "<r_0>", "<attr_3>", "<attr_3_2>", "<17>", "<q>", "<pad>")] == [
        "entity",
        "relation",
        "attribute",
        "label",
        "value",
        "special",
        "pad",
    ]
    assert [token_role(t) for t in ("<r x>", "<e_01x>", "<attr_0_3>", "<007>", "<E_1>", "<rel_0>")] == [None] * 6


def test_the_paper_layout_loads_with_its_names(tmp_path):
    ds = load_dataset(write(tmp_path, VOCAB, TRAIN, TEST))
    assert ds.tail("<e_0>", "<r_0>") == "<e_1>" and ds.splits["train_inferred"][0].provenance["bridges"] == ["<e_1>"]


@pytest.mark.parametrize(
    "train, test, where, expected",
    [
        # the case: a relation token not named <r_N> inside an otherwise paper-named dataset
        (
            TRAIN,
            [*TEST[:1], rec("<e_0><r_0><r x>", "<e_2>", "test_inferred_iid")],
            "vocab.json:13",
            "'<r x>' has no name",
        ),
        # a comparison record in a composition dataset (mixed tasks)
        (
            [*TRAIN, rec("<attr_0><q><e_0><mask><e_1>", "<attr_0_0>")],
            TEST,
            "train.json:5",
            "is not a composition prompt",
        ),
        ([*TRAIN, rec("<e_0><e_1>", "<e_2>")], TEST, "train.json:5", "is not a composition prompt"),
        ([*TRAIN, rec("<e_0><r_0>", "<r_1>")], TEST, "train.json:5", "is not an entity token"),
        (TRAIN, [*TEST, rec("<e_0><r_0><r_1>", "<e_2>", "id_atomic")], "test.json:4", "type 'id_atomic' does not fit"),
        (TRAIN, [*TEST, rec("<e_0><r_0>", "<e_1>", "test_inferred_ood")], "test.json:4", "which is an atomic fact"),
        ([*TRAIN, rec("<e_0><r_0><r_1><r_0>", "<e_1>")], TEST, "train.json:5", "has 4 tokens; every inferred prompt"),
        ([*TRAIN, rec("<e_0><r_0>", "<e_2>")], TEST, "", "two atomic facts disagree: <e_0><r_0> -> <e_1> and -> <e_2>"),
        ([*TRAIN, rec("<e_0><r_0>", "<e_1><e_1>")], TEST, "train.json:5", "one answer token"),
    ],
    ids=[
        "r-x",
        "mixed-task",
        "no-relation",
        "answer-role",
        "type-atomic",
        "type-inferred",
        "k-hop-mixed",
        "conflict",
        "two-answers",
    ],
)
def test_records_outside_the_rules_are_refused_at_their_line(tmp_path, one_line, train, test, where, expected):
    text = json.dumps([train, test])
    vocab = VOCAB + [t for t in ("<r x>", "<attr_0>", "<attr_0_0>") if t in text]
    d = write(tmp_path / "ds", vocab, train, test)
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(d)
    msg = one_line(err.value)
    assert msg.startswith(f"{d / where}" if where else f"{d}: ") and expected in msg, msg
