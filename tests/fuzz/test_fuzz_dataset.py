"""Fuzzing the dataset reader: any directory gives a valid dataset or one line naming the file (and line) to fix.

Two generators: byte- and line-level damage to real datasets of every task (truncated,
non-UTF-8, lines replaced by other records, files swapped between tasks, files removed),
and paper-layout datasets built from scratch out of drawn token names (the paper's
``<e_N>`` / ``<r_N>`` / ``<attr_N>`` names, near misses such as ``<r x>`` or ``<e_01>``,
arbitrary ``<...>`` tokens), records and types. Whatever it reads, ``load_dataset``
returns a dataset whose graph, batches and saved copy are sound, or raises a
:class:`DatasetFormatError` whose one line starts with the path at fault; it never writes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from interp.data import ComparisonConfig, ComplexConfig, CompositionConfig, KGDataset, generate, load_dataset
from interp.data.dataset import SPLITS
from interp.data.vocab import SPECIALS
from interp.errors import DatasetFormatError
from tests.fuzz.conftest import check_error, damage_bytes, tree_digest

CONFIGS = {
    "composition": CompositionConfig(n_entities=20, n_relations=4, out_degree=3, phi=2.0, probe_size=10),
    "khop": CompositionConfig(n_entities=20, n_relations=4, out_degree=3, n_hops=3, phi=2.0, probe_size=10),
    "comparison": ComparisonConfig(n_entities=20, n_attributes=2, phi=2.0, probe_size=10),
    "complex": ComplexConfig(n_entities=250, n_attributes=2, n_hard_per_label=2, probe_size=10),
}
FILES = ("train.json", "test.json", "valid.json", "vocab.json", "config.json", "graph.json")


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """Saved datasets of every task, and each again in the bare paper layout (no config.json, graph.json)."""
    root = tmp_path_factory.mktemp("templates")
    out = {}
    for name, cfg in CONFIGS.items():
        ds = generate(cfg)
        ds.splits["train"] = ds.splits["train"][:150]  # any subset of records is a dataset; keep examples quick
        out[name] = ds.save(root / name)
        bare = root / f"{name}-paper"
        shutil.copytree(out[name], bare)
        (bare / "config.json").unlink()
        (bare / "graph.json").unlink()
        out[f"{name}-paper"] = bare
    return out


def check_dataset(ds: KGDataset) -> None:
    """A loaded dataset is usable: its graph builds, every split batches, prompts fit the schema, it saves and reloads equal."""
    kg = ds.kg
    assert kg is not None
    for split in SPLITS:
        batch = ds.batch(split)
        assert len(batch) == len(ds.splits[split])
        for ex in ds.splits[split]:
            assert all(t in ds.vocab for t in ex.input_tokens + ex.target_tokens)
            assert ds.schema.is_atomic(ex) or len(ex.input_tokens) == ds.schema.n_pos
    with tempfile.TemporaryDirectory() as tmp:
        back = load_dataset(ds.save(Path(tmp) / "copy"))
    assert (back.task, back.config, back.vocab, back.graph) == (ds.task, ds.config, ds.vocab, ds.graph)
    assert back.splits == ds.splits


def read_or_refuse(directory: Path) -> None:
    """The property: a sound dataset, or a one-line DatasetFormatError naming a path in ``directory``; nothing written."""
    before = tree_digest(directory)
    try:
        ds = load_dataset(directory)
    except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
        msg = check_error(err, directory)
        assert isinstance(err, DatasetFormatError)
        event(f"refused: {msg[len(str(directory)) + 1 :].split(':')[0]}")
        record_file = next(
            (f for f in ("train.json", "test.json", "valid.json") if msg.startswith(f"{directory / f}:")), None
        )
        if record_file is not None and " record " in msg:
            check_error(err, directory / record_file, line=True)
    else:
        check_dataset(ds)
        event(f"loaded a {ds.task} dataset")
    assert tree_digest(directory) == before, "the reader changed the files it read"


# -- damage to real datasets -------------------------------------------------------------------
RECORD_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda i, t, a, k: (
            json.dumps({"input_text": i, "target_text": t if t is not None else i + a + "</a>", "type": k}) + ","
        ),
        st.text(alphabet="<>e_r0123 attrq/a", max_size=30),
        st.none() | st.text(max_size=20),
        st.sampled_from(["<e_1>", "<e_0>", "<1>", "<attr_0_2>", "<a><0>", "", "<r x>"]),
        st.sampled_from(
            [
                "id_atomic",
                "ood_atomic",
                "train_inferred",
                "test_inferred_iid",
                "test_inferred_ood",
                "test_hard",
                "atomic",
                "inferred",
                "bogus",
                "",
            ]
        ),
    ),
)


@st.composite
def damage(draw):
    kind = draw(st.sampled_from(["truncate", "bytes", "line", "remove", "swap"]))
    return (
        kind,
        draw(st.sampled_from(FILES)),
        draw(st.floats(0, 1)),
        draw(st.binary(min_size=1, max_size=8)),
        draw(RECORD_TEXT),
    )


@given(
    template=st.sampled_from(sorted(CONFIGS) + [f"{t}-paper" for t in CONFIGS]),
    other=st.sampled_from(sorted(CONFIGS)),
    hits=st.lists(damage(), min_size=1, max_size=3),
)
def test_damaged_datasets_load_or_fail_in_one_line(templates, template, other, hits):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "ds"
        shutil.copytree(templates[template], d)
        for kind, name, where, blob, text in hits:
            path = d / name
            if not path.is_file():
                continue
            if not damage_bytes(path, kind, where, blob, text) and (templates[other] / name).is_file():
                shutil.copy(templates[other] / name, path)  # kind == "swap"
        read_or_refuse(d)


# -- paper-layout datasets from drawn token names ------------------------------------------------
PAPER_NAMES = [f"<e_{i}>" for i in range(4)] + [
    "<r_0>",
    "<r_1>",
    "<attr_0>",
    "<attr_1>",
    "<0>",
    "<1>",
    "<2>",
    "<attr_0_0>",
    "<attr_0_1>",
    "<attr_0_2>",
    "<attr_1_2>",
]
ODD_NAMES = ["<r x>", "<e_01>", "<r_>", "<rel_0>", "<attr_0_3>", "<007>", "<é_1>", "<e_1 >", "<E_1>", "<pad>", "<x>"]
TOKEN = (
    st.sampled_from(PAPER_NAMES + SPECIALS)
    | st.sampled_from(ODD_NAMES)
    | st.from_regex(r"<[^<>]{1,6}>", fullmatch=True)
)
TYPES = st.sampled_from(
    [
        "id_atomic",
        "ood_atomic",
        "train_inferred",
        "test_inferred_iid",
        "test_inferred_ood",
        "test_hard",
        "atomic",
        "inferred",
        "nonsense",
    ]
)


SHAPES = [  # the tasks' record shapes (prompt, answer), by token role
    (("e", "r"), "e"),
    (("e", "r", "r"), "e"),
    (("e", "r", "r", "r"), "e"),
    (("e", "attr"), "v"),
    (("attr", "<q>", "e", "<mask>", "e"), "label"),
    (("<q>", "e", "attr", "<mask>", "</q>"), "<a>v"),
    (("attr", "<q>", "e", "<mask>", "e", "</q>"), "<a>label"),
]
ROLE_OF = {"e": "<e_", "r": "<r_", "attr": "<attr_", "label": "<attr_", "v": "<"}


def _role_tokens(pool, role):
    if role.startswith("<") and role.endswith(">") and "v" not in role and "label" not in role:
        return [role]
    want = role.removeprefix("<a>")
    fit = [
        t
        for t in pool
        if t.startswith(ROLE_OF[want])
        and (want != "v" or t[1:-1].isdigit())
        and (want != "label" or t.count("_") == 2)
        and (want != "attr" or t.count("_") == 1)
    ]
    return fit or pool


@st.composite
def records(draw, pool, typed):
    if draw(st.integers(0, 2)) == 0:  # any tokens
        prompt = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=7))
        answer = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2))
    else:  # a task's shape, filled with tokens of the right role (mostly)
        shape, ans = draw(st.sampled_from(SHAPES))
        fill = lambda role: draw(st.sampled_from(_role_tokens(pool, role) if draw(st.integers(0, 9)) else pool))  # noqa: E731
        prompt = [fill(role) for role in shape]
        answer = (["<a>"] if ans.startswith("<a>") else []) + [fill(ans)]
    rec = {"input_text": "".join(prompt), "target_text": "".join(prompt + answer) + "</a>"}
    if typed or draw(st.booleans()):
        rec["type"] = draw(TYPES)
    return rec


@st.composite
def paper_dataset(draw):
    vocab = draw(st.lists(st.sampled_from(PAPER_NAMES), min_size=1, max_size=len(PAPER_NAMES), unique=True))
    vocab += [t for t in draw(st.lists(TOKEN, max_size=2)) if t not in vocab] if draw(st.integers(0, 3)) == 0 else []
    vocab = vocab + [s for s in SPECIALS if s not in vocab]
    pool = vocab if draw(st.integers(0, 3)) else vocab + draw(st.lists(TOKEN, max_size=2))
    train = draw(st.lists(records(pool, typed=False), max_size=10))
    test = draw(st.lists(records(pool, typed=True), max_size=8))
    return vocab, train, test


@given(paper_dataset())
def test_paper_layout_datasets_from_any_token_names_load_or_fail_in_one_line(dataset):
    vocab, train, test = dataset
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, obj in (("vocab.json", vocab), ("train.json", train), ("test.json", test)):
            (d / name).write_text(json.dumps(obj), encoding="utf-8")
        read_or_refuse(d)


def test_relation_tokens_named_otherwise_are_refused_in_one_line(templates, tmp_path):
    """The issue's case: the paper's layout with a relation token that is not ``<r_N>`` (``<r x>``)."""
    d = tmp_path / "ds"
    shutil.copytree(templates["composition-paper"], d)
    for name in ("vocab.json", "train.json", "test.json", "valid.json"):
        (d / name).write_text((d / name).read_text().replace("<r_1>", "<r x>"))
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(d)
    msg = check_error(err.value, d / "vocab.json", line=True)
    assert "'<r x>' has no name grokscope reads" in msg and "<r_N> relations" in msg
