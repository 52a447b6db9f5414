"""Circuit discovery reaches its faithfulness target; circuit shapes are read off correctly."""

from __future__ import annotations

import pytest

from circuits.ablation import evaluate_circuit
from circuits.discover import circuit_shape, find_circuit, handoff, layer_split_mass
from circuits.graph import CircuitError, CircuitGraph, Edge, Node


def test_find_circuit_reaches_its_target(bridge, task):
    circuit = find_circuit(bridge, task, ig_steps=2, target=0.8)
    meta = circuit.meta
    assert meta["faithfulness"] == pytest.approx(meta["evaluations"]["mean"]["faithfulness"])
    assert meta["faithfulness"] >= 0.8
    assert 0 < len(circuit) <= meta["evaluations"]["mean"]["total_edges"]
    sizes = [row[0] for row in meta["search"]]
    assert sizes == sorted(sizes) and sizes[-1] == meta["top_n"]
    assert all(row[2] < 0.8 for row in meta["search"][:-1])  # the smallest size on the grid that reaches it
    # the stored evaluation is what evaluating the circuit gives
    again = evaluate_circuit(bridge, task, circuit, "resample")
    assert again.faithfulness == pytest.approx(meta["evaluations"]["resample"]["faithfulness"], abs=1e-12)
    assert CircuitGraph.from_json(circuit.to_json()) == circuit


def test_fixed_size_circuit(bridge, task):
    circuit = find_circuit(bridge, task, method="eap", top_n=30)
    assert len(circuit) <= 30
    assert circuit.meta["search"] == [] and circuit.meta["method"] == "eap"


def _circuit(edges: list[tuple[Edge, float]]) -> CircuitGraph:
    return CircuitGraph(3, 4, ["h", "r1", "r2"], [2], dict(edges))


def test_circuit_shape_finds_the_heads_that_move_information():
    e = [
        (Edge(Node("embed", 1), Node("mlp", 1, 0), "mlp"), -1.0),
        (Edge(Node("mlp", 1, 0), Node("head", 1, 2, 3), "v"), -2.0),  # a2.3 reads what m0 computed at r1 ...
        (Edge(Node("embed", 1), Node("head", 1, 2, 3), "k"), 0.5),  # ... and the r1 token itself
        (Edge(Node("head", 2, 2, 3), Node("logits", 2), "logits"), -3.0),  # ... and writes at r2
        (Edge(Node("embed", 0), Node("head", 0, 1, 0), "v"), 0.25),  # a1.0 reads the h token ...
        (Edge(Node("head", 2, 1, 0), Node("logits", 2), "logits"), 0.25),  # ... and writes at r2
    ]
    circuit = _circuit(e)
    shape = circuit_shape(circuit)
    movers = {(m.layer, m.head, m.src_pos, m.dst_pos): m for m in shape["movers"]}
    assert set(movers) == {(2, 3, 1, 2), (1, 0, 0, 2)}
    a23 = movers[(2, 3, 1, 2)]
    assert (a23.reads, a23.reads_computed, a23.writes) == (2.5, 2.0, 3.0)
    assert movers[(1, 0, 0, 2)].reads_computed == 0.0
    assert shape["writer_layers"] == {"h": {}, "r1": {0: 2.0}, "r2": {1: 0.25, 2: 3.0}}
    assert layer_split_mass(circuit, 1, 2) == (3.5, 0.0)
    assert layer_split_mass(circuit, 2, 2) == (0.25, 3.0)
    hand = handoff(circuit, 1, 2)
    assert hand.layer == 2 and hand.mass_by_layer == {2: 2.0} and hand.src_done == 1.0
    assert [(m.layer, m.head) for m in hand.movers] == [(2, 3)]
    with pytest.raises(CircuitError):
        handoff(circuit, 0, 2)  # a1.0 reads only the h token: nothing computed is moved
