"""The Neuronpedia / circuit-tracer graph JSON: ids and fields as the viewer reads them, weights from the
graph, atomic files with the folder index, one-line schema errors naming the file; the SVG renderer."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.views.feature_graph import feature_graph_figure, feature_graph_html
from interp.features import (
    GraphFormatError,
    attribution_graph,
    graph_scores,
    graph_to_json,
    load_graph_json,
    prompt_tokens,
    prune_graph,
    write_graph_files,
)

from .test_attribution_graph import random_transcoders


@pytest.fixture(scope="module")
def g(bridge64, graph):
    ex = graph.examples("test_id")[1]
    return attribution_graph(
        bridge64,
        random_transcoders(bridge64),
        prompt_tokens(graph, ex.input_tokens),
        vocab=graph.vocab,
        answer=ex.target_tokens[0],
    )


def test_the_json_has_circuit_tracers_schema_and_the_graphs_weights(g):
    data = graph_to_json(g, "two-hop", node_threshold=0.8, edge_threshold=0.98)
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    meta = data["metadata"]
    assert meta["slug"] == "two-hop" and meta["schema_version"] == 1 and meta["node_threshold"] == 0.8
    assert meta["prompt_tokens"] == g.token_strings and meta["scan"] == f"grokscope-{g.meta['model_fingerprint']}"
    assert (meta["replacement_score"], meta["completeness_score"]) == graph_scores(g)
    assert 0 <= meta["replacement_score"] <= 1 and 0 <= meta["completeness_score"] <= 1
    assert data["qParams"] == {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    by_id = {n["node_id"]: n for n in data["nodes"]}
    assert len(by_id) == len(data["nodes"])
    kinds = {n["feature_type"] for n in data["nodes"]}
    assert kinds == {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"} or kinds >= {
        "cross layer transcoder",
        "embedding",
        "logit",
    }
    for pos, tok in enumerate(g.input_tokens.tolist()):  # every embedding, kept always
        node = by_id[f"E_{tok}_{pos}"]
        assert (node["layer"], node["ctx_idx"], node["feature"], node["jsNodeId"]) == ("E", pos, pos, f"E_{tok}-{pos}")
    last = g.n_pos - 1
    for i, tok in enumerate(g.logit_tokens.tolist()):
        node = by_id[f"{g.n_layers + 1}_{tok}_{last}"]
        assert node["token_prob"] == pytest.approx(float(g.logit_probabilities[i]))
        assert node["is_target_logit"] == (i == 0) and node["clerp"].startswith(f'Output "{g.logit_strings[i]}"')
    index = {}
    for i, (layer, pos, feat) in enumerate(g.active_features.tolist()):
        index[f"{layer}_{feat}_{pos}"] = i
    for layer in range(g.n_layers):
        for pos in range(g.n_pos):
            index[f"0_{layer}_{pos}"] = g.error_index(layer, pos)
    for pos, tok in enumerate(g.input_tokens.tolist()):
        index[f"E_{tok}_{pos}"] = g.embedding_index(pos)
    for i, tok in enumerate(g.logit_tokens.tolist()):
        index[f"{g.n_layers + 1}_{tok}_{last}"] = g.logit_index(i)
    pruned = prune_graph(g, 0.8, 0.98)
    assert len(data["links"]) == int(pruned.edge_mask.sum()) > 0
    for link in data["links"]:
        t, s = index[link["target"]], index[link["source"]]
        assert link["weight"] == float(g.adjacency[t, s]) and bool(pruned.edge_mask[t, s])
    for node in data["nodes"]:
        if node["feature_type"] == "cross layer transcoder":
            i = index[node["node_id"]]
            layer, _, feat = g.active_features[i].tolist()
            assert node["activation"] == float(g.activations[i])
            assert node["feature"] == (layer + feat) * (layer + feat + 1) // 2 + feat
            # kept: at most the first node whose cumulative influence reaches the threshold
            cut = float(pruned.cumulative_scores[pruned.cumulative_scores >= 0.8].min())
            assert node["influence"] == float(pruned.cumulative_scores[i]) <= cut


def test_files_are_written_with_the_index_and_load_back(g, tmp_path):
    path = write_graph_files(g, tmp_path, "a")
    write_graph_files(g, tmp_path, "b", node_threshold=0.5)
    write_graph_files(g, tmp_path, "a", node_threshold=0.6)  # replaces a's entry
    assert load_graph_json(path) == json.loads(path.read_text())
    index = json.loads((tmp_path / "graph-metadata.json").read_text())
    assert [(m["slug"], m["node_threshold"]) for m in index["graphs"]] == [("b", 0.5), ("a", 0.6)]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("links"), "missing top-level key 'links'"),
        (lambda d: d["metadata"].pop("slug"), "metadata.slug must be a str"),
        (lambda d: d["nodes"][0].update(feature_type="neuron"), "is not one of"),
        (lambda d: d["nodes"][0].update(ctx_idx="0"), r"nodes\[0\].ctx_idx must be a int"),
        (lambda d: d["links"].append({"source": "nope", "target": "nope", "weight": 1.0}), "is not a node id"),
        (lambda d: d.update(qParams=[]), "'qParams' must be an object"),
    ],
)
def test_a_file_off_the_schema_is_a_one_line_error_naming_it(g, tmp_path, edit, message):
    data = graph_to_json(g, "x")
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GraphFormatError, match=message) as err:
        load_graph_json(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_text("{not json")
    with pytest.raises(GraphFormatError, match="not valid JSON"):
        load_graph_json(path)


def test_the_svg_draws_every_kept_node_and_link_with_escaped_labels(g):
    data = graph_to_json(g, "x", node_threshold=0.6)
    data["metadata"]["prompt_tokens"][0] = "<script>alert(1)</script>"
    html = feature_graph_html(data, title="a & b", max_edges=None, max_per_cell=1000)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a &amp; b" in html
    assert html.count('class="gs-edge"') == len(data["links"])
    assert html.count('class="gs-node ') == len(data["nodes"])
    positive = sum(1 for lk in data["links"] if lk["weight"] >= 0)
    assert html.count('stroke="#2166ac"') == positive
    assert html.count('stroke="#b2182b"') == len(data["links"]) - positive
    strongest = max(data["links"], key=lambda lk: abs(lk["weight"]))
    assert f"{strongest['weight']:.3g}</title>" in html
    assert feature_graph_figure(g)._repr_html_().startswith('<figure class="gs-figure">')
    with pytest.raises(GraphFormatError, match="missing top-level key"):
        feature_graph_html({"nodes": []})


def test_thresholds_and_slug_are_checked(g):
    with pytest.raises(GraphFormatError, match="slug"):
        graph_to_json(g, "")
    with pytest.raises(Exception, match=r"node_threshold = 1.5 must lie in \[0, 1\]"):
        graph_to_json(g, "x", node_threshold=1.5)
    assert torch.isfinite(g.adjacency).all()
