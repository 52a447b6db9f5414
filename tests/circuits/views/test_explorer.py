"""The explorer's data: exported weights, checkpoint selection, circuits per size, queries, the page section."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits.ablation import Faithfulness
from circuits.pruning import connected
from circuits.space import CircuitError
from circuits.tasks import composition_task
from circuits.views.explorer import explorer_data, explorer_figure, export_weights, rounded_model
from circuits.views.explorer.data import MAX_EDGES, graph_nodes, query_data, timeline_data
from circuits.views.explorer.page import asset
from circuits.views.explorer.timeline import circuit_sizes, pick_checkpoints, snapshot, top_circuit
from circuits.views.explorer.weights import BLOCK_PARAMS
from interp.models import ModelConfig, build_model

from ...tiny import TINY_MODEL


def _decode(t: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(t["b64"]), dtype="<f2").reshape(t["shape"])


@pytest.mark.parametrize("tied", [True, False])
def test_weights_are_the_float16_parameters(graph, tied):
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, init_range=0.15, tie_embeddings=tied)
    model = build_model(cfg, len(graph.vocab), 7, seed=0, device="cpu")
    spec = export_weights(model)
    ref = rounded_model(model, torch.float32).state_dict()
    assert spec["config"]["tied"] is tied and ("unembed" in spec) is (not tied)
    assert spec["config"]["activation"] == "gelu_new" and spec["config"]["d_mlp"] == 4 * 32
    np.testing.assert_array_equal(_decode(spec["wte"]), ref["transformer.wte.weight"].numpy())
    np.testing.assert_array_equal(_decode(spec["wpe"]), ref["transformer.wpe.weight"].numpy())
    for i, block in enumerate(spec["blocks"]):
        assert list(block) == list(BLOCK_PARAMS)
        for name, t in block.items():
            np.testing.assert_array_equal(_decode(t), ref[f"transformer.h.{i}.{name}"].numpy())
    if not tied:
        np.testing.assert_array_equal(_decode(spec["unembed"]), ref["lm_head.weight"].numpy())
    # rounding changes the weights (the page's reference is not the float32 model itself)
    assert not torch.equal(model.transformer.wte.weight, ref["transformer.wte.weight"])


def test_weights_that_overflow_float16_are_refused(graph):
    model = build_model(TINY_MODEL, len(graph.vocab), 7, seed=0, device="cpu")
    with torch.no_grad():
        model.transformer.wpe.weight[0, 0] = 1e6
    with pytest.raises(CircuitError, match="float16"):
        export_weights(model)
    with pytest.raises(CircuitError, match="GPT-2"):
        export_weights(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_checkpoints_are_evenly_spaced_with_both_ends():
    paths = [Path(f"step_{i}") for i in range(12)]
    picked = pick_checkpoints(paths, 8)
    assert len(picked) == 8 and picked[0] == paths[0] and picked[-1] == paths[-1]
    gaps = np.diff([int(p.name.split("_")[1]) for p in picked])
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1
    assert pick_checkpoints(paths[:5], 8) == paths[:5]
    with pytest.raises(CircuitError, match="at least 2"):
        pick_checkpoints(paths, 1)


def test_circuit_sizes_hold_the_found_size():
    sizes = circuit_sizes(1000, 37)
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and 37 in sizes and sizes[-1] == 4 * 37
    assert circuit_sizes(20, 37)[-1] == 20  # never more edges than the graph has
    assert circuit_sizes(500, None)[-1] == 500


@pytest.fixture(scope="module")
def snap(bridge, graph):
    task = composition_task(graph, n=6)
    sizes = circuit_sizes(2000, 30)
    return task, sizes, snapshot(bridge, graph, task, sizes, step=7, n=20)


def test_snapshot_circuits_are_connected_nested_and_scored(snap, bridge):
    task, sizes, s = snap
    space = s.scores.space
    assert s.step == 7 and set(s.lens) == {"bridge", "r2", "answer"} and set(s.tracing) == {"h", "r1", "r2"}
    assert np.array(s.lens["answer"]).shape == (4, 3)  # states x positions
    previous = torch.zeros_like(space.allowed)
    for k, mask in zip(sizes, s.masks):
        assert torch.equal(connected(space, mask), mask)  # every edge on a path to the logits
        assert int(mask.sum()) <= k and bool((previous & ~mask).sum() == 0)  # nested as k grows
        previous = mask
    assert torch.equal(top_circuit(s.scores, space.n_edges), connected(space, space.allowed))
    faith = Faithfulness(bridge, task, "mean")
    assert s.faithfulness[-1] == pytest.approx(faith(s.masks[-1]), abs=1e-4)


def test_timeline_edges_map_back_to_the_masks(snap):
    _, sizes, s = snap
    tl = timeline_data([s], sizes)
    space = s.scores.space
    assert [n["name"] for n in tl["nodes"]] == [n["name"] for n in graph_nodes(space)]
    ck = tl["checkpoints"][0]
    assert len(tl["edges"]) <= MAX_EDGES and len(ck["scores"]) == len(tl["edges"])
    for mask, circuit in zip(s.masks, ck["circuits"]):
        got = {(tl["nodes"][a]["name"], tl["nodes"][b]["name"], ch) for a, b, ch in (tl["edges"][i] for i in circuit)}
        want = {(e.src.name, e.dst.name, e.channel) for e in (space.edge(*idx) for idx in mask.nonzero().tolist())}
        assert got == want if int(mask.sum()) <= MAX_EDGES else got <= want
    index = {(e.src.name, e.dst.name, e.channel): space.index(e) for e in space.edges()}
    for i, (a, b, ch) in enumerate(tl["edges"]):
        idx = index[(tl["nodes"][a]["name"], tl["nodes"][b]["name"], ch)]
        assert ck["scores"][i] == pytest.approx(float(s.scores.scores[idx]), abs=1e-5)
    strength = [abs(v) for v in ck["scores"]]
    assert strength == sorted(strength, reverse=True)  # the strongest edges first


def test_queries_carry_the_datasets_answers(graph):
    q = query_data(graph, ["h", "r1", "r2"])
    vocab = graph.vocab
    first = graph.examples("test_id")[0]
    assert q["default"] == vocab.encode(first.input_tokens)
    answers = {
        ex.input_tokens: ex.answer for s in ("test_id", "train_inferred", "test_ood") for ex in graph.examples(s)
    }
    assert len(q["known"]) == len(answers)
    for key, (answer, split) in q["known"].items():
        ids = [int(i) for i in key.split(",")]
        assert answers[tuple(vocab.tokens[i] for i in ids)] == vocab.tokens[answer]
        assert all(i in q["choices"][p] for p, i in enumerate(ids)) and split in (
            "test_id",
            "train_inferred",
            "test_ood",
        )
    assert query_data(graph, ["a", "b"]) == {"choices": [], "known": {}, "default": None}  # no prompt of that length


def test_comparison_queries_have_every_position(comparison_graph):
    from circuits.views.sections import position_labels

    labels = position_labels(comparison_graph)
    q = query_data(comparison_graph, labels)
    assert labels == ["attr", "q", "e1", "mask", "e2"] and len(q["choices"]) == 5
    ids = q["default"]
    assert (
        q["known"][",".join(map(str, ids))][0]
        == comparison_graph.vocab.encode([comparison_graph.examples("test_id")[0].answer])[0]
    )
    assert all(len(c) >= 1 for c in q["choices"]) and len(q["choices"][2]) > 1  # e1 varies


def test_page_section_escapes_tokens_and_carries_the_data(graph, snap):
    _, sizes, s = snap
    model = build_model(TINY_MODEL, len(graph.vocab), 7, seed=0, device="cpu")
    data = explorer_data(
        model,
        graph,
        ["h", "r1", "r2"],
        step=7,
        snapshots=[s],
        sizes=sizes,
        circuit_size=30,
        node_features={"a0.1@2": [{"label": "<e_3> detector", "value": 0.5}]},
    )
    html = explorer_figure(data).html
    assert not re.search(r"<[er]_\d+>", html) and "\\u003ce_3\\u003e detector" in html
    block = html.split('id="gsx-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block) == json.loads(json.dumps(data))  # the data arrives intact
    assert all(f"<script>{asset(n)}</script>" in html for n in ("model.js", "plots.js", "ui.js"))
    for name in ("model.js", "plots.js", "ui.js", "explorer.css"):  # package files stay small and inlinable
        assert len(asset(name).splitlines()) < 400


def test_without_checkpoints_the_page_holds_only_the_model(graph):
    model = build_model(TINY_MODEL, len(graph.vocab), 7, seed=0, device="cpu")
    data = explorer_data(model, graph, ["h", "r1", "r2"], step=0)
    assert data["timeline"] is None and data["features"] == {} and data["queries"]["default"] is not None
    assert 'class="gsx-timeline"' in explorer_figure(data).html  # the part ui.js hides
