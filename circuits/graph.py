"""The computational graph of a transformer, and circuits as scored subgraphs of it.

The residual stream at one position is a running sum: what a component *reads* (an
attention head's query, key or value input, an MLP's input, the final logits) is the sum
of what every earlier component at that position *wrote* (the token embedding, each
head's output, each MLP's output) plus constants (position embedding, biases). So the
model is a graph whose edges are writer -> reader pairs at one position:

* writers: ``emb@p``, ``a{L}.{H}@p`` (head H of layer L), ``m{L}@p`` (MLP of layer L);
* readers: the q, k and v inputs of every head, every MLP input, and ``out@p`` (the final
  residual, read by the unembedding) at the positions the metric reads the logits.

A writer feeds every reader after it: a layer-``L`` reader is fed by the embedding and
all components of layers below ``L``; an MLP is also fed by the heads of its own layer.
Information moves *between* positions only inside attention heads: head ``a{L}.{H}``
reads keys and values at positions ``p' <= p`` to write at ``p``. An edge into a head's
``k`` or ``v`` input at ``p'`` is therefore information the head may carry to a later
position (TransformerLens 4's ``enumerate_edges`` builds the same graph).

:class:`ModelGraph` is the full graph of a model at one prompt length, with every edge
at a fixed index of a ``pos writer reader`` tensor, so that edge scores and circuit
masks are plain tensors. :class:`CircuitGraph` is a circuit: a set of edges with their
scores and metadata, which saves to JSON and back exactly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.errors import GrokscopeError
from interp.io import atomic_write_text

NodeKind = Literal["embed", "head", "mlp", "logits"]
Channel = Literal["q", "k", "v", "mlp", "logits"]
HEAD_CHANNELS: tuple[Channel, ...] = ("q", "k", "v")

FORMAT = "grokscope-circuit"
VERSION = 1


class CircuitError(GrokscopeError, ValueError):
    """A circuit, graph or edge that does not fit the model or the request."""


# ------------------------------------------------------------------------------- nodes
_NODE_RE = re.compile(r"^(?:(emb)|a(\d+)\.(\d+)|m(\d+)|(out))@(\d+)$")


@dataclass(frozen=True)
class Node:
    """One component at one position: ``embed``, ``head`` (layer, head), ``mlp`` (layer) or ``logits``."""

    kind: NodeKind
    pos: int
    layer: int | None = None
    head: int | None = None

    def __post_init__(self) -> None:
        ok = {
            "embed": self.layer is None and self.head is None,
            "head": self.layer is not None and self.head is not None,
            "mlp": self.layer is not None and self.head is None,
            "logits": self.layer is None and self.head is None,
        }.get(self.kind)
        if not ok:
            raise CircuitError(f"malformed node {self.kind!r} (layer={self.layer}, head={self.head}, pos={self.pos})")

    @property
    def name(self) -> str:
        """``emb@0``, ``a2.3@1`` (layer 2, head 3, position 1), ``m1@2``, ``out@2``."""
        if self.kind == "embed":
            return f"emb@{self.pos}"
        if self.kind == "head":
            return f"a{self.layer}.{self.head}@{self.pos}"
        if self.kind == "mlp":
            return f"m{self.layer}@{self.pos}"
        return f"out@{self.pos}"

    @classmethod
    def parse(cls, name: str) -> Node:
        m = _NODE_RE.match(name)
        if m is None:
            raise CircuitError(f"cannot read node {name!r}; expected emb@P, aL.H@P, mL@P or out@P")
        emb, hl, hh, ml, out, pos = m.groups()
        if emb:
            return cls("embed", int(pos))
        if hl is not None:
            return cls("head", int(pos), int(hl), int(hh))
        if ml is not None:
            return cls("mlp", int(pos), int(ml))
        return cls("logits", int(pos))

    @property
    def depth(self) -> float:
        """Where the node sits in the forward pass: -1 embed, L head, L + 0.5 MLP, +inf logits."""
        if self.kind == "embed":
            return -1.0
        if self.kind == "logits":
            return math.inf
        assert self.layer is not None
        return self.layer + (0.5 if self.kind == "mlp" else 0.0)

    def sort_key(self) -> tuple[float, int, int]:
        return (self.depth, self.pos, -1 if self.head is None else self.head)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Edge:
    """``src`` writes into the ``channel`` input of ``dst`` at their (shared) position."""

    src: Node
    dst: Node
    channel: Channel

    @property
    def name(self) -> str:
        return f"{self.src.name}->{self.dst.name}.{self.channel}"

    @property
    def pos(self) -> int:
        return self.src.pos

    def __str__(self) -> str:
        return self.name


# -------------------------------------------------------------------------- full graph
@dataclass(frozen=True)
class ModelGraph:
    """Every writer -> reader edge of a model at a prompt length, laid out as ``pos writer reader``.

    Writer index ``w`` (per position): 0 the embedding; ``1 + L (H + 1) + h`` head ``h`` of
    layer ``L``; ``1 + L (H + 1) + H`` the MLP of layer ``L``. Reader index ``r``:
    ``L (3H + 1) + c H + h`` channel ``c`` (q, k, v) of head ``h`` of layer ``L``;
    ``L (3H + 1) + 3H`` the MLP input of layer ``L``; ``n_layers (3H + 1)`` the logits.
    """

    n_layers: int
    n_heads: int
    n_pos: int
    logit_positions: tuple[int, ...]

    def __post_init__(self) -> None:
        for p in self.logit_positions:
            if not 0 <= p < self.n_pos:
                raise CircuitError(f"logit position {p} is outside the {self.n_pos} prompt positions")

    @classmethod
    def of(cls, bridge: Any, n_pos: int, logit_positions: Sequence[int] | None = None) -> ModelGraph:
        """The graph of a TransformerLens bridge at prompts of ``n_pos`` tokens (logits read at the last)."""
        lp = (n_pos - 1,) if logit_positions is None else tuple(sorted({int(p) for p in logit_positions}))
        return cls(len(bridge.blocks), int(bridge.cfg.n_heads), n_pos, lp)

    # -- sizes and indices ---------------------------------------------------------------
    @property
    def n_writers(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_readers(self) -> int:
        return self.n_layers * (3 * self.n_heads + 1) + 1

    def writer_index(self, node: Node) -> int:
        H = self.n_heads
        if node.kind == "embed":
            return 0
        if node.kind == "head":
            return 1 + node.layer * (H + 1) + node.head  # type: ignore[operator]
        if node.kind == "mlp":
            return 1 + node.layer * (H + 1) + H  # type: ignore[operator]
        raise CircuitError(f"{node} writes nothing into the residual stream")

    def reader_index(self, node: Node, channel: Channel) -> int:
        H = self.n_heads
        if node.kind == "head" and channel in HEAD_CHANNELS:
            return node.layer * (3 * H + 1) + HEAD_CHANNELS.index(channel) * H + node.head  # type: ignore[operator]
        if node.kind == "mlp" and channel == "mlp":
            return node.layer * (3 * H + 1) + 3 * H  # type: ignore[operator]
        if node.kind == "logits" and channel == "logits":
            return self.n_layers * (3 * H + 1)
        raise CircuitError(f"{node} has no {channel!r} input")

    def writer(self, pos: int, w: int) -> Node:
        if w == 0:
            return Node("embed", pos)
        layer, k = divmod(w - 1, self.n_heads + 1)
        return Node("mlp", pos, layer) if k == self.n_heads else Node("head", pos, layer, k)

    def reader(self, pos: int, r: int) -> tuple[Node, Channel]:
        if r == self.n_readers - 1:
            return Node("logits", pos), "logits"
        layer, k = divmod(r, 3 * self.n_heads + 1)
        if k == 3 * self.n_heads:
            return Node("mlp", pos, layer), "mlp"
        c, h = divmod(k, self.n_heads)
        return Node("head", pos, layer, h), HEAD_CHANNELS[c]

    def index(self, edge: Edge) -> tuple[int, int, int]:
        """``(pos, writer, reader)`` of an edge of this graph."""
        if edge.src.pos != edge.dst.pos:
            raise CircuitError(f"edge {edge} joins two positions; edges stay at one position")
        self._check_node(edge.src)
        self._check_node(edge.dst)
        idx = (edge.pos, self.writer_index(edge.src), self.reader_index(edge.dst, edge.channel))
        if not bool(self.allowed[idx]):
            raise CircuitError(f"edge {edge} is not in the model's graph (a writer only feeds later readers)")
        return idx

    def edge(self, pos: int, w: int, r: int) -> Edge:
        dst, channel = self.reader(pos, r)
        return Edge(self.writer(pos, w), dst, channel)

    def _check_node(self, node: Node) -> None:
        if not 0 <= node.pos < self.n_pos:
            raise CircuitError(f"node {node} is outside the {self.n_pos} prompt positions")
        if node.layer is not None and not 0 <= node.layer < self.n_layers:
            raise CircuitError(f"node {node} is outside the model's {self.n_layers} layers")
        if node.head is not None and not 0 <= node.head < self.n_heads:
            raise CircuitError(f"node {node} is outside the model's {self.n_heads} heads")

    # -- the graph itself ----------------------------------------------------------------
    @cached_property
    def writer_depth(self) -> Float[Tensor, "writer"]:
        return torch.tensor([self.writer(0, w).depth for w in range(self.n_writers)])

    @cached_property
    def allowed(self) -> Bool[Tensor, "pos writer reader"]:
        """True for every edge of the graph: a writer feeds each reader after it (do not modify)."""
        w_depth = self.writer_depth
        r_layer = torch.tensor([self.reader(0, r)[0].layer if r < self.n_readers - 1 else self.n_layers
                                for r in range(self.n_readers)], dtype=torch.float)
        r_is_mlp = torch.tensor([self.reader(0, r)[1] == "mlp" for r in range(self.n_readers)])
        # an MLP also reads its own layer's heads (depth L), a head only layers below (depth < L)
        feeds = (w_depth[:, None] < r_layer[None, :]) | (r_is_mlp[None, :] & (w_depth[:, None] == r_layer[None, :]))
        per_pos = feeds.expand(self.n_pos, -1, -1).clone()
        no_logits = [p for p in range(self.n_pos) if p not in self.logit_positions]
        per_pos[no_logits, :, self.n_readers - 1] = False
        return per_pos

    @property
    def n_edges(self) -> int:
        return int(self.allowed.sum())

    def edges(self) -> list[Edge]:
        """Every edge, in index order (pos, writer, reader)."""
        return [self.edge(*map(int, idx)) for idx in self.allowed.nonzero()]

    def mask(self, edges: Iterable[Edge]) -> Bool[Tensor, "pos writer reader"]:
        """The ``pos writer reader`` mask of a set of edges."""
        out = torch.zeros(self.n_pos, self.n_writers, self.n_readers, dtype=torch.bool)
        for e in edges:
            out[self.index(e)] = True
        return out


# ------------------------------------------------------------------------------ circuits
@dataclass
class CircuitGraph:
    """A circuit: edges of a :class:`ModelGraph` with scores, per-node scores and metadata.

    ``edges`` maps each kept edge to its score (for discovered circuits: the estimated change
    of the metric when the edge is corrupted). ``positions`` names the prompt positions
    (``["h", "r1", "r2"]``). ``meta`` holds JSON-ready facts: the task, the method, the
    ablation and the measured faithfulness. Saves to JSON and loads back equal.
    """

    n_layers: int
    n_heads: int
    positions: list[str]
    logit_positions: list[int]
    edges: dict[Edge, float] = field(default_factory=dict)
    node_scores: dict[Node, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        space = self.space  # validates the sizes
        for e in self.edges:
            space.index(e)

    @property
    def space(self) -> ModelGraph:
        """The full graph this circuit is a subgraph of."""
        return ModelGraph(self.n_layers, self.n_heads, len(self.positions), tuple(self.logit_positions))

    @classmethod
    def full(cls, space: ModelGraph, positions: Sequence[str] | None = None, **meta: Any) -> CircuitGraph:
        """The whole model as a circuit (every edge, score 0)."""
        labels = list(positions) if positions is not None else [str(p) for p in range(space.n_pos)]
        return cls(space.n_layers, space.n_heads, labels, list(space.logit_positions),
                   {e: 0.0 for e in space.edges()}, meta=dict(meta))

    @classmethod
    def empty(cls, space: ModelGraph, positions: Sequence[str] | None = None, **meta: Any) -> CircuitGraph:
        labels = list(positions) if positions is not None else [str(p) for p in range(space.n_pos)]
        return cls(space.n_layers, space.n_heads, labels, list(space.logit_positions), {}, meta=dict(meta))

    # -- views -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.edges)

    def __contains__(self, item: Edge | Node) -> bool:
        if isinstance(item, Edge):
            return item in self.edges
        return item in self.nodes

    @property
    def nodes(self) -> list[Node]:
        """Every node an edge of the circuit touches, in forward order."""
        seen = {n for e in self.edges for n in (e.src, e.dst)}
        return sorted(seen, key=Node.sort_key)

    @property
    def heads(self) -> list[tuple[int, int]]:
        """The (layer, head) pairs of the circuit's heads, at any position."""
        return sorted({(n.layer, n.head) for n in self.nodes if n.kind == "head"})  # type: ignore[misc]

    def mask(self) -> Bool[Tensor, "pos writer reader"]:
        return self.space.mask(self.edges)

    def complement(self) -> CircuitGraph:
        """Every edge of the model that is not in this circuit (scores 0)."""
        rest = {e: 0.0 for e in self.space.edges() if e not in self.edges}
        return CircuitGraph(self.n_layers, self.n_heads, list(self.positions), list(self.logit_positions),
                            rest, meta={"complement_of": self.meta.get("name", "circuit")})

    def position_layer_mass(self) -> Float[Tensor, "pos layer"]:
        """Summed |score| of the circuit's edges by the position and layer of their *writer*
        (row ``layer = 0`` is the embedding, ``1 + L`` the components of layer ``L``)."""
        out = torch.zeros(len(self.positions), self.n_layers + 1, dtype=torch.float64)
        for e, s in self.edges.items():
            out[e.pos, 0 if e.src.kind == "embed" else e.src.layer + 1] += abs(s)  # type: ignore[operator]
        return out

    def to_dataframe(self):  # noqa: ANN201 - pandas
        """Tidy rows: src, dst, channel, pos, position label, src/dst layer, score."""
        import pandas as pd

        rows = [
            {
                "src": e.src.name, "dst": e.dst.name, "channel": e.channel, "pos": e.pos,
                "position": self.positions[e.pos], "src_layer": e.src.layer, "dst_layer": e.dst.layer,
                "score": s,
            }
            for e, s in self.edges.items()
        ]
        return pd.DataFrame(rows, columns=["src", "dst", "channel", "pos", "position", "src_layer", "dst_layer", "score"])

    def summary(self) -> str:
        """One line: size, heads and the measured faithfulness when known."""
        heads = ", ".join(f"a{L}.{H}" for L, H in self.heads) or "none"
        faith = self.meta.get("faithfulness")
        tail = f", faithfulness {faith:.3f}" if isinstance(faith, (int, float)) else ""
        return f"{len(self.edges)} of {self.space.n_edges} edges, {len(self.nodes)} nodes, heads {heads}{tail}"

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self, indent: int | None = 1) -> str:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "positions": list(self.positions),
            "logit_positions": list(self.logit_positions),
            "edges": [{"src": e.src.name, "dst": e.dst.name, "channel": e.channel, "score": s}
                      for e, s in self.edges.items()],
            "nodes": [{"node": n.name, "score": s} for n, s in self.node_scores.items()],
            "meta": self.meta,
        }
        return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> CircuitGraph:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CircuitError(f"not a circuit JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise CircuitError(f"not a circuit JSON (expected \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise CircuitError(f"circuit JSON version {data.get('version')!r} is not supported (expected {VERSION})")
        try:
            edges = {
                Edge(Node.parse(e["src"]), Node.parse(e["dst"]), e["channel"]): float(e["score"])
                for e in data["edges"]
            }
            nodes = {Node.parse(n["node"]): float(n["score"]) for n in data.get("nodes", [])}
            return cls(int(data["n_layers"]), int(data["n_heads"]), list(data["positions"]),
                       [int(p) for p in data["logit_positions"]], edges, nodes, dict(data.get("meta", {})))
        except (KeyError, TypeError) as err:
            raise CircuitError(f"circuit JSON is missing a field ({err})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CircuitGraph:
        path = Path(path)
        if not path.is_file():
            raise CircuitError(f"{path} does not exist")
        return cls.from_json(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------- pruning
def _any_before(x: Bool[Tensor, "pos head_index"]) -> Bool[Tensor, "pos head_index"]:
    """True at ``p`` where ``x`` is true at some position ``<= p``."""
    return x.to(torch.int8).cummax(0).values.bool()


def connected(space: ModelGraph, keep: Bool[Tensor, "pos writer reader"]) -> Bool[Tensor, "pos writer reader"]:
    """The edges of ``keep`` that lie on a path from an embedding to the logits.

    A head's output at ``p`` depends on its query input at ``p`` and its key and value
    inputs at every ``p' <= p``; an MLP's output on its input at the same position.
    """
    keep = keep & space.allowed
    P, W, R = keep.shape
    H, L = space.n_heads, space.n_layers
    # forward: which writers carry something from an embedding
    alive = torch.zeros(P, W, dtype=torch.bool)
    alive[:, 0] = True
    for layer in range(L):
        base_r = layer * (3 * H + 1)
        fed = (keep & alive[:, :, None]).any(1)  # pos reader: has a live incoming edge
        q = fed[:, base_r : base_r + H]
        kv = _any_before(fed[:, base_r + H : base_r + 2 * H] | fed[:, base_r + 2 * H : base_r + 3 * H])
        heads_alive = q | kv
        alive[:, 1 + layer * (H + 1) : 1 + layer * (H + 1) + H] = heads_alive
        fed = (keep & alive[:, :, None]).any(1)
        alive[:, 1 + layer * (H + 1) + H] = fed[:, base_r + 3 * H]
    # backward: which readers lead to the logits
    useful_w = torch.zeros(P, W, dtype=torch.bool)
    useful_r = torch.zeros(P, R, dtype=torch.bool)
    useful_r[:, R - 1] = True
    for layer in reversed(range(L)):
        base_r = layer * (3 * H + 1)
        mlp_w = 1 + layer * (H + 1) + H
        useful_w[:, mlp_w] = (keep[:, mlp_w, :] & useful_r).any(-1)
        useful_r[:, base_r + 3 * H] = useful_w[:, mlp_w]
        head_w = slice(1 + layer * (H + 1), 1 + layer * (H + 1) + H)
        useful_w[:, head_w] = (keep[:, head_w, :] & useful_r[:, None, :]).any(-1)
        out_used = useful_w[:, head_w]  # pos head
        useful_r[:, base_r : base_r + H] = out_used
        later = _any_before(out_used.flip(0)).flip(0)  # used at some position >= p
        useful_r[:, base_r + H : base_r + 2 * H] = later
        useful_r[:, base_r + 2 * H : base_r + 3 * H] = later
    return keep & alive[:, :, None] & useful_r[:, None, :]


def prune(
    scores: Float[Tensor, "pos writer reader"],
    space: ModelGraph,
    *,
    top_n: int | None = None,
    threshold: float | None = None,
    positions: Sequence[str] | None = None,
    keep_connected: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> CircuitGraph:
    """The circuit of the ``top_n`` edges by ``|score|`` (or those with ``|score| >= threshold``).

    With ``keep_connected`` the edges that lie on no path from an embedding to the logits
    are dropped afterwards: they carry nothing of the input to the answer.
    """
    if (top_n is None) == (threshold is None):
        raise CircuitError("give exactly one of top_n or threshold")
    allowed = space.allowed
    mag = scores.abs().masked_fill(~allowed, -1.0)
    if top_n is not None:
        if top_n < 0:
            raise CircuitError(f"top_n {top_n} must be at least 0")
        keep = torch.zeros_like(allowed)
        if top_n > 0:
            flat = mag.flatten()
            idx = flat.topk(min(top_n, int(allowed.sum()))).indices
            keep.view(-1)[idx] = True
    else:
        keep = mag >= float(threshold)  # type: ignore[arg-type]
    keep &= allowed
    if keep_connected:
        keep = connected(space, keep)
    edges = {space.edge(*map(int, idx)): float(scores[tuple(idx)]) for idx in keep.nonzero()}
    labels = list(positions) if positions is not None else [str(p) for p in range(space.n_pos)]
    return CircuitGraph(space.n_layers, space.n_heads, labels, list(space.logit_positions), edges,
                        meta=dict(meta or {}))
