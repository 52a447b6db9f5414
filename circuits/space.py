"""The full graph of a model: its nodes, its writer -> reader edges, and their tensor layout.

:class:`Node` is one component at one position, :class:`Edge` a writer feeding one input
of a later reader at that position, :class:`ModelGraph` every edge of a model at a prompt
length, each at a fixed index of a ``pos writer reader`` tensor (see :mod:`circuits.graph`
for the graph itself).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.errors import GrokscopeError
from interp.models.protocol import Bridge

NodeKind = Literal["embed", "head", "mlp", "logits"]
Channel = Literal["q", "k", "v", "mlp", "logits"]
HEAD_CHANNELS: tuple[Channel, ...] = ("q", "k", "v")


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
        """The node a :attr:`name` spells (``emb@0``, ``a2.3@1``, ``m1@2``, ``out@2``); a one-line error otherwise."""
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
        """The order of nodes in the forward pass: by depth, then position, then head."""
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
        """``SRC->DST.CHANNEL``, e.g. ``a0.1@1->m1@1.mlp``."""
        return f"{self.src.name}->{self.dst.name}.{self.channel}"

    @property
    def pos(self) -> int:
        """The position the edge lies at (writer and reader share it)."""
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
    def of(cls, bridge: Bridge, n_pos: int, logit_positions: Sequence[int] | None = None) -> ModelGraph:
        """The graph of a TransformerLens bridge at prompts of ``n_pos`` tokens (logits read at the last)."""
        lp = (n_pos - 1,) if logit_positions is None else tuple(sorted({int(p) for p in logit_positions}))
        return cls(len(bridge.blocks), int(bridge.cfg.n_heads), n_pos, lp)

    # -- sizes and indices ---------------------------------------------------------------
    @property
    def n_writers(self) -> int:
        """Writers per position: the embedding, then each layer's heads and its MLP."""
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_readers(self) -> int:
        """Readers per position: each layer's head q, k and v inputs and its MLP input, then the logits."""
        return self.n_layers * (3 * self.n_heads + 1) + 1

    def writer_index(self, node: Node) -> int:
        """The writer index of ``node`` (the ``writer`` axis); a one-line error for a node that writes nothing."""
        H = self.n_heads
        if node.kind == "embed":
            return 0
        if node.kind == "head":
            return 1 + node.layer * (H + 1) + node.head  # type: ignore[operator]
        if node.kind == "mlp":
            return 1 + node.layer * (H + 1) + H  # type: ignore[operator]
        raise CircuitError(f"{node} writes nothing into the residual stream")

    def reader_index(self, node: Node, channel: Channel) -> int:
        """The reader index of ``node``'s ``channel`` input (the ``reader`` axis); a one-line error if it has none."""
        H = self.n_heads
        if node.kind == "head" and channel in HEAD_CHANNELS:
            return node.layer * (3 * H + 1) + HEAD_CHANNELS.index(channel) * H + node.head  # type: ignore[operator]
        if node.kind == "mlp" and channel == "mlp":
            return node.layer * (3 * H + 1) + 3 * H  # type: ignore[operator]
        if node.kind == "logits" and channel == "logits":
            return self.n_layers * (3 * H + 1)
        raise CircuitError(f"{node} has no {channel!r} input")

    def writer(self, pos: int, w: int) -> Node:
        """The writer node at writer index ``w`` and position ``pos``."""
        if w == 0:
            return Node("embed", pos)
        layer, k = divmod(w - 1, self.n_heads + 1)
        return Node("mlp", pos, layer) if k == self.n_heads else Node("head", pos, layer, k)

    def reader(self, pos: int, r: int) -> tuple[Node, Channel]:
        """The reader node and its input channel at reader index ``r`` and position ``pos``."""
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
        """The edge at index ``(pos, w, r)`` of the ``pos writer reader`` layout."""
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
    def writer_depth(self) -> Float[Tensor, " writer"]:
        """Each writer's :attr:`Node.depth`, along the ``writer`` axis."""
        return torch.tensor([self.writer(0, w).depth for w in range(self.n_writers)])

    @cached_property
    def allowed(self) -> Bool[Tensor, "pos writer reader"]:
        """True for every edge of the graph: a writer feeds each reader after it (do not modify)."""
        w_depth = self.writer_depth
        r_layer = torch.tensor(
            [self.reader(0, r)[0].layer if r < self.n_readers - 1 else self.n_layers for r in range(self.n_readers)],
            dtype=torch.float,
        )
        r_is_mlp = torch.tensor([self.reader(0, r)[1] == "mlp" for r in range(self.n_readers)])
        # an MLP also reads its own layer's heads (depth L), a head only layers below (depth < L)
        feeds = (w_depth[:, None] < r_layer[None, :]) | (r_is_mlp[None, :] & (w_depth[:, None] == r_layer[None, :]))
        per_pos = feeds.expand(self.n_pos, -1, -1).clone()
        no_logits = [p for p in range(self.n_pos) if p not in self.logit_positions]
        per_pos[no_logits, :, self.n_readers - 1] = False
        return per_pos

    @property
    def n_edges(self) -> int:
        """How many edges the graph has (True entries of :attr:`allowed`)."""
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
