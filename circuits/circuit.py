"""Circuits: scored subgraphs of a model's graph, saved to JSON and loaded back equal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuits.space import CircuitError, Edge, ModelGraph, Node
from interp.io import atomic_write_text, read_json

FORMAT = "grokscope-circuit"
VERSION = 1


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
        return cls(
            space.n_layers,
            space.n_heads,
            labels,
            list(space.logit_positions),
            {e: 0.0 for e in space.edges()},
            meta=dict(meta),
        )

    @classmethod
    def empty(cls, space: ModelGraph, positions: Sequence[str] | None = None, **meta: Any) -> CircuitGraph:
        """A circuit with no edge on the graph ``space``, its positions named ``positions`` (indices by default)."""
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
        """The circuit's edges as a ``pos writer reader`` mask of its model graph."""
        return self.space.mask(self.edges)

    def complement(self) -> CircuitGraph:
        """Every edge of the model that is not in this circuit (scores 0)."""
        rest = {e: 0.0 for e in self.space.edges() if e not in self.edges}
        return CircuitGraph(
            self.n_layers,
            self.n_heads,
            list(self.positions),
            list(self.logit_positions),
            rest,
            meta={"complement_of": self.meta.get("name", "circuit")},
        )

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
                "src": e.src.name,
                "dst": e.dst.name,
                "channel": e.channel,
                "pos": e.pos,
                "position": self.positions[e.pos],
                "src_layer": e.src.layer,
                "dst_layer": e.dst.layer,
                "score": s,
            }
            for e, s in self.edges.items()
        ]
        return pd.DataFrame(
            rows, columns=["src", "dst", "channel", "pos", "position", "src_layer", "dst_layer", "score"]
        )

    def summary(self) -> str:
        """One line: size, heads and the measured faithfulness when known."""
        heads = ", ".join(f"a{L}.{H}" for L, H in self.heads) or "none"
        faith = self.meta.get("faithfulness")
        tail = f", faithfulness {faith:.3f}" if isinstance(faith, (int, float)) else ""
        return f"{len(self.edges)} of {self.space.n_edges} edges, {len(self.nodes)} nodes, heads {heads}{tail}"

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self, indent: int | None = 1) -> str:
        """The circuit as JSON: format and version, the model's sizes, positions, scored edges, node scores, meta."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "positions": list(self.positions),
            "logit_positions": list(self.logit_positions),
            "edges": [
                {"src": e.src.name, "dst": e.dst.name, "channel": e.channel, "score": s} for e, s in self.edges.items()
            ],
            "nodes": [{"node": n.name, "score": s} for n, s in self.node_scores.items()],
            "meta": self.meta,
        }
        return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> CircuitGraph:
        """The circuit a :meth:`to_json` text holds; a one-line ``CircuitError`` for anything else."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CircuitError(f"not a circuit JSON ({err.msg} at line {err.lineno})") from None
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: Any) -> CircuitGraph:
        """The circuit a parsed :meth:`to_json` text holds; a one-line ``CircuitError`` for anything else."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise CircuitError(f'not a circuit JSON (expected "format": "{FORMAT}")')
        if data.get("version") != VERSION:
            raise CircuitError(f"circuit JSON version {data.get('version')!r} is not supported (expected {VERSION})")
        try:
            edges = {
                Edge(Node.parse(e["src"]), Node.parse(e["dst"]), e["channel"]): float(e["score"]) for e in data["edges"]
            }
            nodes = {Node.parse(n["node"]): float(n["score"]) for n in data.get("nodes", [])}
            return cls(
                int(data["n_layers"]),
                int(data["n_heads"]),
                list(data["positions"]),
                [int(p) for p in data["logit_positions"]],
                edges,
                nodes,
                dict(data.get("meta", {})),
            )
        except CircuitError:
            raise
        except (KeyError, TypeError, AttributeError) as err:
            raise CircuitError(f"circuit JSON is missing a field or has one of the wrong type ({err})") from None
        except (ValueError, OverflowError) as err:  # int("x"), float("x"), int(inf)
            raise CircuitError(f"circuit JSON has a value of the wrong kind ({err})") from None

    def save(self, path: str | Path) -> Path:
        """Write the circuit's JSON to ``path`` atomically (parent folders created); returns ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CircuitGraph:
        """The circuit saved at ``path``; a one-line ``CircuitError`` naming the file if it is missing or no circuit."""
        data = read_json(path, CircuitError, what="circuit JSON", invalid="not a circuit JSON")
        try:
            return cls.from_data(data)
        except CircuitError as err:  # name the file to fix
            raise CircuitError(f"{path}: {err}") from None
