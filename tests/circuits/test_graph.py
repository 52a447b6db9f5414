"""The model graph and circuits: edge layout, JSON round trip, pruning to connected circuits."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.graph import CircuitError, CircuitGraph, Edge, ModelGraph, Node, connected, prune

SPACE = ModelGraph(n_layers=3, n_heads=4, n_pos=3, logit_positions=(2,))


def test_node_names_round_trip():
    nodes = [Node("embed", 0), Node("head", 2, 1, 3), Node("mlp", 1, 0), Node("logits", 2)]
    assert [n.name for n in nodes] == ["emb@0", "a1.3@2", "m0@1", "out@2"]
    assert [Node.parse(n.name) for n in nodes] == nodes
    with pytest.raises(CircuitError):
        Node.parse("b1.2@0")
    with pytest.raises(CircuitError):
        Node("head", 0, 1)  # a head needs its index


def test_edge_count_matches_the_residual_stream_rule():
    # per position: each of the 3H + 1 readers of layer L is fed by 1 + L (H + 1) writers, the MLP
    # also by the H heads of its own layer; the logits (at one position) by all 1 + n (H + 1) writers
    L, H, P = 3, 4, 3
    per_pos = sum((3 * H) * (1 + layer * (H + 1)) + (1 + layer * (H + 1) + H) for layer in range(L))
    assert SPACE.n_edges == P * per_pos + (1 + L * (H + 1))


def test_edge_index_round_trip():
    edges = SPACE.edges()
    assert len(edges) == len(set(edges)) == SPACE.n_edges
    for idx, e in zip(SPACE.allowed.nonzero().tolist(), edges):
        assert SPACE.index(e) == tuple(idx)
        assert e.src.depth < e.dst.depth or (e.channel == "mlp" and e.src.layer == e.dst.layer)


def test_edges_only_run_forward():
    with pytest.raises(CircuitError, match="not in the model's graph"):
        SPACE.index(Edge(Node("mlp", 0, 2), Node("head", 0, 1, 0), "q"))  # layer 2 cannot feed layer 1
    with pytest.raises(CircuitError, match="not in the model's graph"):
        SPACE.index(Edge(Node("head", 0, 1, 0), Node("head", 0, 1, 2), "v"))  # nor its own layer's heads
    with pytest.raises(CircuitError, match="one position"):
        SPACE.index(Edge(Node("embed", 0), Node("mlp", 1, 0), "mlp"))
    with pytest.raises(CircuitError, match="not in the model's graph"):
        SPACE.index(Edge(Node("embed", 0), Node("logits", 0), "logits"))  # logits are read at position 2 only


def _random_circuit(seed: int = 0) -> CircuitGraph:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(SPACE.allowed.shape, generator=gen, dtype=torch.float64)
    circuit = prune(
        scores, SPACE, top_n=60, positions=["h", "r1", "<r2>"], meta={"task": "test", "nested": {"a": [1, 2.5]}}
    )
    circuit.node_scores = {n: float(torch.randn((), generator=gen)) for n in circuit.nodes if n.kind != "logits"}
    return circuit


def test_circuit_json_round_trip_is_exact(tmp_path):
    circuit = _random_circuit()
    assert len(circuit) > 0
    again = CircuitGraph.from_json(circuit.to_json())
    assert again == circuit
    assert list(again.edges) == list(circuit.edges)  # order kept too
    path = circuit.save(tmp_path / "c.json")
    assert CircuitGraph.load(path) == circuit
    assert json.loads(path.read_text())["format"] == "grokscope-circuit"


def test_bad_circuit_json_is_one_line(one_line):
    circuit = _random_circuit()
    data = json.loads(circuit.to_json())
    data["edges"].append({"src": "m2@0", "dst": "a0.0@0", "channel": "q", "score": 1.0})
    with pytest.raises(CircuitError) as err:
        CircuitGraph.from_json(json.dumps(data))
    assert "not in the model's graph" in one_line(err.value)
    with pytest.raises(CircuitError) as err:
        CircuitGraph.from_json("{}")
    one_line(err.value)


def _reaches(space: ModelGraph, keep: torch.Tensor, edge: Edge) -> tuple[bool, bool]:
    """Brute force: is the edge's writer fed from an embedding, and does its reader lead to the logits?"""
    kept = [space.edge(*map(int, i)) for i in keep.nonzero()]

    def fed(node: Node) -> bool:
        if node.kind == "embed":
            return True
        if node.kind == "head":  # q at its position, k/v at any position before or at it
            ins = [
                e
                for e in kept
                if e.dst.layer == node.layer
                and e.dst.head == node.head
                and e.dst.kind == "head"
                and ((e.channel == "q" and e.pos == node.pos) or (e.channel in "kv" and e.pos <= node.pos))
            ]
        else:
            ins = [e for e in kept if e.dst == node]
        return any(fed(e.src) for e in ins)

    def useful(node: Node, channel: str) -> bool:
        if node.kind == "logits":
            return True
        outs_at = [node.pos] if channel in ("q", "mlp") else range(node.pos, space.n_pos)
        return any(
            any(
                e.src == (node if node.kind == "mlp" else Node("head", p, node.layer, node.head))
                and useful(e.dst, e.channel)
                for e in kept
            )
            for p in outs_at
        )

    return fed(edge.src), useful(edge.dst, edge.channel)


def test_pruning_keeps_exactly_the_connected_edges():
    gen = torch.Generator().manual_seed(3)
    small = ModelGraph(2, 2, 3, (2,))
    scores = torch.randn(small.allowed.shape, generator=gen)
    keep = torch.zeros_like(small.allowed)
    keep.view(-1)[scores.abs().masked_fill(~small.allowed, -1).flatten().topk(25).indices] = True
    kept = connected(small, keep)
    assert bool((kept <= keep).all())
    for idx in keep.nonzero():
        e = small.edge(*map(int, idx))
        assert bool(kept[tuple(idx)]) == all(_reaches(small, keep, e)), e


def test_prune_top_n_and_threshold():
    scores = torch.zeros(SPACE.allowed.shape)
    everything = prune(scores + 1.0, SPACE, top_n=SPACE.n_edges, keep_connected=False)
    assert set(everything.edges) == set(CircuitGraph.full(SPACE).edges) == set(SPACE.edges())
    # the last layer's components at positions whose logits are not read lead nowhere
    live = prune(scores + 1.0, SPACE, top_n=SPACE.n_edges)
    dead = set(SPACE.edges()) - set(live.edges)
    assert dead and all(e.pos < 2 and e.dst.layer == 2 for e in dead)
    assert len(prune(scores, SPACE, top_n=0)) == 0
    assert set(prune(scores + 2.0, SPACE, threshold=2.0).edges) == set(live.edges)
    assert len(prune(scores + 2.0, SPACE, threshold=2.5)) == 0
    with pytest.raises(CircuitError):
        prune(scores, SPACE, top_n=3, threshold=1.0)


def test_complement_partitions_the_graph():
    circuit = _random_circuit(1)
    rest = circuit.complement()
    assert set(rest.edges).isdisjoint(circuit.edges)
    assert len(rest) + len(circuit) == SPACE.n_edges
    assert bool((rest.mask() | circuit.mask()).eq(SPACE.allowed).all())
