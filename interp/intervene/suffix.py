"""Suffix forwards: a patched run that recomputes only what the patch can change.

The model is causal, so a patch at position ``p`` in block ``L`` leaves every position before
``p`` exactly as in the unpatched run, in every block, and leaves blocks ``0..L-1`` alone.
:func:`run_suffix` runs blocks ``L..`` on positions ``p..`` only; the attention of those
positions reads the keys and values of positions ``< p`` from the unpatched run (a KV cache,
:func:`suffix_reads` collects it in the unpatched forward). In the last block only the
answer positions go on past the keys and values (query, attention, MLP), since the metric
reads nothing else; the unembedding runs there only. A patch after the attention of block
``L`` (``hook_z``, ``hook_attn_out``, ``hook_resid_mid``, ``hook_mlp_out``) resumes block
``L`` from the unpatched run's activations there (:data:`RESUME_READS`), computing only the
positions it edits.

It runs the bridge's own weights (after TransformerLens's weight processing), in plain
torch ops without hook points, and applies :class:`Patch` and :class:`AddNoise` pieces at
the points of the block that the hooks in :data:`SUFFIX_HOOKS` mark, with their semantics
(``hook_resid_mid`` edits the residual that skips the MLP too). The bridge's per-head
result is formed only in blocks whose ``hook_result`` is edited. Where anything else would
be needed (another architecture: the llama family, whose rotary attention this forward does
not compute; hooks already on the bridge, other hooks or pieces),
:func:`suffix_supported` is false and callers use :func:`~interp.intervene.run_with_interventions`.
The tests hold both forwards, and TransformerLens 4's patching, to each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.intervene.pieces import AddNoise, Intervention, Patch, Read
from interp.models.protocol import Bridge

SUFFIX_HOOKS = (
    "hook_resid_pre",
    "attn.hook_z",
    "attn.hook_result",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)
"""The hooks of block ``L`` (``blocks.L.<name>``) at which :func:`run_suffix` applies pieces."""

OUTSIDE_BLOCKS = ("hook_embed", "hook_pos_embed")


@dataclass(frozen=True)
class _Block:
    """The modules of one GPT-2 block as the bridge computes with them."""

    ln1: nn.Module
    q: nn.Module
    k: nn.Module
    v: nn.Module
    o: nn.Module  # Hugging Face Conv1D: weight (n_heads d_head) x d_model
    ln2: nn.Module
    fc: nn.Module
    act: nn.Module
    proj: nn.Module


def _original(component: nn.Module) -> nn.Module | None:
    return getattr(component, "original_component", None)


def _block_modules(bridge: Bridge) -> list[_Block] | None:
    """The modules of every block, or None if a block is not the GPT-2 block this forward knows."""
    out = []
    for block in bridge.blocks:
        attn, mlp = getattr(block, "attn", None), _original(getattr(block, "mlp", None))
        if attn is None or mlp is None or type(attn).__name__ != "JointQKVAttentionBridge":
            return None
        if getattr(attn, "_reorder_and_upcast_attn", False) or getattr(attn, "_result_contribution_scale", 1.0) != 1.0:
            return None
        q, k, v, o = (_original(getattr(attn, name, None)) for name in ("q", "k", "v", "o"))
        ln1, ln2 = _original(block.ln1), _original(block.ln2)
        fc, proj = _original(getattr(mlp, "c_fc", None)), _original(getattr(mlp, "c_proj", None))
        act = getattr(mlp, "act", None)
        if not all(isinstance(m, nn.Linear) for m in (q, k, v)):
            return None
        if not all(isinstance(m, nn.LayerNorm) for m in (ln1, ln2)):
            return None
        if any(type(m).__name__ != "Conv1D" for m in (o, fc, proj)) or act is None:
            return None
        out.append(_Block(ln1, q, k, v, o, ln2, fc, act, proj))
    return out


def _hook_name(hook: str) -> tuple[int, str] | None:
    """(block, name in :data:`SUFFIX_HOOKS`) of a hook, None for any other hook."""
    parts = hook.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in SUFFIX_HOOKS:
        return int(parts[1]), parts[2]
    return None


def suffix_supported(
    bridge: Bridge, hooks: Sequence[str], interventions: Sequence[Intervention], first_layer: int
) -> bool:
    """Whether :func:`run_suffix` computes what :func:`run_with_interventions` would.

    True for a GPT-2 bridge (false for llama's) in eval mode with no hooks of its own attached, when every
    patched hook is in :data:`SUFFIX_HOOKS` and every extra intervention is either a
    :class:`Patch` / :class:`AddNoise` there or sits where it only shapes the unpatched run
    (the embeddings, or blocks before ``first_layer``).
    """
    cfg = bridge.cfg
    if bridge.training or any(bool(getattr(cfg, flag, False)) for flag in ("use_split_qkv_input", "use_attn_in")):
        return False
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or _block_modules(bridge) is None:
        return False
    if any(hook_point.fwd_hooks for hook_point in bridge.hook_dict.values()):
        return False
    if any(_hook_name(h) is None for h in hooks):
        return False
    for iv in interventions:
        where = _hook_name(iv.hook)
        if where is not None and isinstance(iv, (Patch, AddNoise)):
            continue
        parts = iv.hook.split(".")
        before = parts[0] == "blocks" and parts[1].isdigit() and int(parts[1]) < first_layer
        if iv.hook not in OUTSIDE_BLOCKS and not before:
            return False
    return True


# ------------------------------------------------------------------------- the cache
def suffix_reads(bridge: Bridge, first_layer: int, store: dict[str, Tensor]) -> list[Read]:
    """Reads that collect, in the unpatched forward, the keys and values :func:`run_suffix` reuses."""
    return [
        Read(f"blocks.{layer}.attn.hook_{kind}", store=store)
        for layer in range(first_layer, len(bridge.blocks))
        for kind in ("k", "v")
    ]


def _at_positions(t: Tensor | None, pos: Int[Tensor, "row t"]) -> Tensor | None:
    """A per-example ``batch pos ...`` tensor at positions ``pos`` of each row; broadcasting ones kept."""
    if t is None or t.ndim < 2 or t.shape[1] == 1:
        return t
    if t.shape[0] == 1:
        return t[0][pos.to(t.device)]
    rows = torch.arange(pos.shape[0], device=t.device)[:, None]
    return t[rows, pos.to(t.device)]


def _sliced(iv: Intervention, pos: Int[Tensor, "row t"]) -> Intervention:
    if isinstance(iv, Patch):
        return replace(iv, value=_at_positions(iv.value, pos), where=_at_positions(iv.where, pos))
    if isinstance(iv, AddNoise):
        return replace(iv, noise=_at_positions(iv.noise, pos), where=_at_positions(iv.where, pos))
    raise TypeError(f"run_suffix cannot apply {iv!r}")  # pragma: no cover - suffix_supported excludes it


def _apply(pieces: Mapping[str, list[Intervention]], hook: str, act: Tensor, pos: Int[Tensor, "row t"]) -> Tensor:
    for iv in pieces.get(hook, ()):
        act = _sliced(iv, pos).edit(act)
    return act


# ---------------------------------------------------------------------------- forward
RESUME_READS: dict[str, tuple[str, ...]] = {
    "attn.hook_z": ("attn.hook_z", "hook_resid_post"),
    "hook_attn_out": ("hook_attn_out", "hook_resid_post"),
    "hook_resid_mid": ("hook_resid_mid", "hook_resid_post"),
    "hook_mlp_out": ("hook_resid_mid", "hook_mlp_out", "hook_resid_post"),
    "hook_resid_post": ("hook_resid_post",),
}
"""Where :func:`run_suffix` can resume inside its first block, and the unpatched activations
of that block (``blocks.L.<name>``) it needs to. A patch after the attention leaves the
attention of the block it sits in unchanged at every position, so the suffix reads it from
the unpatched run instead of computing it; and past the attention the positions of a block
are independent, so the block's output is the unpatched one wherever no piece in the block
edits, and is computed only at the positions some piece edits."""


def _edited_columns(pieces: Mapping[str, list[Intervention]], block: str, start_pos: int, stop: int) -> Tensor | None:
    """The positions ``start_pos..stop - 1`` (as offsets from ``start_pos``) that some piece of
    ``block`` (``"blocks.L."``) edits in some row; None when one edits every position."""
    hit = None
    for hook, ivs in pieces.items():
        if not hook.startswith(block):
            continue
        for iv in ivs:
            where = getattr(iv, "where", None)
            if where is None or where.ndim < 2 or where.shape[1] == 1:
                return None
            w = where[:, start_pos:stop]
            w = w.reshape(w.shape[0], w.shape[1], -1).any(-1).any(0)
            hit = w if hit is None else hit | w
    return torch.zeros(0, dtype=torch.long) if hit is None else hit.nonzero().flatten()


_ORDER = {name: i for i, name in enumerate(SUFFIX_HOOKS)}


@torch.no_grad()
def run_suffix(
    bridge: Bridge,
    resid: Float[Tensor, "row pos d_model"],
    keys: Mapping[int, Float[Tensor, "row prefix head_index d_head"]],
    values: Mapping[int, Float[Tensor, "row prefix head_index d_head"]],
    interventions: Sequence[Intervention],
    *,
    start_layer: int,
    start_pos: int,
    answer_pos: Int[Tensor, " row"],
    resume_at: str | None = None,
    resume: Mapping[str, Tensor] | None = None,
) -> Float[Tensor, "row d_vocab"]:
    """The logits at ``answer_pos`` of a run that differs from the unpatched one from ``start_pos`` on.

    ``resid`` is the unpatched residual entering block ``start_layer``; ``keys`` / ``values`` hold
    the keys and values of positions ``< start_pos`` in every block from there (``hook_k`` / ``hook_v``),
    one row per patched run; ``interventions`` are already taken for these rows. Positions
    ``< start_pos`` keep the unpatched values; the caller guarantees that no intervention
    changes them. Check :func:`suffix_supported` first.

    ``resume_at`` (a key of :data:`RESUME_READS`) starts block ``start_layer`` at that hook,
    from ``resume``: the unpatched ``row pos ...`` activations named there, over all
    positions. The caller guarantees that no intervention in that block comes before it.
    """
    blocks = _block_modules(bridge)
    assert blocks is not None, "check suffix_supported first"
    n_heads = int(bridge.cfg.n_heads)
    rows, stop = resid.shape[0], int(answer_pos.max()) + 1
    device = resid.device
    pieces: dict[str, list[Intervention]] = {}
    for iv in interventions:
        pieces.setdefault(iv.hook, []).append(iv)
    row = torch.arange(rows, device=device)
    answer = answer_pos.to(device)
    positions = torch.arange(start_pos, stop, device=device).expand(rows, -1)  # row t
    x = resid[:, start_pos:stop]
    unpatched = None  # with resume_at: the start block's unpatched output, where only some positions are computed
    for layer in range(start_layer, len(blocks)):
        m, name = blocks[layer], f"blocks.{layer}."
        last = layer == len(blocks) - 1
        at = _ORDER[resume_at] if resume_at is not None and layer == start_layer else 0
        if at == 0:
            x = _apply(pieces, name + "hook_resid_pre", x, positions)
            h = m.ln1(x)
            k, v = m.k(h), m.v(h)  # row t (head_index d_head)
            if last:  # past the keys and values, only the answer positions matter
                x, h = x[row, answer - start_pos][:, None], h[row, answer - start_pos][:, None]
                positions = answer[:, None]
            q = m.q(h)
            n_q, d_head = q.shape[1], q.shape[-1] // n_heads
            q = q.view(rows, n_q, n_heads, d_head).transpose(1, 2)  # row head q d_head
            k = torch.cat([keys[layer][:, :start_pos].to(k.dtype), k.view(rows, -1, n_heads, d_head)], 1).transpose(
                1, 2
            )
            v = torch.cat([values[layer][:, :start_pos].to(v.dtype), v.view(rows, -1, n_heads, d_head)], 1).transpose(
                1, 2
            )
            scores = torch.matmul(q, k.transpose(-2, -1)) * d_head ** (-0.5)
            visible = torch.arange(stop, device=device)[None, None, :] <= positions[:, :, None]  # row q key
            pattern = scores.masked_fill(~visible[:, None], float("-inf")).softmax(-1)
            z = torch.matmul(pattern, v).transpose(1, 2)  # row q head d_head
        else:  # the unpatched run's activations of this block, at the positions computed here
            assert resume is not None and resume_at in RESUME_READS, "resume_at needs its RESUME_READS"
            cached = {key: resume[key][:, start_pos:stop].to(device) for key in RESUME_READS[resume_at]}
            if last:
                sel = answer - start_pos
                x, positions = x[row, sel][:, None], answer[:, None]
                cached = {key: t[row, sel][:, None] for key, t in cached.items()}
            else:  # only the positions some piece edits: the others keep the unpatched output
                cols = _edited_columns(pieces, name, start_pos, stop)
                if cols is not None and len(cols) < x.shape[1]:
                    cols = cols.to(device)
                    unpatched, all_positions = cached["hook_resid_post"], positions
                    x, positions = x[:, cols], positions[:, cols]
                    cached = {key: t[:, cols] for key, t in cached.items()}
            z = cached.get("attn.hook_z")
        if at <= _ORDER["attn.hook_z"]:
            z = _apply(pieces, name + "attn.hook_z", z, positions)
            n_q, d_head = z.shape[1], z.shape[-1]
            if name + "attn.hook_result" in pieces:
                w_o = m.o.weight.view(n_heads, d_head, -1)
                result = torch.einsum("bshd,hdm->bshm", z, w_o)
                result = _apply(pieces, name + "attn.hook_result", result, positions)
                attn_out = result.sum(dim=-2) + m.o.bias
            else:
                attn_out = m.o(z.reshape(rows, n_q, n_heads * d_head))
        if at <= _ORDER["hook_attn_out"]:
            if at == _ORDER["hook_attn_out"]:
                attn_out = cached["hook_attn_out"]
            attn_out = _apply(pieces, name + "hook_attn_out", attn_out, positions)
            mid = x + attn_out
        if at <= _ORDER["hook_mlp_out"]:
            if at in (_ORDER["hook_resid_mid"], _ORDER["hook_mlp_out"]):
                mid = cached["hook_resid_mid"]
            mid = _apply(pieces, name + "hook_resid_mid", mid, positions)
            mlp_out = cached["hook_mlp_out"] if at == _ORDER["hook_mlp_out"] else m.proj(m.act(m.fc(m.ln2(mid))))
            x = mid + _apply(pieces, name + "hook_mlp_out", mlp_out, positions)
        else:
            x = cached["hook_resid_post"]
        x = _apply(pieces, name + "hook_resid_post", x, positions)
        if unpatched is not None:
            x = unpatched.index_copy(1, cols, x)
            positions, unpatched = all_positions, None
    return bridge.unembed(bridge.ln_final(x[:, 0]))


__all__ = ["OUTSIDE_BLOCKS", "RESUME_READS", "SUFFIX_HOOKS", "run_suffix", "suffix_reads", "suffix_supported"]
