"""Edge attribution patching (EAP, EAP-IG) and exact edge patching.

*Patching an edge* ``u -> v`` replaces, in the input of reader ``v`` only, the output of
writer ``u`` by its output on another run (the *source*: a corrupt prompt, say); every
other reader still sees ``u``'s own output. Because a reader's input is the sum of the
writers before it, this is adding ``delta_u = out_u(source) - out_u(run)`` to that one
input. :func:`edge_patch` does exactly that, one edge at a time, through the generic
patching sweep (:func:`interp.patching.patch_sites`); it is exact and costs a forward
per edge and example.

Edge attribution patching (Syed et al. 2023) estimates every edge at once, to first order:

    m(edge patched) - m(run)  ~  delta_u . dm/d(input of v)

one forward and one backward give the gradient at every reader input, one more forward
on the source gives every ``delta_u``. The estimate is exact for a metric linear in the
reader's input and degrades where the model saturates. EAP-IG (Hanna et al. 2024)
replaces the gradient at the run by its average along the straight path of the *input
embeddings* from the run to the source (``ig_steps`` midpoints), which follows the
saturation: summed over the embedding's edges it is integrated gradients of the input,
so it adds up to ``m(source) - m(run)`` as ``ig_steps`` grows (completeness).

Scores are per edge ``pos writer reader`` (:class:`circuits.graph.ModelGraph` layout),
averaged over examples. TransformerLens 4's ``tools.analysis.attribution_patch``
(``granularity="edge"``) computes the same EAP scores one example at a time on this very
graph; the tests hold the two to each other. This module batches, adds EAP-IG, and runs
on grokscope's intervention engine so that the same :class:`~interp.intervene.Intervention`
objects (noise, ablations) compose with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.graph import CircuitError, CircuitGraph, Edge, ModelGraph, Node, prune
from interp.intervene import (
    Intervention,
    Patch,
    activation_gradients,
    answer_positions,
    as_bridge,
    cache_activations,
    check_same_shape,
    check_tokens,
)
from interp.metrics import Metric, run_metric
from interp.models.protocol import Bridge, HookedModel
from interp.patching import patch_sites
from interp.sites import Site

Method = Literal["eap", "eap-ig"]


# ------------------------------------------------------------------------------- hooks
def writer_hooks(n_layers: int) -> list[str]:
    """Hooks holding each writer's contribution to the residual stream, in writer order."""
    names = ["hook_embed"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_result", f"blocks.{layer}.hook_mlp_out"]
    return names


def reader_hooks(n_layers: int) -> list[str]:
    """Hooks holding each reader's input (per-head q/k/v, MLP input, final residual), in reader order."""
    names = []
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_{c}_input" for c in ("q", "k", "v")] + [f"blocks.{layer}.hook_mlp_in"]
    return names + [f"blocks.{n_layers - 1}.hook_resid_post"]


def reader_hook(space: ModelGraph, r: int) -> tuple[str, int | None]:
    """(hook name, head or None) of reader ``r``."""
    node, channel = space.reader(0, r)
    if channel == "logits":
        return f"blocks.{space.n_layers - 1}.hook_resid_post", None
    if channel == "mlp":
        return f"blocks.{node.layer}.hook_mlp_in", None
    return f"blocks.{node.layer}.attn.hook_{channel}_input", node.head


@contextmanager
def edge_hooks(bridge: Bridge) -> Iterator[Bridge]:
    """Switch on the bridge's per-head result, split q/k/v input and MLP input hooks; restore on exit.

    They exist on every bridge but fire only when their flags are on. Outputs are unchanged
    (the split inputs are copies of the residual stream, one per head).
    """
    cfg = bridge.cfg
    saved = (
        cfg.use_attn_result,
        cfg.use_split_qkv_input,
        cfg.use_hook_mlp_in,
        bool(getattr(cfg, "use_attn_in", False)),
    )
    try:
        if saved[3]:
            bridge.set_use_attn_in(False)  # exclusive with the split inputs
        bridge.set_use_attn_result(True)
        bridge.set_use_split_qkv_input(True)
        bridge.set_use_hook_mlp_in(True)
        yield bridge
    finally:
        bridge.set_use_attn_result(saved[0])
        bridge.set_use_split_qkv_input(saved[1])
        bridge.set_use_hook_mlp_in(saved[2])
        if saved[3]:
            bridge.set_use_attn_in(True)


def stack_writers(space: ModelGraph, acts: Mapping[str, Tensor]) -> Float[Tensor, "batch pos writer d_model"]:
    """Writer outputs from their hooks, stacked in writer order."""
    parts = [acts["hook_embed"][:, :, None]]
    for layer in range(space.n_layers):
        parts += [acts[f"blocks.{layer}.attn.hook_result"], acts[f"blocks.{layer}.hook_mlp_out"][:, :, None]]
    return torch.cat(parts, dim=2)


def stack_readers(space: ModelGraph, acts: Mapping[str, Tensor]) -> Float[Tensor, "batch pos reader d_model"]:
    """Reader inputs (or their gradients) from their hooks, stacked in reader order."""
    parts = []
    for layer in range(space.n_layers):
        parts += [acts[f"blocks.{layer}.attn.hook_{c}_input"] for c in ("q", "k", "v")]
        parts.append(acts[f"blocks.{layer}.hook_mlp_in"][:, :, None])
    parts.append(acts[f"blocks.{space.n_layers - 1}.hook_resid_post"][:, :, None])
    return torch.cat(parts, dim=2)


@torch.no_grad()
def writer_outputs(
    bridge: Bridge,
    tokens: Int[Tensor, "batch pos"],
    interventions: Sequence[Intervention] = (),
) -> Float[Tensor, "batch pos writer d_model"]:
    """What every writer adds to the residual stream, at every position, on ``tokens``."""
    space = ModelGraph.of(bridge, tokens.shape[1])
    with edge_hooks(bridge):
        _, acts = cache_activations(bridge, tokens, writer_hooks(space.n_layers), interventions)
    return stack_writers(space, acts)


# --------------------------------------------------------------------------- results
@dataclass
class EdgeScores:
    """Per-edge estimates (or exact values) of the metric change when the edge is patched."""

    space: ModelGraph
    scores: Float[Tensor, "pos writer reader"]
    method: str
    positions: list[str]
    n_examples: int
    run_metric: float = float("nan")
    source_metric: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int | None = None) -> list[tuple[Edge, float]]:
        """Edges by decreasing ``|score|`` (all of them if ``n`` is None)."""
        mag = self.scores.abs().masked_fill(~self.space.allowed, -1.0).flatten()
        order = mag.argsort(descending=True)[: self.space.n_edges if n is None else n]
        shape = self.scores.shape
        out = []
        for flat in order.tolist():
            p, rest = divmod(flat, shape[1] * shape[2])
            w, r = divmod(rest, shape[2])
            out.append((self.space.edge(p, w, r), float(self.scores[p, w, r])))
        return out

    def to_data(self) -> dict[str, Any]:
        """The scores as JSON data (:meth:`from_data` reads them back exactly)."""
        s = self.space
        return {
            "space": [s.n_layers, s.n_heads, s.n_pos, list(s.logit_positions)],
            "scores": self.scores.detach().cpu().double().tolist(),
            "method": self.method,
            "positions": list(self.positions),
            "n_examples": self.n_examples,
            "run_metric": self.run_metric,
            "source_metric": self.source_metric,
            "meta": self.meta,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> EdgeScores:
        """Scores written by :meth:`to_data`."""
        n_layers, n_heads, n_pos, logit_positions = data["space"]
        space = ModelGraph(n_layers, n_heads, n_pos, tuple(logit_positions))
        scores = torch.tensor(data["scores"], dtype=torch.float64)
        return cls(space, scores, data["method"], list(data["positions"]), data["n_examples"], data["run_metric"],
                   data["source_metric"], dict(data["meta"]))  # fmt: skip

    def writer_scores(self) -> Float[Tensor, "pos writer"]:
        """Each writer's summed edge scores: its node-level attribution (patching its output everywhere)."""
        return self.scores.sum(-1)

    def node_scores(self) -> dict[Node, float]:
        """Each writer node's summed edge scores (:meth:`writer_scores`), keyed by node."""
        ws = self.writer_scores()
        return {self.space.writer(p, w): float(ws[p, w]) for p in range(ws.shape[0]) for w in range(ws.shape[1])}

    def head_scores(self) -> Float[Tensor, "layer pos head_index"]:
        """The node score of every head at every position."""
        H, L = self.space.n_heads, self.space.n_layers
        ws = self.writer_scores()[:, 1:].reshape(self.space.n_pos, L, H + 1)[:, :, :H]
        return einops.rearrange(ws, "pos layer head_index -> layer pos head_index")

    def prune(self, top_n: int | None = None, threshold: float | None = None, **meta: Any) -> CircuitGraph:
        """The circuit of the strongest edges (see :func:`circuits.graph.prune`)."""
        info = {"method": self.method, **self.meta, **meta}
        circuit = prune(self.scores, self.space, top_n=top_n, threshold=threshold, positions=self.positions, meta=info)
        circuit.node_scores = {n: s for n, s in self.node_scores().items() if n in set(circuit.nodes)}
        return circuit

    def to_dataframe(self):  # noqa: ANN201 - pandas
        """Tidy rows: src, dst, channel, pos, score (every edge of the graph)."""
        import pandas as pd

        rows = [
            {"src": e.src.name, "dst": e.dst.name, "channel": e.channel, "pos": e.pos, "score": s}
            for e, s in self.top()
        ]
        return pd.DataFrame(rows, columns=["src", "dst", "channel", "pos", "score"])


# ------------------------------------------------------------------------------- EAP
def _reader_gradients(
    bridge: Bridge,
    space: ModelGraph,
    tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    rows: Int[Tensor, " batch"],
    answer_pos: Int[Tensor, " batch"],
    interventions: Sequence[Intervention],
) -> tuple[Float[Tensor, "batch pos reader d_model"], Float[Tensor, " batch"]]:
    """d metric / d (every reader input), and the metric, on one batch."""
    # fresh reads: hook_mlp_in is also the residual that skips the MLP (see interp.intervene.Read)
    _, grads, values = activation_gradients(
        bridge,
        tokens,
        reader_hooks(space.n_layers),
        lambda logits: run_metric(metric, logits, example=rows),
        interventions,
        answer_pos=answer_pos,
    )
    return stack_readers(space, grads), values


def edge_attribution(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    source: Int[Tensor, "batch pos"],
    metric: Metric,
    *,
    method: Method = "eap-ig",
    ig_steps: int = 5,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    logit_positions: Sequence[int] | None = None,
    positions: Sequence[str] | None = None,
    batch_size: int = 256,
) -> EdgeScores:
    """Estimated metric change of patching ``source``'s writer output into each edge of the run on ``tokens``.

    ``method="eap"`` takes the gradient at the run; ``"eap-ig"`` averages it over
    ``ig_steps`` points ``(k + 1/2) / ig_steps`` of the straight path of the token
    embeddings from ``tokens`` to ``source`` (position embeddings are shared). For circuit
    discovery, ``tokens`` are the clean prompts and ``source`` the corrupt ones: a large
    ``|score|`` marks an edge whose corruption moves the metric.
    """
    bridge = as_bridge(model)
    tokens = check_tokens(bridge, tokens)
    source = check_tokens(bridge, source, "source")
    check_same_shape(tokens, source, "tokens", "source")
    if method not in ("eap", "eap-ig"):
        raise CircuitError(f"unknown method {method!r}; choose eap or eap-ig")
    if isinstance(ig_steps, bool) or not isinstance(ig_steps, int) or ig_steps < 1:
        raise CircuitError(f"ig_steps {ig_steps!r} must be a positive integer")
    if batch_size < 1:
        raise CircuitError(f"batch_size {batch_size!r} must be at least 1")
    alphas = [0.0] if method == "eap" else [(k + 0.5) / ig_steps for k in range(ig_steps)]
    batch, n_pos = tokens.shape
    space = ModelGraph.of(bridge, n_pos, logit_positions)
    pos = answer_positions(tokens, answer_pos)
    d_model = int(bridge.cfg.d_model)
    total = torch.zeros(n_pos, space.n_writers, space.n_readers, dtype=torch.float64)
    run_sum, src_sum = 0.0, 0.0
    with edge_hooks(bridge):
        for lo in range(0, batch, batch_size):
            rows = torch.arange(lo, min(lo + batch_size, batch), device=tokens.device)
            tok, src, p = tokens[rows], source[rows], pos[rows]
            with torch.no_grad():
                run_logits, run_acts = cache_activations(bridge, tok, writer_hooks(space.n_layers))
                src_logits, src_acts = cache_activations(bridge, src, writer_hooks(space.n_layers))
            delta = stack_writers(space, src_acts) - stack_writers(space, run_acts)
            emb_run, emb_src = run_acts["hook_embed"], src_acts["hook_embed"]
            grad = torch.zeros(len(rows), n_pos, space.n_readers, d_model, dtype=delta.dtype, device=delta.device)
            for alpha in alphas:
                path = [] if alpha == 0.0 else [Patch("hook_embed", value=emb_run + alpha * (emb_src - emb_run))]
                g, _ = _reader_gradients(bridge, space, tok, metric, rows, p, path)
                grad += g / len(alphas)
            total += einops.einsum(
                delta.double(), grad.double(), "batch pos writer d_model, batch pos reader d_model -> pos writer reader"
            ).cpu()
            run_sum += float(run_metric(metric, run_logits, p, rows).double().sum())
            src_sum += float(run_metric(metric, src_logits, p, rows).double().sum())
    scores = (total / batch).masked_fill(~space.allowed, 0.0)
    labels = list(positions) if positions is not None else [str(i) for i in range(n_pos)]
    name = method if method == "eap" else f"eap-ig ({ig_steps} steps)"
    return EdgeScores(
        space,
        scores,
        name,
        labels,
        batch,
        run_sum / batch,
        src_sum / batch,
        meta={"method": method, "ig_steps": ig_steps if method == "eap-ig" else 1},
    )


# ------------------------------------------------------------------- exact patching
@torch.no_grad()
def edge_patch(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    source: Int[Tensor, "batch pos"],
    metric: Metric,
    *,
    edges: Sequence[Edge] | None = None,
    scale: float = 1.0,
    answer_pos: Int[Tensor, " batch"] | int | None = None,
    logit_positions: Sequence[int] | None = None,
    positions: Sequence[str] | None = None,
    max_rows: int = 2048,
) -> EdgeScores:
    """The exact metric change of patching each edge (all of them, or ``edges``), one at a time.

    ``scale`` patches that fraction of the difference (``delta_u * scale``): ``scale=1`` is
    the patch itself, small ``scale`` gives the derivative that EAP estimates.
    """
    bridge = as_bridge(model)
    tokens = check_tokens(bridge, tokens)
    source = check_tokens(bridge, source, "source")
    check_same_shape(tokens, source, "tokens", "source")
    n_pos = tokens.shape[1]
    space = ModelGraph.of(bridge, n_pos, logit_positions)
    selected = space.allowed.clone() if edges is None else space.mask(edges)
    r_hooks = reader_hooks(space.n_layers)
    out = torch.zeros(n_pos, space.n_writers, space.n_readers, dtype=torch.float64)
    with edge_hooks(bridge):
        _, run_acts = cache_activations(bridge, tokens, writer_hooks(space.n_layers) + r_hooks)
        _, src_acts = cache_activations(bridge, source, writer_hooks(space.n_layers))
        delta = stack_writers(space, src_acts) - stack_writers(space, run_acts)
        for w in range(space.n_writers):
            where = selected[:, w, :].nonzero().tolist()
            if not where:
                continue
            dw = scale * delta[:, :, w]  # batch pos d_model
            values: dict[str, Tensor] = {}
            sites, index = [], []
            for p, r in where:
                hook, head = reader_hook(space, r)
                if hook not in values:
                    act = run_acts[hook]
                    values[hook] = act + (dw[:, :, None] if act.ndim == 4 else dw)
                layer = space.n_layers - 1 if r == space.n_readers - 1 else space.reader(0, r)[0].layer
                sites.append(Site(int(layer), (hook,), p, head))
                index.append((p, r))
            patched, base = patch_sites(bridge, tokens, values, sites, metric, answer_pos=answer_pos, max_rows=max_rows)
            effect = (patched.double() - base.double().cpu()[None]).mean(-1)
            for (p, r), e in zip(index, effect.tolist()):
                out[p, w, r] = e
    labels = list(positions) if positions is not None else [str(i) for i in range(n_pos)]
    return EdgeScores(space, out, "exact" if scale == 1.0 else f"exact (scale {scale:g})", labels, tokens.shape[0])


__all__ = [
    "EdgeScores",
    "edge_attribution",
    "edge_hooks",
    "edge_patch",
    "reader_hooks",
    "stack_readers",
    "stack_writers",
    "writer_hooks",
    "writer_outputs",
]
