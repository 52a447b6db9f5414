"""Attribution graphs as the JSON circuit-tracer writes and Neuronpedia's graph viewer loads.

One file per graph, ``{slug}.json``, with four top-level keys:

* ``metadata``  ``slug``, ``scan`` (which transcoders: here ``grokscope-<model fingerprint>``),
  ``transcoder_list``, ``prompt_tokens``, ``prompt``, ``node_threshold``, ``schema_version`` (1),
  and circuit-tracer's ``replacement_score`` and ``completeness_score`` of the unpruned graph;
* ``qParams``   the viewer's state: ``pinnedIds``, ``supernodes``, ``linkType``, ``clickedId``, ``sg_pos``;
* ``nodes``     one object per kept node: ``node_id``, ``feature``, ``layer``, ``ctx_idx``,
  ``feature_type``, ``token_prob``, ``is_target_logit``, ``run_idx``, ``reverse_ctx_idx``,
  ``jsNodeId``, ``clerp``, ``influence`` (cumulative influence), ``activation``;
* ``links``     ``source``, ``target`` (node ids) and ``weight`` (the direct effect).

Node ids as circuit-tracer: feature ``"{layer}_{feature}_{ctx}"`` (``feature_type`` ``"cross
layer transcoder"``, ``feature`` the Cantor pairing of layer and index), error
``"0_{layer}_{ctx}"`` (``"mlp reconstruction error"``), embedding ``"E_{token id}_{ctx}"``
(layer ``"E"``, ``"embedding"``), logit ``"{n_layers + 1}_{token id}_{ctx}"`` (``"logit"``).
:func:`write_graph_files` also keeps the folder's ``graph-metadata.json`` index. Writes are
atomic; :func:`load_graph_json` checks a file against the schema with a one-line error::

    from interp.features import write_graph_files, load_graph_json
    path = write_graph_files(graph, OUT, slug="two-hop-e0")   # OUT/two-hop-e0.json, OUT/graph-metadata.json
    data = load_graph_json(path)                              # GraphFormatError if it is not the schema
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.features.attribution_graph import AttributionGraph
from interp.features.config import FeatureError
from interp.features.graph_prune import graph_scores, prune_graph
from interp.io import atomic_write_json, read_json

SCHEMA_VERSION = 1
METADATA_FILE = "graph-metadata.json"
FEATURE_TYPES = ("cross layer transcoder", "mlp reconstruction error", "embedding", "logit")
_METADATA = {"slug": str, "scan": str, "transcoder_list": list, "prompt_tokens": list, "prompt": str}
_QPARAMS = {"pinnedIds": list, "supernodes": list, "linkType": str, "clickedId": str, "sg_pos": str}
_NODE = {"node_id": str, "feature": int, "layer": str, "ctx_idx": int, "feature_type": str, "jsNodeId": str}
_NODE_OPTIONAL = {
    "token_prob": (int, float),
    "is_target_logit": bool,
    "run_idx": int,
    "reverse_ctx_idx": int,
    "clerp": str,
    "influence": (int, float, type(None)),
    "activation": (int, float, type(None)),
}


class GraphFormatError(FeatureError):
    """A graph file that is not circuit-tracer's / Neuronpedia's JSON schema."""


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _node(node_id: str, feature: int, layer: str, ctx: int, kind: str, js: str, **extra: Any) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "feature": feature,
        "layer": layer,
        "ctx_idx": ctx,
        "feature_type": kind,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "jsNodeId": js,
        "clerp": "",
        "influence": None,
        "activation": None,
        **extra,
    }


def graph_nodes(
    graph: AttributionGraph, influence: list[float] | None = None, clerps: dict[tuple[int, int], str] | None = None
) -> list[dict[str, Any]]:
    """Every node of ``graph`` as a JSON node, in the graph's order (``clerps``: labels by ``(layer, feature)``)."""
    inf = influence if influence is not None else [None] * graph.n_nodes
    nodes = []
    for i, (layer, pos, feat) in enumerate(graph.active_features.tolist()):
        nodes.append(
            _node(
                f"{layer}_{feat}_{pos}",
                _cantor(layer, feat),
                str(layer),
                pos,
                FEATURE_TYPES[0],
                f"{layer}_{feat}-0",
                influence=inf[i],
                activation=float(graph.activations[i]),
                clerp=(clerps or {}).get((layer, feat), ""),
            )
        )
    for layer in range(graph.n_layers):
        for pos in range(graph.n_pos):
            nodes.append(
                _node(
                    f"0_{layer}_{pos}",
                    -1,
                    str(layer),
                    pos,
                    FEATURE_TYPES[1],
                    f"{layer}_{pos}-0",
                    influence=inf[graph.error_index(layer, pos)],
                )
            )
    for pos, tok in enumerate(graph.input_tokens.tolist()):
        nodes.append(
            _node(
                f"E_{tok}_{pos}",
                pos,
                "E",
                pos,
                FEATURE_TYPES[2],
                f"E_{tok}-{pos}",
                influence=inf[graph.embedding_index(pos)],
                clerp=graph.token_strings[pos],
            )
        )
    last = graph.n_pos - 1
    top = str(graph.n_layers + 1)
    for i, (tok, name) in enumerate(zip(graph.logit_tokens.tolist(), graph.logit_strings)):
        p = float(graph.logit_probabilities[i])
        nodes.append(
            _node(
                f"{top}_{tok}_{last}",
                tok,
                top,
                last,
                FEATURE_TYPES[3],
                f"L_{tok}-{last}",
                token_prob=p,
                is_target_logit=i == 0,
                clerp=f'Output "{name}" (p={p:.3f})',
                influence=inf[graph.logit_index(i)],
            )
        )
    return nodes


def graph_to_json(
    graph: AttributionGraph,
    slug: str,
    *,
    scan: str | None = None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    clerps: dict[tuple[int, int], str] | None = None,
) -> dict[str, Any]:
    """The Neuronpedia graph JSON of ``graph`` pruned at ``node_threshold`` / ``edge_threshold``."""
    if not isinstance(slug, str) or not slug:
        raise GraphFormatError("slug must be a non-empty string (the graph's name in the viewer)")
    pruned = prune_graph(graph, node_threshold, edge_threshold)
    all_nodes = graph_nodes(graph, pruned.cumulative_scores.tolist(), clerps)
    kept = pruned.node_mask.tolist()
    targets, sources = pruned.edge_mask.nonzero(as_tuple=True)
    links = [
        {"source": all_nodes[s]["node_id"], "target": all_nodes[t]["node_id"], "weight": float(graph.adjacency[t, s])}
        for t, s in zip(targets.tolist(), sources.tolist())
        if kept[s] and kept[t]
    ]
    used = {link["source"] for link in links} | {link["target"] for link in links}
    nodes = [
        n for n, k in zip(all_nodes, kept) if k and (n["node_id"] in used or n["feature_type"] in FEATURE_TYPES[2:])
    ]
    scan = scan or f"grokscope-{graph.meta.get('model_fingerprint') or 'model'}"
    metadata = {
        "slug": slug,
        "scan": scan,
        "transcoder_list": list(graph.meta.get("transcoders", {}).values()),
        "prompt_tokens": list(graph.token_strings),
        "prompt": " ".join(graph.token_strings),
        "node_threshold": node_threshold,
        "schema_version": SCHEMA_VERSION,
        # circuit-tracer's two scores of the unpruned graph (interp.features.graph_prune.graph_scores)
        **dict(zip(("replacement_score", "completeness_score"), graph_scores(graph))),
    }
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": nodes, "links": links}


def check_graph_json(data: Any, where: str = "graph") -> dict[str, Any]:
    """``data`` if it follows the schema; else a one-line :class:`GraphFormatError` naming ``where``."""

    def fail(msg: str) -> GraphFormatError:
        return GraphFormatError(f"{where}: {msg}; not an attribution-graph JSON (circuit-tracer / Neuronpedia schema)")

    if not isinstance(data, dict):
        raise fail(f"the top level is a {type(data).__name__}, not an object")
    for key in ("metadata", "qParams", "nodes", "links"):
        if key not in data:
            raise fail(f"missing top-level key {key!r}")
    for section, spec in (("metadata", _METADATA), ("qParams", _QPARAMS)):
        if not isinstance(data[section], dict):
            raise fail(f"{section!r} must be an object")
        for key, typ in spec.items():
            if not isinstance(data[section].get(key), typ):
                raise fail(f"{section}.{key} must be a {typ.__name__}")
    if not isinstance(data["nodes"], list) or not isinstance(data["links"], list):
        raise fail("'nodes' and 'links' must be lists")
    ids = set()
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict):
            raise fail(f"nodes[{i}] is not an object")
        for key, typ in _NODE.items():
            if not isinstance(node.get(key), typ) or isinstance(node.get(key), bool) and typ is int:
                raise fail(f"nodes[{i}].{key} must be a {typ.__name__}")
        for key, types in _NODE_OPTIONAL.items():
            if key in node and not isinstance(node[key], types):
                raise fail(f"nodes[{i}].{key} has the wrong type ({type(node[key]).__name__})")
        if node["feature_type"] not in FEATURE_TYPES:
            raise fail(f"nodes[{i}].feature_type {node['feature_type']!r} is not one of {list(FEATURE_TYPES)}")
        ids.add(node["node_id"])
    for i, link in enumerate(data["links"]):
        if (
            not isinstance(link, dict)
            or not isinstance(link.get("weight"), (int, float))
            or isinstance(link.get("weight"), bool)
        ):
            raise fail(f"links[{i}] must be an object with a numeric weight")
        for end in ("source", "target"):
            if not isinstance(link.get(end), str) or link.get(end) not in ids:  # (a list is unhashable)
                raise fail(f"links[{i}].{end} {link.get(end)!r} is not a node id")
    return data


def write_graph_json(graph: AttributionGraph, path: str | Path, slug: str, **kwargs: Any) -> Path:
    """Write ``graph_to_json(graph, slug, **kwargs)`` to ``path`` atomically."""
    return atomic_write_json(Path(path), graph_to_json(graph, slug, **kwargs))


def write_graph_files(graph: AttributionGraph, folder: str | Path, slug: str, **kwargs: Any) -> Path:
    """``folder/{slug}.json`` and the folder's ``graph-metadata.json`` index (the slug's entry replaced)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GraphFormatError(f"{folder} is a file; give a folder for the graph files")
    data = graph_to_json(graph, slug, **kwargs)
    path = atomic_write_json(folder / f"{slug}.json", data)
    index_file = folder / METADATA_FILE
    index: dict[str, Any] = {"graphs": []}
    if index_file.is_file():
        index = read_json(index_file, GraphFormatError, what="graph index", expect=dict)
        if not isinstance(index.get("graphs"), list):
            raise GraphFormatError(f'{index_file}: not a graph index (an object with a "graphs" list)')
    metadata = data["metadata"]
    index["graphs"] = [g for g in index["graphs"] if not isinstance(g, dict) or g.get("slug") != slug] + [metadata]
    atomic_write_json(index_file, index, indent=2)
    return path


def load_graph_json(path: str | Path) -> dict[str, Any]:
    """Read and check a graph JSON file (one-line :class:`GraphFormatError` naming the file otherwise)."""
    file = Path(path)
    if not file.is_file():
        raise GraphFormatError(f"{file}: no such file; give a graph JSON written by write_graph_json")
    return check_graph_json(read_json(file, GraphFormatError, what="graph JSON"), str(file))


__all__ = [
    "FEATURE_TYPES",
    "GraphFormatError",
    "check_graph_json",
    "graph_nodes",
    "graph_to_json",
    "load_graph_json",
    "write_graph_files",
    "write_graph_json",
]
