"""The HTML report: one self-contained file, escaped tokens, renderers usable in notebooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from circuits.graph import CircuitGraph
from circuits.views.render import Section, attention_heads, circuit_svg, circuitsvis_bundle, heatmap, line_chart, page

EVIL = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "a&b", "</a>"]


def test_report_is_one_offline_file(tiny_report):
    html = tiny_report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # circuitsvis runs from its bundled script, inlined once; nothing is fetched
    assert html.count("var CircuitsVis") == 1
    assert "unpkg.com" not in html and "cdn.jsdelivr" not in html
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=""", html, re.I)
    assert "default-src 'none'" in html  # the page itself forbids fetches
    # every section is there, each with its figures
    for heading in (
        "Grokking",
        "Explorer",
        "Logit lens",
        "Causal tracing",
        "Where the intermediate lives",
        "Circuit",
        "Attention patterns of the circuit",
        "Circuit formation",
    ):
        assert f"<h2>{heading}" in html
    assert html.count('class="gs-heatmap"') == 3 + 3  # lens targets + swapped tokens
    assert html.count('class="gs-graph"') == 1
    assert html.count("CircuitsVis.render(") >= 1
    assert "gs-error" not in html.split("</style>", 1)[1]


def test_report_holds_the_explorer_with_the_model_and_every_checkpoint(tiny_report, tiny_run_dir):
    from interp.runs import list_checkpoints, load_checkpoint

    html = tiny_report.read_text(encoding="utf-8")
    assert html.index("<h2>Explorer") < html.index("<h2>Logit lens")  # right after the curves
    data = json.loads(html.split('id="gsx-data">', 1)[1].split("</script>", 1)[0])
    run = load_checkpoint(tiny_run_dir, device="cpu")
    assert data["step"] == run.step and data["positions"] == ["h", "r1", "r2"]
    assert data["weights"]["config"]["n_layers"] == 2 and data["weights"]["config"]["d_model"] == 32
    steps = [int(p.name.split("_")[1]) for p in list_checkpoints(tiny_run_dir)]
    timeline = data["timeline"]
    assert [c["step"] for c in timeline["checkpoints"]] == steps  # four checkpoints: all on the slider
    circuit = CircuitGraph.load(tiny_report.with_suffix(".circuit.json"))
    assert len(circuit) in timeline["sizes"] and data["circuit_size"] == len(circuit)
    for ck in timeline["checkpoints"]:
        assert len(ck["circuits"]) == len(ck["faithfulness"]) == len(timeline["sizes"])
        assert set(ck["lens"]) == {"bridge", "r2", "answer"} and set(ck["tracing"]) == {"h", "r1", "r2"}


def test_tokens_are_escaped_everywhere(tiny_report):
    html = tiny_report.read_text(encoding="utf-8")
    body = html.replace(circuitsvis_bundle(), "")
    assert "&lt;e_" in body  # token names such as <e_3> are shown ...
    assert not re.search(r"<[er]_\d+>", body)  # ... and never appear as tags, in text or in script data


def test_report_circuit_json_loads(tiny_report):
    circuit = CircuitGraph.load(tiny_report.with_suffix(".circuit.json"))
    assert circuit.positions == ["h", "r1", "r2"]
    assert set(circuit.meta["evaluations"]) == {"mean", "resample"}


def test_renderers_escape_hostile_labels():
    fig = heatmap(torch.rand(2, 4), ["0", "1"], EVIL, title=EVIL[0])
    assert "<script>alert" not in fig.html and "<img" not in fig.html
    assert "&lt;script&gt;" in fig.html and "a&amp;b" in fig.html
    chart = line_chart([1, 2, 3], {EVIL[1]: [0.1, None, 0.3]}, title=EVIL[0])
    assert "<img" not in chart.html and "<script>alert" not in chart.html
    att = attention_heads(torch.rand(1, 4, 4).tril(), EVIL, [EVIL[0]], title=EVIL[1])
    script = att.html.split("<script>", 1)[1].rsplit("</script>", 1)[0]
    assert "</" not in script and "<" not in script.replace("<script>", "")  # nothing in the data can end the script
    props = json.loads(script[script.index("{") : script.rindex("}") + 1])
    assert props["tokens"] == EVIL  # and the data arrives intact


def test_figures_display_in_notebooks():
    svg = heatmap(torch.eye(2), ["a", "b"], ["c", "d"])
    assert svg._repr_html_() == svg.html and "var CircuitsVis" not in svg.html
    att = attention_heads(torch.eye(3)[None], ["x", "y", "z"], ["L0H0"])
    assert att.needs_circuitsvis
    shown = att._repr_html_()
    assert shown.startswith("<script>") and "var CircuitsVis" in shown and shown.endswith(att.html)


def test_page_inlines_the_bundle_only_when_needed():
    svg = heatmap(torch.eye(2), ["a", "b"], ["c", "d"])
    assert "var CircuitsVis" not in page("t", [Section("s", [svg])])
    att = attention_heads(torch.eye(3)[None], ["x", "y", "z"], ["L0H0"])
    assert page("t", [Section("s", [svg, att, att])]).count("var CircuitsVis") == 1


def test_circuit_svg_draws_every_edge_and_mover(tiny_report):
    circuit = CircuitGraph.load(tiny_report.with_suffix(".circuit.json"))
    fig = circuit_svg(circuit, max_edges=None)
    assert fig.html.count('class="gs-edge"') == len(circuit)
    assert fig.html.count('class="gs-node gs-in"') == len([n for n in circuit.nodes])
    with pytest.raises(ValueError):
        heatmap(torch.zeros(2, 2), ["a"], ["b", "c"])


def test_write_report_cli_contract(tiny_run_dir, tmp_path):
    from circuits.views.report import write_report

    out = write_report(tiny_run_dir, tmp_path / "sub" / "r.html", n=12, formation=False, explorer=False)
    assert isinstance(out, Path) and out == tmp_path / "sub" / "r.html" and out.is_file()
    html = out.read_text(encoding="utf-8")
    assert "<h2>Circuit formation" not in html and "<h2>Explorer" not in html and "gsx-data" not in html
