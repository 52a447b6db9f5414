"""Fuzzing saved analysis files: circuits, sparse dictionaries and attribution-graph JSON.

Each is written by grokscope, then damaged (cut short, bytes inserted, a line replaced, a
JSON field set to any value, weight files swapped between dictionaries); its loader gives
back an object that saves to the same bytes again (circuits), a dictionary whose tensors
match its config and run (dictionaries), a graph that passes its schema check (graph
JSON), or a GrokscopeError whose one line starts with the path of the file at fault.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st

from circuits.circuit import CircuitGraph
from circuits.space import ModelGraph
from interp.features import DictionaryConfig, SparseDictionary
from interp.features.graph_json import check_graph_json, load_graph_json
from interp.features.io import CFG_FILE, WEIGHTS_FILE, load_dictionary, save_dictionary
from tests.fuzz.conftest import check_error, damage_bytes, tree_digest
from tests.fuzz.test_fuzz_configs import VALUES


@st.composite
def damage(draw):
    return (
        draw(st.sampled_from(["truncate", "bytes", "line", "field", "none"])),
        draw(st.floats(0, 1)),
        draw(st.binary(min_size=1, max_size=8)),
        draw(st.text(max_size=20)),
        draw(st.text(max_size=8)),
        draw(VALUES | st.sampled_from([0, -1, 10**6, 10**12, 2**63, "topk", "jumprelu", "float16", "int64"])),
    )


def hurt(path: Path, hit, keys: list[str]) -> None:
    kind, where, blob, text, key, value = hit
    if kind in ("truncate", "bytes", "line"):
        damage_bytes(path, kind, where, blob, text)
    elif kind == "field":
        try:
            obj = json.loads(path.read_bytes())
        except ValueError:
            return
        if isinstance(obj, dict):
            obj[keys[int(where * len(keys)) % len(keys)] if where < 0.8 else key] = value
            path.write_text(json.dumps(obj), encoding="utf-8")


def load_or_refuse(path: Path, load):
    before = tree_digest(path.parent)
    try:
        out = load()
    except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
        check_error(err, path.parent)
        out = None
    assert tree_digest(path.parent) == before, "a loader changed what it read"
    return out


# -- circuits ----------------------------------------------------------------------------------
CIRCUIT = CircuitGraph.full(ModelGraph(2, 2, 3, (2,)), ["h", "r1", "r2"], task="composition")
CIRCUIT.edges = {e: float(i) for i, e in enumerate(list(CIRCUIT.edges)[:20])}
CIRCUIT_KEYS = ["format", "version", "n_layers", "n_heads", "positions", "logit_positions", "edges", "nodes", "meta"]


@given(st.lists(damage(), min_size=1, max_size=3))
def test_saved_circuits_load_or_fail_in_one_line(hits):
    with tempfile.TemporaryDirectory() as tmp:
        path = CIRCUIT.save(Path(tmp) / "circuit.json")
        for hit in hits:
            hurt(path, hit, CIRCUIT_KEYS)
        circuit = load_or_refuse(path, lambda: CircuitGraph.load(path))
        if circuit is not None:
            assert CircuitGraph.from_json(circuit.to_json()).to_json() == circuit.to_json()
            assert len(circuit.summary().splitlines()) == 1


# -- dictionaries --------------------------------------------------------------------------------
def _dictionary(arch: str, d_in: int, seed: int) -> SparseDictionary:
    torch.manual_seed(seed)
    sae = SparseDictionary(
        DictionaryConfig("blocks.0.hook_resid_post", d_in=d_in, d_sae=2 * d_in, architecture=arch, k=2)
    )
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_()
    return sae


DICTS = {
    "topk": _dictionary("topk", 8, 0),
    "jumprelu": _dictionary("jumprelu", 8, 1),
    "wide": _dictionary("batchtopk", 12, 2),
}
CFG_KEYS = ["format", "format_version", "architecture", "d_in", "d_sae", "k", "hook_name", "dtype", "metadata"]


@given(
    st.sampled_from(sorted(DICTS)),
    st.sampled_from(sorted(DICTS)),
    st.sampled_from([CFG_FILE, WEIGHTS_FILE]),
    st.booleans(),
    st.lists(damage(), max_size=3),
)
def test_saved_dictionaries_load_or_fail_in_one_line(name, other, file, swap, hits):
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_dictionary(DICTS[name], Path(tmp) / "sae")
        if swap:
            (folder / file).write_bytes((save_dictionary(DICTS[other], Path(tmp) / "other") / file).read_bytes())
        for hit in hits:
            hurt(folder / file, hit, CFG_KEYS)
        sae = load_or_refuse(folder / file, lambda: load_dictionary(folder))
        if sae is not None:
            expected = {k: tuple(v.shape) for k, v in SparseDictionary(sae.cfg).tensors().items()}
            assert {k: tuple(v.shape) for k, v in sae.tensors().items()} == expected
            x = torch.randn(3, sae.d_in, dtype=sae.W_enc.dtype)
            assert sae(x).shape == x.shape if not isinstance(sae(x), tuple) else True


# -- attribution-graph JSON ----------------------------------------------------------------------
def _graph() -> dict:
    def node(i, kind):
        return {
            "node_id": f"n{i}",
            "feature": i,
            "layer": str(i),
            "ctx_idx": i,
            "feature_type": kind,
            "jsNodeId": f"j{i}",
            "influence": None,
            "activation": 0.5,
            "clerp": "",
        }

    return {
        "metadata": {
            "slug": "g",
            "scan": "s",
            "transcoder_list": [],
            "prompt_tokens": ["<e_0>"],
            "prompt": "<e_0>",
            "schema_version": 1,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": [node(0, "embedding"), node(1, "cross layer transcoder"), node(2, "logit")],
        "links": [{"source": "n0", "target": "n1", "weight": 0.5}, {"source": "n1", "target": "n2", "weight": -1.0}],
    }


GRAPH_KEYS = ["metadata", "qParams", "nodes", "links"]


@st.composite
def graph_edit(draw):
    data = _graph()
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(["nodes", "links", "metadata", "qParams"]))
        target = data[section]
        if isinstance(target, list) and target:
            item = target[draw(st.integers(0, len(target) - 1))]
            item[draw(st.sampled_from(sorted(item)))] = draw(VALUES)
        elif isinstance(target, dict):
            target[draw(st.sampled_from(sorted(target)))] = draw(VALUES)
    return data


@given(graph_edit(), st.lists(damage(), max_size=2))
def test_graph_json_loads_or_fails_in_one_line(data, hits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        for hit in hits:
            hurt(path, hit, GRAPH_KEYS)
        graph = load_or_refuse(path, lambda: load_graph_json(path))
        if graph is not None:
            assert check_graph_json(json.loads(json.dumps(graph))) == graph
