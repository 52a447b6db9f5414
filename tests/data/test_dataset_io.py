"""Saving and loading: paper layout, byte-identical determinism, lossless round trip, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from interp.data import ComparisonConfig, ComplexConfig, CompositionConfig, generate, load_dataset
from interp.errors import DatasetFormatError

FILES = ("config.json", "vocab.json", "train.json", "valid.json", "test.json", "graph.json")
TINY = {
    "composition": CompositionConfig(n_entities=50, n_relations=10, out_degree=5, phi=3.0, probe_size=200),
    "comparison": ComparisonConfig(n_entities=40, n_attributes=3, phi=3.0, probe_size=200),
    "complex": ComplexConfig(n_entities=250, n_attributes=6, n_hard_per_label=5, probe_size=200),
}


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("task", sorted(TINY))
def test_same_seed_same_bytes_other_seed_other_bytes(task, tmp_path):
    cfg = TINY[task]
    generate(cfg).save(tmp_path / "a")
    generate(cfg).save(tmp_path / "b")
    generate(type(cfg)(**{**vars(cfg), "seed": 1})).save(tmp_path / "c")
    a, b, c = (file_bytes(tmp_path / x) for x in "abc")
    assert sorted(a) == sorted(FILES)
    assert a == b
    for name in ("train.json", "test.json", "graph.json"):
        assert a[name] != c[name]


@pytest.mark.parametrize("fixture", ["composition", "khop", "comparison", "complex_ds"])
def test_round_trip_is_lossless(fixture, request, tmp_path):
    ds = request.getfixturevalue(fixture)
    back = load_dataset(ds.save(tmp_path / "ds"))
    assert (back.task, back.config, back.vocab) == (ds.task, ds.config, ds.vocab)
    assert back.graph == ds.graph
    for name, examples in ds.splits.items():
        assert back.splits[name] == examples, name
    assert any(ex.provenance for ex in back.splits["test_ood"])


def test_files_follow_the_paper_layout(composition, tmp_path):
    d = composition.save(tmp_path / "ds")
    train_text = (d / "train.json").read_text()
    lines = train_text.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(composition.splits["train"]) + 2
    assert json.loads(lines[1].rstrip(",")) == json.loads(train_text)[0]  # one record per line
    for name in ("train.json", "valid.json", "test.json"):
        for rec in json.loads((d / name).read_text()):
            assert set(rec) <= {"input_text", "target_text", "type", "provenance"}
            assert rec["target_text"].startswith(rec["input_text"]) and rec["target_text"].endswith("</a>")
    test = json.loads((d / "test.json").read_text())
    assert [r["type"] for r in test] == sorted(
        (r["type"] for r in test),
        key=["id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood"].index,
    )
    valid = json.loads((d / "valid.json").read_text())
    assert valid == [r for r in test if r["type"] == "test_inferred_ood"]
    vocab = json.loads((d / "vocab.json").read_text())
    assert vocab[-7:] == ["<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>", "<pad>"]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))  # one line, as the paper's notebooks write it


def rec(inp: str, ans: str, kind: str | None = None) -> dict:
    r = {"input_text": inp, "target_text": inp + ans + "</a>"}
    if kind:
        r["type"] = kind
    return r


SPECIAL = ["<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>"]


def test_paper_layout_composition_loads(tmp_path):
    write_json(tmp_path / "vocab.json", ["<e_0>", "<e_1>", "<e_2>", "<r_0>", "<r_1>"] + SPECIAL)
    train = [
        rec("<e_0><r_0>", "<e_1>"),
        rec("<e_1><r_1>", "<e_2>"),
        rec("<e_2><r_0>", "<e_0>"),
        rec("<e_0><r_0><r_1>", "<e_2>"),
    ]
    write_json(tmp_path / "train.json", train)
    write_json(
        tmp_path / "test.json",
        [
            rec("<e_0><r_0>", "<e_1>", "id_atomic"),
            rec("<e_2><r_0>", "<e_0>", "ood_atomic"),
            rec("<e_0><r_0><r_1>", "<e_2>", "train_inferred"),
            rec("<e_1><r_1><r_0>", "<e_0>", "test_inferred_iid"),
            rec("<e_2><r_0><r_0>", "<e_1>", "test_inferred_ood"),
        ],
    )
    ds = load_dataset(tmp_path)
    assert ds.task == "composition" and ds.config is None
    assert ds.vocab.tokens[-1] == "<pad>" and len(ds.vocab) == 12
    assert {k: len(v) for k, v in ds.splits.items()} == {
        "train": 4,
        "id_atomic": 1,
        "ood_atomic": 1,
        "train_inferred": 1,
        "test_id": 1,
        "test_ood": 1,
    }
    assert [ex.type for ex in ds.splits["train"]] == ["atomic"] * 3 + ["inferred"]
    # provenance is re-derived from the rebuilt graph where every hop is known
    assert ds.splits["test_ood"][0].answer == "<e_1>"
    assert ds.splits["test_ood"][0].provenance == {
        "bridges": ["<e_0>"],
        "atomic": [["<e_2>", "<r_0>", "<e_0>"], ["<e_0>", "<r_0>", "<e_1>"]],
    }
    assert ds.splits["test_id"][0].provenance["bridges"] == ["<e_2>"]
    assert ds.tail("<e_1>", "<r_1>") == "<e_2>" and ds.is_ood("<e_2>", "<r_0>") and not ds.is_ood("<e_0>", "<r_0>")
    assert ds.batch("train").tokens.shape == (4, 5)


def test_paper_layout_comparison_and_complex_load(tmp_path):
    ents, attrs = ["<e_0>", "<e_1>", "<e_2>"], ["<attr_0>"]
    vocab = ents + attrs + ["<0>", "<1>", "<2>"] + SPECIAL + ["<attr_0_0>", "<attr_0_1>", "<attr_0_2>"]
    cmp_dir = tmp_path / "comparison"
    cmp_dir.mkdir()
    write_json(cmp_dir / "vocab.json", vocab)
    write_json(
        cmp_dir / "train.json",
        [
            rec("<e_0><attr_0>", "<0>", "id_atomic"),
            rec("<e_1><attr_0>", "<2>", "id_atomic"),
            rec("<e_2><attr_0>", "<1>", "ood_atomic"),
            rec("<attr_0><q><e_0><mask><e_1>", "<attr_0_0>", "train_inferred"),
        ],
    )
    write_json(cmp_dir / "test.json", [rec("<attr_0><q><e_1><mask><e_0>", "<attr_0_2>", "test_inferred_iid")])
    ds = load_dataset(cmp_dir)
    assert ds.task == "comparison" and ds.value("<e_1>", "<attr_0>") == 2
    assert ds.is_ood("<e_2>", "<attr_0>") and not ds.is_ood("<e_0>", "<attr_0>")
    assert [ex.type for ex in ds.splits["train"]] == ["atomic"] * 3 + ["inferred"]
    assert ds.splits["test_id"][0].provenance == {
        "values": [2, 0],
        "atomic": [["<e_1>", "<attr_0>", "<2>"], ["<e_0>", "<attr_0>", "<0>"]],
    }

    cplx = tmp_path / "complex"
    cplx.mkdir()
    write_json(cplx / "vocab.json", vocab)
    write_json(cplx / "train.json", [rec("<q><e_0><attr_0><mask></q>", "<a><0>", "id_atomic")])
    write_json(
        cplx / "test.json",
        [
            rec("<q><e_2><attr_0><mask></q>", "<a><1>", "ood_atomic"),
            rec("<attr_0><q><e_2><mask><e_1></q>", "<a><attr_0_0>", "test_inferred_ood"),
            rec("<attr_0><q><e_1><mask><e_2></q>", "<a><attr_0_2>", "test_hard"),
        ],
    )
    ds = load_dataset(cplx)
    assert ds.task == "complex"
    (hard,) = ds.splits["test_ood"]  # the hard queries are the OOD test
    assert hard.answer == "<attr_0_2>" and hard.input_tokens[-1] == "<a>" and hard.type == "test_hard"
    assert ds.splits["train"][0].answer == "<0>" and ds.value("<e_2>", "<attr_0>") == 1
    assert hard.to_record() == rec("<attr_0><q><e_1><mask><e_2></q>", "<a><attr_0_2>", "test_hard")


@pytest.fixture
def saved(tmp_path) -> Path:
    return generate(TINY["composition"]).save(tmp_path / "ds")


def replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("line_text", "expected"),
    [
        ('{"input_text": "<e_0><r_1>" "target_text": "<e_0><r_1><e_2></a>"},', "not valid JSON (Expecting ','"),
        ('{"target_text": "<e_0><r_1><e_2></a>"},', "record 3: missing input_text"),
        ('{"input_text": "<e_0><r_1>", "target_text": "<e_1><r_1><e_2></a>"},', "does not start with input_text"),
        ('{"input_text": "<e_0><r_1>", "target_text": "<e_0><r_1><e_2>"},', "does not end with </a>"),
        ('{"input_text": "<e_0><r_1>", "target_text": "<e_0><r_1><e_9999></a>"},', "unknown token '<e_9999>'"),
        ('{"input_text": "<e_0> <r_1>", "target_text": "<e_0> <r_1><e_2></a>"},', "unexpected ' <r_1>'"),
        ('{"input_text": "<e_0><r_1>", "target_text": "<e_0><r_1></a>"},', "no answer"),
        ('["<e_0><r_1>"],', "expected an object"),
        ('{"input_text": "", "target_text": "<e_2></a>"},', "input_text is empty"),
    ],
)
def test_bad_record_is_reported_with_path_and_line(saved, line_text, expected, one_line):
    path = saved / "train.json"
    replace_line(path, 5, line_text)
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    msg = one_line(info.value)
    assert msg.startswith(f"{path}:5: ") and expected in msg, msg


def test_bad_probe_type_and_vocab_are_reported(saved, one_line):
    test = saved / "test.json"
    replace_line(test, 2, '{"input_text": "<e_0><r_1>", "target_text": "<e_0><r_1><e_2></a>", "type": "bogus"},')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value).startswith(f"{test}:2: unknown type 'bogus'")
    (saved / "vocab.json").write_text('["<e_0>", "e_1"]')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value).startswith(f"{saved / 'vocab.json'}: vocab entry 1 = 'e_1'")
    (saved / "vocab.json").write_text('{"<e_0>": 0}')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value).startswith(f"{saved / 'vocab.json'}:1: expected a JSON list")


def test_bad_config_and_graph_files_are_reported(saved, one_line):
    (saved / "config.json").write_text('{"task": "composition", "config": {"task": "composition", "phi": -1}}')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value).startswith(f"{saved / 'config.json'}: phi = -1.0 is out of range")
    (saved / "config.json").write_text('{"task": "composition",\n "config": nul}')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value).startswith(f"{saved / 'config.json'}:2: not valid JSON")


def test_missing_directory_or_file_names_the_path(saved, tmp_path, one_line):
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in one_line(info.value)
    (saved / "train.json").unlink()
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(saved)
    assert one_line(info.value) == f"{saved / 'train.json'} does not exist"


def test_interrupted_save_leaves_old_or_new_files_never_half_written(tmp_path, monkeypatch):
    target = tmp_path / "ds"
    old = generate(TINY["composition"])
    new = generate(CompositionConfig(**{**vars(TINY["composition"]), "seed": 5}))
    old.save(target)
    old_bytes = file_bytes(target)
    new.save(tmp_path / "reference")
    new_bytes = file_bytes(tmp_path / "reference")

    real_replace, calls = os.replace, []

    def failing_replace(src, dst):  # the 3rd file's rename fails, after its bytes were written
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        new.save(target)
    monkeypatch.undo()
    after = file_bytes(target)
    assert sorted(after) == sorted(FILES)  # no *.tmp left behind
    written = [Path(c).name for c in calls[:2]]
    for name, data in after.items():
        assert data == (new_bytes[name] if name in written else old_bytes[name]), name
    assert load_dataset(target)  # still loads (a mix of two datasets, each file whole)


def test_save_of_unserialisable_data_writes_nothing(tmp_path):
    ds = generate(TINY["composition"])
    ds.graph = {"atomic": [object()]}
    with pytest.raises(TypeError):
        ds.save(tmp_path / "ds")
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())
