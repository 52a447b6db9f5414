"""Two ways to rewrite one atomic fact in a trained model, each on a copy of it.

* :func:`finetune_edit`: a few optimiser steps on the edited fact alone (the cross-entropy
  of the new target), optionally with a retain term: the KL divergence of the edited model's
  answers on other atomic facts from the original model's, so that the rest of the
  knowledge stays put. It stops once the edited fact gives the new target probability
  :data:`STOP_PROB`.
* :func:`rome_edit`: a rank-one edit of one MLP's output matrix (ROME, Meng et al. 2022).
  The key ``k*`` is the MLP's hidden activation (``blocks.L.mlp.hook_post``) at the answer
  position of the edited fact's prompt; the value is what that MLP should write there
  instead: its output plus a vector ``delta`` optimised, through a
  :class:`~interp.intervene.Patch` of ``blocks.L.hook_mlp_out``, so that the model answers
  the new target. The output matrix ``W`` (``y = k W + b``; llama stores its transpose) becomes
  ``W + u delta^T`` with ``u = C^-1 k* / (k*^T C^-1 k*)``, where ``C`` is the second moment
  of the keys over the training split's prompts: ``k*`` now maps to the new value, and keys
  uncorrelated with it (in ``C``'s metric) barely move. In a model whose blocks share
  weights (cross-layer sharing, loops) the edited matrix is the one every tied block uses.

Both read activations only through the intervention engine (on a bridge of the original)
and return an edited deep copy; the model passed in is never modified.
"""

from __future__ import annotations

import copy

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp.configs import check_range
from interp.data import KGDataset, TokenBatch
from interp.data.dataset import make_batch
from interp.data.records import Example
from interp.edits.facts import EditError, FactEdit, composition_graph
from interp.intervene import Patch, cache_activations, run_with_interventions
from interp.models import CausalLM, to_bridge
from interp.models.family import decoder_blocks, residual_writers
from interp.models.protocol import Bridge
from interp.train.objective import answer_logits

STOP_PROB = 0.9
"""Both methods stop once the edited prompt gives the new target this probability."""


def prompt_batch(dataset: KGDataset, prompts: list[tuple[tuple[str, ...], str]], device: torch.device) -> TokenBatch:
    """Token batch of ``(prompt, answer)`` pairs (the answer followed by ``</a>``)."""
    return make_batch([Example(p, (a, "</a>"), "edit") for p, a in prompts], dataset.vocab, device)


def _device(model: CausalLM) -> torch.device:
    return next(model.parameters()).device


def _edit_batch(dataset: KGDataset, edit: FactEdit, device: torch.device) -> TokenBatch:
    return prompt_batch(dataset, [(edit.prompt, edit.new)], device)


def _retain_batch(dataset: KGDataset, edit: FactEdit, n: int, seed: int, device: torch.device) -> TokenBatch:
    """Up to ``n`` other ID atomic facts, drawn with ``seed``."""
    facts = [((h, r), t) for h, r, t in composition_graph(dataset).id_facts if (h, r) != edit.prompt]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(facts), generator=gen)[:n].tolist()
    return prompt_batch(dataset, [facts[i] for i in idx], device)


def finetune_edit(
    model: CausalLM,
    dataset: KGDataset,
    edit: FactEdit,
    *,
    steps: int = 50,
    lr: float = 1e-3,
    retain_weight: float = 0.0,
    n_retain: int = 256,
    seed: int = 0,
) -> CausalLM:
    """A copy of ``model`` fine-tuned (Adam, all parameters, at most ``steps``) until ``edit``'s prompt gives
    ``edit.new`` probability :data:`STOP_PROB`."""
    check_range("steps", steps, low=1)
    check_range("lr", lr, low=0.0, low_open=True)
    check_range("retain_weight", retain_weight, low=0.0)
    device = _device(model)
    edited = copy.deepcopy(model)
    edited.eval()  # no dropout: the edit is deterministic
    target = _edit_batch(dataset, edit, device)
    retain = _retain_batch(dataset, edit, n_retain, seed, device) if retain_weight > 0 else None
    ref = None
    if retain is not None:
        with torch.no_grad():
            ref = F.log_softmax(answer_logits(model, retain.tokens, retain.answer_pos), -1)
    opt = torch.optim.Adam(edited.parameters(), lr=lr)
    for _ in range(steps):
        logits = answer_logits(edited, target.tokens, target.answer_pos)
        if float(F.softmax(logits.detach(), -1)[0, target.answer[0]]) > STOP_PROB:
            break
        loss = F.cross_entropy(logits, target.answer)
        if retain is not None and ref is not None:
            new = F.log_softmax(answer_logits(edited, retain.tokens, retain.answer_pos), -1)
            loss = loss + retain_weight * F.kl_div(new, ref, log_target=True, reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return edited


def key_covariance(
    model: CausalLM | Bridge,
    dataset: KGDataset,
    layer: int,
    *,
    ridge: float = 1e-2,
    max_examples: int = 4096,
    seed: int = 0,
) -> Float[Tensor, "d_mlp d_mlp"]:
    """Second moment ``C`` of ``blocks.L.mlp.hook_post`` over the prompt positions of (up to
    ``max_examples`` of) the training split, plus ``ridge`` times its mean diagonal (float64)."""
    bridge = model if not isinstance(model, CausalLM) else to_bridge(model, process_weights=False)
    device = next(bridge.parameters()).device
    hook = f"blocks.{layer}.mlp.hook_post"
    batch = dataset.batch("train", device)
    gen = torch.Generator().manual_seed(seed)
    batch = batch[torch.randperm(len(batch), generator=gen)[:max_examples].to(device)]
    total, count = None, 0
    for start in range(0, len(batch), 2048):
        part = batch[start : start + 2048]
        with torch.no_grad():
            _, acts = cache_activations(bridge, part.tokens, [hook])
        pos = torch.arange(part.tokens.shape[1], device=device)[None, :]
        keys = acts[hook][pos <= part.answer_pos[:, None]].double()  # (n_keys, d_mlp)
        moment = einops.einsum(keys, keys, "n d_a, n d_b -> d_a d_b")
        total = moment if total is None else total + moment
        count += keys.shape[0]
    assert total is not None
    cov = total / count
    return cov + ridge * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype, device=device)


def rome_edit(
    model: CausalLM,
    dataset: KGDataset,
    edit: FactEdit,
    *,
    layer: int = 0,
    steps: int = 100,
    lr: float = 0.1,
    delta_decay: float = 1e-3,
    covariance: Float[Tensor, "d_mlp d_mlp"] | None = None,
) -> CausalLM:
    """A copy of ``model`` whose layer-``layer`` MLP output matrix got ROME's rank-one update for ``edit``.

    ``covariance`` is :func:`key_covariance` of ``model`` at ``layer`` (computed when None;
    pass it to edit one model many times).
    """
    n_layers = len(decoder_blocks(model))
    if not 0 <= layer < n_layers:
        raise EditError(f"ROME layer {layer} is out of range; the model has layers 0..{n_layers - 1}")
    check_range("steps", steps, low=1)
    composition_graph(dataset)
    device = _device(model)
    bridge = to_bridge(model, process_weights=False)
    target = _edit_batch(dataset, edit, device)
    key_hook, out_hook = f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.hook_mlp_out"
    with torch.no_grad():
        _, acts = cache_activations(bridge, target.tokens, [key_hook, out_hook])
    pos = int(target.answer_pos[0])
    key = acts[key_hook][0, pos].double()  # (d_mlp,)
    mask = torch.zeros(target.tokens.shape, dtype=torch.bool, device=device)
    mask[0, pos] = True
    clean_out = acts[out_hook].detach()
    delta = torch.zeros(clean_out.shape[-1], device=device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        patch = Patch(out_hook, value=clean_out + delta, where=mask)
        logits = run_with_interventions(bridge, target.tokens, [patch], answer_pos=target.answer_pos)
        if float(F.softmax(logits.detach(), -1)[0, target.answer[0]]) > STOP_PROB:
            break
        loss = F.cross_entropy(logits, target.answer) + delta_decay * delta.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    cov = covariance if covariance is not None else key_covariance(bridge, dataset, layer)
    if cov.shape != (key.shape[0], key.shape[0]):
        raise EditError(
            f"the key covariance has shape {tuple(cov.shape)}; layer {layer} needs ({key.shape[0]}, {key.shape[0]})"
        )
    cov = cov.to(device=device, dtype=torch.float64)
    direction = torch.linalg.solve(cov, key)  # C^-1 k*
    u = direction / (key @ direction)
    edited = copy.deepcopy(model)
    down = residual_writers(decoder_blocks(edited)[layer])[1]
    update = einops.einsum(u, delta.detach().double(), "d_mlp, d_model -> d_mlp d_model")
    with torch.no_grad():  # GPT-2's Conv1D stores W (d_mlp, d_model); llama's nn.Linear its transpose
        down.weight.add_((update.T if isinstance(down, nn.Linear) else update).to(down.weight.dtype))
    return edited


__all__ = ["finetune_edit", "key_covariance", "prompt_batch", "rome_edit"]
