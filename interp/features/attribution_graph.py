"""Attribution graphs (circuit-tracer's method) for one prompt, on the intervention engine.

The *local replacement model* of a prompt is the model with every MLP replaced by its
transcoder plus an *error* (the true MLP output minus the transcoder's prediction, fixed at
its value on this prompt), and with attention patterns and LayerNorm scales frozen at their
values on this prompt. Everything else (embeddings, LayerNorm centring, the value and
output maps of attention, the unembedding) is affine, so every feature pre-activation and
every logit is an affine function of the *source* activations: token embeddings
(token + position), active transcoder features and error vectors. Nodes:

* feature ``(layer, pos, feature)`` with activation ``a``; it writes ``a * W_dec[feature]`` into
  the MLP output of ``(layer, pos)``; as a target, its value is its pre-activation;
* error ``(layer, pos)``: writes the error vector at the MLP output of ``(layer, pos)``;
* embedding ``pos``: the residual stream entering block 0 at ``pos``;
* logit: the logit of one token at the last position (the top tokens covering
  ``desired_logit_prob`` probability, at most ``max_n_logits``, plus ``answer`` if given).

An edge ``s -> t`` is the direct effect of ``s`` on ``t`` along frozen linear paths that skip
every other node: ``(vector s writes) · d value_t / d (residual at s's write point)``, the
gradient taken in a forward where attention patterns and LayerNorm scales are ``Patch``-ed
with their values and the MLP outputs are ``GradLeaf``-s (so no path goes through an MLP or
a transcoder). All targets are one batch of copies of the prompt, one backward
(:func:`~interp.intervene.activation_gradients`).

Biases are explicit: ``bias[t]`` is the value of target ``t`` in the frozen model with every
source set to zero (embeddings zero, MLP outputs equal to the transcoders' ``b_dec``), one
more forward. It collects the transcoders' ``b_enc`` (for features) and ``b_dec``,
attention's value and output biases, LayerNorm biases and the unembedding bias. Then, exactly
(up to rounding), ``value[t] = sum_s A[t, s] + bias[t]``: the graph adds up.

A skip term ``x @ W_skip`` is one more frozen linear path (from the residual through ``ln2``
into the MLP output), not a node; a cross-layer transcoder's feature writes its rows into the
MLP outputs of its layer and every later one, and its edges sum over them. Both through
:class:`~interp.features.replacement.Replacement`.

Nodes are ordered as circuit-tracer's: features, errors (layer-major), embeddings, logits;
``adjacency`` rows are targets, columns sources. Pruning: :mod:`interp.features.graph_prune`;
Neuronpedia JSON: :mod:`interp.features.graph_json`::

    from interp.features import attribution_graph, prompt_tokens, prune_graph, write_graph_json

    g = attribution_graph(model, transcoders, prompt_tokens(dataset, ["<e_0>", "<r_18>", "<r_9>"]),
                          vocab=dataset.vocab, answer="<e_14>")
    g.max_residual()                         # how well value = incoming edges + bias holds
    pruned = prune_graph(g, node_threshold=0.8, edge_threshold=0.98)
    write_graph_json(g, OUT / "two-hop.json", slug="two-hop")
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.features.config import FeatureError
from interp.features.io import model_fingerprint
from interp.features.replacement import Replacement, SkipTerm
from interp.features.transcoder import Transcoder
from interp.intervene import (
    GradLeaf,
    Patch,
    Read,
    activation_gradients,
    as_bridge,
    check_tokens,
    run_with_interventions,
)
from interp.models.protocol import Bridge, HookedModel

EMBED_HOOK = "blocks.0.hook_resid_pre"
"""Where the embedding nodes write: the residual stream entering block 0 (token + position)."""


class AttributionGraphError(FeatureError):
    """An attribution graph that cannot be built from the given model, transcoders or prompt."""


@dataclass
class AttributionGraph:
    """Direct effects between the nodes of one prompt's local replacement model (see the module docstring)."""

    input_tokens: Int[Tensor, " pos"]
    token_strings: list[str]
    active_features: Int[Tensor, "feature 3"]
    """``(layer, pos, feature index)`` of each feature node."""
    activations: Float[Tensor, " feature"]
    logit_tokens: Int[Tensor, " logit"]
    logit_strings: list[str]
    logit_probabilities: Float[Tensor, " logit"]
    adjacency: Float[Tensor, "node node"]
    """``adjacency[target, source]``: the direct effect of ``source`` on ``target``."""
    bias: Float[Tensor, " node"]
    """Each target's bias term (zero for error and embedding nodes, which have no inputs)."""
    values: Float[Tensor, " node"]
    """Feature pre-activations and logits (the targets' values); zero for error and embedding nodes."""
    errors: Float[Tensor, "layer pos d_model"]
    n_layers: int
    meta: dict[str, Any] = field(default_factory=dict)

    # -- node indices (circuit-tracer's order) ----------------------------------------------
    @property
    def n_pos(self) -> int:
        """Prompt positions."""
        return self.input_tokens.shape[0]

    @property
    def n_features(self) -> int:
        """Active features, the graph's first nodes."""
        return self.active_features.shape[0]

    @property
    def n_logits(self) -> int:
        """Logit nodes (the target tokens), the graph's last nodes."""
        return self.logit_tokens.shape[0]

    @property
    def n_nodes(self) -> int:
        """All nodes: features, errors, embeddings, logits."""
        return self.adjacency.shape[0]

    def error_index(self, layer: int, pos: int) -> int:
        """The node index of the error term of transcoder ``layer`` at ``pos``."""
        return self.n_features + layer * self.n_pos + pos

    def embedding_index(self, pos: int) -> int:
        """The node index of the token embedding at ``pos``."""
        return self.n_features + self.n_layers * self.n_pos + pos

    def logit_index(self, i: int) -> int:
        """The node index of the ``i``-th logit target."""
        return self.n_features + (self.n_layers + 1) * self.n_pos + i

    def feature_index(self, layer: int, pos: int, feature: int) -> int:
        """The node index of an active feature (a one-line error if it is not active)."""
        hit = ((self.active_features == torch.tensor([layer, pos, feature])).all(-1)).nonzero()
        if hit.numel() == 0:
            raise AttributionGraphError(f"feature {feature} of layer {layer} is not active at position {pos}")
        return int(hit[0, 0])

    def targets(self) -> Int[Tensor, " target"]:
        """Indices of the nodes with inputs: features and logits."""
        return torch.cat([torch.arange(self.n_features), torch.arange(self.logit_index(0), self.n_nodes)])

    def residuals(self) -> Float[Tensor, " target"]:
        """``value - (sum of incoming edges + bias)`` for every target: zero up to rounding."""
        t = self.targets()
        return self.values[t] - (self.adjacency[t].sum(-1) + self.bias[t])

    def max_residual(self) -> float:
        """The largest ``|residual|`` of any target: how far the graph is from adding up exactly."""
        return float(self.residuals().abs().max()) if self.targets().numel() else 0.0


# ------------------------------------------------------------------------------ inputs
def prompt_tokens(dataset: Any, tokens: Sequence[str]) -> Int[Tensor, " pos"]:
    """Token ids of a prompt given as token strings (``["<e_0>", "<r_18>", "<r_9>"]``)."""
    if len(tokens) == 0:
        raise AttributionGraphError("the prompt is empty; give at least one token")
    return torch.tensor(dataset.vocab.encode(list(tokens)), dtype=torch.long)


def _check_transcoders(bridge: Bridge, transcoders: Mapping[int, Transcoder], check_weights: bool) -> Replacement:
    n = len(bridge.blocks)
    rep = Replacement.of(transcoders)
    if rep.clt is None:
        missing = sorted(set(range(n)) - set(transcoders))
        extra = sorted(set(transcoders) - set(range(n)))
        if missing or extra:
            raise AttributionGraphError(
                f"an attribution graph needs one transcoder per layer 0..{n - 1}; "
                + (f"missing layers {missing}" if missing else f"layers {extra} are outside the model")
            )
        for layer, tc in transcoders.items():
            if tc.layer != layer:
                raise AttributionGraphError(
                    f"the transcoder given for layer {layer} writes {tc.hook_name_out}; key it by its layer"
                )
    rep.check(bridge, check_weights=check_weights)
    return rep


def _logit_targets(
    probs: Float[Tensor, " d_vocab"], max_n_logits: int, desired_logit_prob: float, answer: int | None
) -> list[int]:
    top_p, top_idx = probs.topk(min(max_n_logits, probs.shape[0]))
    cutoff = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(desired_logit_prob, dtype=top_p.dtype))) + 1
    chosen = [int(i) for i in top_idx[:cutoff]]
    if answer is not None and answer not in chosen:
        chosen.append(answer)
    return chosen


# -------------------------------------------------------------------------------- build
def attribution_graph(
    model: HookedModel,
    transcoders: Mapping[int, Transcoder],
    tokens: Int[Tensor, " pos"] | Sequence[int],
    *,
    vocab: Any = None,
    answer: int | str | None = None,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    batch_size: int = 512,
    check_weights: bool = True,
) -> AttributionGraph:
    """The attribution graph of one prompt (``tokens``: ids, 1-D) through ``transcoders`` (one per layer, or one
    cross-layer transcoder under every layer's key).

    ``vocab`` (the dataset's) names tokens in the graph; ``answer`` (id or token string) is
    always a logit target. Computed in the model's dtype; targets go ``batch_size`` at a time.
    """
    bridge = as_bridge(model)
    ids = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if ids.numel() == 0:
        raise AttributionGraphError("the prompt is empty; give at least one token")
    rep = _check_transcoders(bridge, transcoders, check_weights)
    device = next(iter(bridge.parameters())).device
    dtype = bridge.W_E.dtype
    prompt = check_tokens(bridge, ids[None].to(device), "prompt")
    moved = {id(m): m if m.W_enc.dtype == dtype and m.W_enc.device == device else None for m in rep.modules}
    if any(m is None for m in moved.values()):
        copies = {key: copy.deepcopy(m).to(device, dtype) for key, m in zip(moved, rep.modules, strict=True)}
        rep = Replacement({layer: copies[id(tc)] for layer, tc in rep.transcoders.items()})
    n_layers, n_pos = len(rep.layers), prompt.shape[1]
    if isinstance(answer, str):
        if vocab is None:
            raise AttributionGraphError(f"answer {answer!r} is a token string; pass vocab= (the dataset's) to read it")
        answer = vocab.id(answer)
    if answer is not None:
        check_tokens(bridge, torch.tensor([[answer]], device=device), "answer")

    with warnings.catch_warnings():  # the bridge notes that an edited LayerNorm scale takes its python path
        warnings.simplefilter("ignore")
        return _build(bridge, rep, prompt, vocab, answer, max_n_logits, desired_logit_prob, batch_size, n_layers, n_pos)


def _build(
    bridge: Bridge,
    rep: Replacement,
    prompt: Tensor,
    vocab: Any,
    answer: int | None,
    max_n_logits: int,
    desired_logit_prob: float,
    batch_size: int,
    n_layers: int,
    n_pos: int,
) -> AttributionGraph:
    layers = rep.layers
    # 1. the clean forward: what to freeze, the feature activations, the errors, the logits
    freeze_hooks = ["ln_final.hook_scale"] + [
        f"blocks.{L}.{h}" for L in range(n_layers) for h in ("ln1.hook_scale", "attn.hook_pattern", "ln2.hook_scale")
    ]
    io_hooks = [h for L in layers for h in (rep.input_hook(L), rep.output_hook(L))]
    cache: dict[str, Tensor] = {}
    with torch.no_grad():
        logits = run_with_interventions(
            bridge, prompt, [Read(h, store=cache) for h in [*freeze_hooks, *io_hooks, EMBED_HOOK]]
        )
        xs = {L: cache[rep.input_hook(L)][0].flatten(1) for L in layers}  # (pos, d_in)
        codes = {L: rep.encode(L, xs[L]) for L in layers}
        error = torch.stack([cache[rep.output_hook(L)][0].flatten(1) - rep.predict(L, codes, xs[L]) for L in layers])
    feats, acts = [], []
    for layer in layers:
        pos, idx = codes[layer].nonzero(as_tuple=True)
        feats.append(torch.stack([torch.full_like(pos, layer), pos, idx], -1))
        acts.append(codes[layer][pos, idx])
    active = torch.cat(feats)  # (feature, 3)
    activation = torch.cat(acts)
    probs = torch.softmax(logits[0, -1].double(), -1)
    logit_ids = _logit_targets(probs, max_n_logits, desired_logit_prob, answer)
    n_feat, n_logit = active.shape[0], len(logit_ids)
    n_nodes = n_feat + (n_layers + 1) * n_pos + n_logit
    adjacency = torch.zeros(n_nodes, n_nodes, dtype=error.dtype, device=error.device)
    values = torch.zeros(n_nodes, dtype=error.dtype, device=error.device)
    freeze = [Patch(h, value=cache[h]) for h in freeze_hooks]
    targets = list(range(n_feat)) + list(range(n_nodes - n_logit, n_nodes))
    logit_col = torch.tensor(logit_ids, device=error.device)
    embed = cache[EMBED_HOOK][0]  # (pos, d_model)
    err_base = n_feat
    emb_base = n_feat + n_layers * n_pos
    skips = {L: rep.skip(L) for L in layers}
    writes = {L: (active[:, 0] == L).nonzero().flatten() for L in layers}

    # 2. one batch of targets at a time: gradients of each target's value at every write point; skip terms are
    # frozen linear paths (their gradient flows, their value is the clean MLP output's)
    for start in range(0, len(targets), batch_size):
        rows = torch.tensor(targets[start : start + batch_size], device=error.device)
        b = rows.shape[0]
        live: dict[str, Tensor] = {}
        ivs: list[Any] = [*freeze, *[Read(rep.input_hook(L), store=live, detach=False) for L in layers]]
        for L in layers:
            ivs.append(GradLeaf(rep.output_hook(L)))
            if skips[L] is not None:
                ivs.append(
                    SkipTerm(
                        rep.output_hook(L), weight=skips[L], store=live, key=rep.input_hook(L), straight_through=True
                    )
                )

        def objective(lg: Tensor, rows: Tensor = rows, live: dict[str, Tensor] = live) -> Tensor:
            out = lg.new_zeros(rows.shape[0])
            is_feat = rows < n_feat
            for layer in layers:
                sel = (
                    (is_feat & (active[rows.clamp(max=max(n_feat - 1, 0)), 0] == layer)).nonzero().flatten()
                    if n_feat
                    else rows.new_zeros(0)
                )
                if sel.numel():
                    node = active[rows[sel]]
                    w_enc, b_enc = rep.encoder(layer)
                    x = live[rep.input_hook(layer)].flatten(2)[sel, node[:, 1]]  # (sel, d_in)
                    out = out.index_put((sel,), (x * w_enc[:, node[:, 2]].T).sum(-1) + b_enc[node[:, 2]])
            sel = (~is_feat).nonzero().flatten()
            if sel.numel():
                tok = logit_col[rows[sel] - (n_nodes - n_logit)]
                out = out.index_put((sel,), lg[sel, -1, tok])
            return out

        hooks = [rep.output_hook(L) for L in layers] + [EMBED_HOOK]
        _, grads, vals = activation_gradients(bridge, prompt.expand(b, -1), hooks, objective, ivs)
        values[rows] = vals
        g = {L: grads[rep.output_hook(L)].flatten(2) for L in layers}  # (b, pos, d_model)
        for layer in layers:
            here = writes[layer]
            if here.numel():
                effect = sum(
                    (g[out][:, active[here, 1]] * rep.decoder(layer, out)[active[here, 2]]).sum(-1)
                    for out in rep.writes(layer)
                )
                adjacency[rows[:, None], here[None, :]] = effect * activation[here]
            adjacency[rows, err_base + layer * n_pos : err_base + (layer + 1) * n_pos] = (g[layer] * error[layer]).sum(
                -1
            )
        adjacency[rows, emb_base : emb_base + n_pos] = (grads[EMBED_HOOK] * embed).sum(-1)

    # 3. the bias of every target: the frozen model with every source at zero
    bias = torch.zeros_like(values)
    x0: dict[str, Tensor] = {}
    zero_sources: list[Any] = [
        *freeze,
        Patch("hook_embed", value=torch.zeros(())),
        Patch("hook_pos_embed", value=torch.zeros(())),
        *[Read(rep.input_hook(L), store=x0) for L in layers],
    ]
    for L in layers:
        zero_sources.append(Patch(rep.output_hook(L), value=rep.b_dec(L).detach().reshape(1, 1, -1)))
        if skips[L] is not None:
            zero_sources.append(SkipTerm(rep.output_hook(L), weight=skips[L], store=x0, key=rep.input_hook(L)))
    with torch.no_grad():
        lg0 = run_with_interventions(bridge, prompt, zero_sources)
        for layer in layers:
            here = writes[layer]
            if here.numel():
                pre0 = rep.pre_acts(layer, x0[rep.input_hook(layer)][0].flatten(1))  # (pos, d_sae)
                bias[here] = pre0[active[here, 1], active[here, 2]]
        bias[n_nodes - n_logit :] = lg0[0, -1, logit_col]

    decode = (lambda ids: vocab.decode(ids)) if vocab is not None else (lambda ids: [str(int(i)) for i in ids])
    meta = {
        "model_fingerprint": model_fingerprint(bridge),
        "transcoders": {str(layer): rep.input_hook(layer) for layer in layers},
        **({"cross_layer": True} if rep.clt is not None else {}),
    }
    return AttributionGraph(
        input_tokens=prompt[0].cpu(),
        token_strings=list(decode(prompt[0].tolist())),
        active_features=active.cpu(),
        activations=activation.detach().cpu(),
        logit_tokens=logit_col.cpu(),
        logit_strings=list(decode(logit_ids)),
        logit_probabilities=probs[logit_col].to(error.dtype).cpu(),
        adjacency=adjacency.cpu(),
        bias=bias.cpu(),
        values=values.cpu(),
        errors=error.detach().cpu(),
        n_layers=n_layers,
        meta=meta,
    )


__all__ = ["EMBED_HOOK", "AttributionGraph", "AttributionGraphError", "attribution_graph", "prompt_tokens"]
