"""Steering: edit a feature or a DAS subspace at one state and see whether the answer follows.

The causal test of a feature is what setting it does. At one hook and prompt position:

* **dictionary features**: the activation ``x`` has features ``f = encode(x)``; setting some of
  them to new values ``f'`` changes ``x`` by exactly the change in the reconstruction,
  ``x' = x + (f' - f) @ W_dec``, so the dictionary's reconstruction error stays in ``x'``
  (setting a feature to its current value changes nothing, bit for bit); adding ``alpha`` to
  a feature is adding ``alpha * W_dec[j]``;
* **a DAS subspace** (:mod:`interp.features.das`): set its coordinates to target values,
  ``x' = x + (c - x @ B) @ B.T`` (``B`` the subspace's orthonormal basis).

:func:`steer_variable` steers the variable a task computes (the bridge ``b`` at ``r1``) from
its value ``b`` to another ``b'``: switch off ``b``'s best feature and set ``b'``'s to its
typical active value, or set the DAS coordinates to their mean over prompts with ``b'``. It
succeeds when the model answers what ``b'`` implies (``r2(b')``), and is reported beside the
plain interchange of the whole state (and of the DAS subspace) from a prompt with ``b'``::

    from interp.features.steering import steer_variable

    res = steer_variable(run.model, run.dataset, "bridge", hook=sae.hook_name, dictionary=sae, das=fit)
    res.success        # {"feature": ..., "das_mean": ..., "interchange": ..., "das_interchange": ..., "none": ...}

Edits are read-then-patch on the engine (:func:`~interp.intervene.cache_activations`, then
:class:`~interp.intervene.Patch` at the one position): the activation at a position depends
only on the prompt up to it, so this is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.data import Example, KGDataset
from interp.features.activations import check_site, flat
from interp.features.config import DictionaryMismatchError, EmptyPromptSetError, FeatureError
from interp.features.das import DASResult
from interp.features.dictionary import SparseDictionary
from interp.features.probing import best_single_features, inferred_prompts, probe_rows, variable_position
from interp.intervene import (
    Patch,
    as_bridge,
    cache_activations,
    check_position,
    check_vocab,
    position_mask,
    run_with_interventions,
)
from interp.models.protocol import HookedModel

Edit = Callable[[Tensor], Tensor]
"""Activations at the steered position (``batch d_in``) to their edited values."""


# -------------------------------------------------------------------------------- edits
def set_features(
    sae: SparseDictionary,
    x: Float[Tensor, "batch d_in"],
    values: Float[Tensor, "batch d_sae"],
    which: Bool[Tensor, "batch d_sae"],
) -> Float[Tensor, "batch d_in"]:
    """``x`` with the features ``which`` set to ``values`` (the others kept), the reconstruction error kept."""
    f = sae.encode(x.to(sae.W_enc.dtype))
    new = torch.where(which, values.to(f.dtype), f)
    return x + ((new - f) @ sae.W_dec).to(x.dtype)


def add_direction(
    x: Float[Tensor, "batch d_in"], direction: Float[Tensor, " d_in"], alpha: float | Tensor
) -> Float[Tensor, "batch d_in"]:
    """``x + alpha * direction`` (a feature's decoder row: its activation raised by ``alpha``)."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    return x + (alpha.reshape(-1, 1) if alpha.ndim else alpha) * direction.to(x.dtype)


def set_subspace(
    basis: Float[Tensor, "d_in sub"], x: Float[Tensor, "batch d_in"], coords: Float[Tensor, "batch sub"]
) -> Float[Tensor, "batch d_in"]:
    """``x`` with its coordinates in the orthonormal ``basis`` set to ``coords``, the rest kept."""
    basis = basis.to(x.dtype)
    return x + (coords.to(x.dtype) - x @ basis) @ basis.T


# -------------------------------------------------------------------------------- runs
@torch.no_grad()
def steer(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    hook: str,
    position: int,
    edit: Edit,
    answer_pos: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at ``answer_pos`` (default: the last position) with the activation at ``hook``, ``position`` edited."""
    bridge = as_bridge(model)
    check_site(bridge, hook)
    check_position(position, tokens.shape[1])
    _, store = cache_activations(bridge, tokens, [hook])
    act = store[hook]
    value = flat(act).clone()
    value[:, position] = edit(value[:, position]).to(value.dtype)
    where = position_mask(tokens.shape[0], tokens.shape[1], position, device=tokens.device)
    if answer_pos is None:
        answer_pos = torch.full((tokens.shape[0],), tokens.shape[1] - 1, dtype=torch.long, device=tokens.device)
    return run_with_interventions(
        bridge, tokens, [Patch(hook, value=value.reshape(act.shape), where=where)], answer_pos=answer_pos
    )


@dataclass
class SteeringResult:
    """Success rates (top-1 answer = what the new value implies) of each way to move the variable."""

    target: str
    hook: str
    position: int
    n: int
    success: dict[str, float]
    """``none`` (no edit), ``interchange`` (the whole state from a source prompt), ``feature``,
    ``das_mean``, ``das_interchange`` (those that were asked for)."""
    clean_accuracy: float


def _source_value(dataset: KGDataset, prompt: tuple[str, ...], answer: str, target: str) -> str | None:
    schema = dataset.schema
    ex = Example(prompt, (answer,), "source")
    prov = schema.provenance(dataset.kg, ex)
    return None if prov is None else schema.target_token(Example(prompt, (answer,), "source", prov), target)


def steer_variable(
    model: HookedModel,
    dataset: KGDataset,
    target: str = "bridge",
    *,
    hook: str,
    dictionary: SparseDictionary | None = None,
    das: DASResult | None = None,
    position: int | str | None = None,
    split: str = "test_id",
    train_split: str = "train",
    n: int | None = None,
    seed: int = 0,
) -> SteeringResult:
    """Move ``target`` at ``hook`` from each prompt's value to another's, by features / DAS / interchange."""
    bridge = as_bridge(model)
    check_vocab(bridge, len(dataset.vocab))
    pos = variable_position(dataset, target, position)
    if dictionary is not None and dictionary.hook_name != hook:
        raise DictionaryMismatchError(
            f"the dictionary was trained at {dictionary.hook_name}, not at {hook}; steer at its own site"
        )
    if das is not None and das.hook != hook:
        raise FeatureError(f"the DAS was trained at {das.hook}, not at {hook}; steer at its own state")
    if das is not None and das.position != pos:
        raise FeatureError(f"the DAS was trained at position {das.position}, not at {pos}")
    train = probe_rows(bridge, dataset, [hook], target, train_split, pos)[hook]
    classes = sorted(set(train.labels.tolist()))
    feature_of, typical, mean_coords = {}, {}, {}
    if dictionary is not None:
        f = dictionary.encode(train.x.to(dictionary.W_enc))
        single = best_single_features(f, train.labels)
        for c, j in zip(single.classes, single.feature):
            vals = f[train.labels == c, j]
            vals = vals[vals > 0]
            feature_of[c], typical[c] = j, float(vals.mean()) if len(vals) else 0.0
    if das is not None:
        coords = das.das.coords(train.x.to(das.das.weight))
        mean_coords = {c: coords[train.labels == c].mean(0) for c in classes}

    schema, vocab = dataset.schema, dataset.vocab
    rng = np.random.default_rng(seed)
    base, source, expected, old, new, answers = [], [], [], [], [], []
    for ex in inferred_prompts(dataset, split)[:n]:
        options = schema.interchange_sources(dataset.kg, ex, target)
        rng.shuffle(options)
        for prompt, answer in options:
            value = _source_value(dataset, prompt, answer, target)
            b_old = vocab.id(schema.target_token(ex, target))
            if value is None or vocab.id(value) not in classes or b_old not in classes:
                continue
            base.append(vocab.encode(ex.input_tokens))
            source.append(vocab.encode(prompt))
            expected.append(vocab.id(answer))
            answers.append(vocab.id(ex.answer))
            old.append(b_old)
            new.append(vocab.id(value))
            break
    if not base:
        raise EmptyPromptSetError(f"no prompt of split {split!r} has a source whose {target} the probe rows know")
    device = next(iter(bridge.parameters())).device
    as_t = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
    tokens, src, want = as_t(base), as_t(source), as_t(expected)
    _, store = cache_activations(bridge, src, [hook])
    src_x = flat(store[hook])[:, pos]

    edits: dict[str, Edit] = {"none": lambda x: x, "interchange": lambda x: src_x.to(x.dtype)}
    if dictionary is not None:
        d_sae = dictionary.d_sae
        which = torch.zeros(len(base), d_sae, dtype=torch.bool, device=device)
        values = torch.zeros(len(base), d_sae, dtype=dictionary.W_enc.dtype, device=device)
        for i, (b_old, b_new) in enumerate(zip(old, new)):
            which[i, feature_of[b_old]] = True  # off
            which[i, feature_of[b_new]] = True
            values[i, feature_of[b_new]] = typical[b_new]
        edits["feature"] = lambda x: set_features(dictionary, x, values, which)
    if das is not None:
        basis = das.das.basis()
        target_coords = torch.stack([mean_coords[b] for b in new]).to(device)
        edits["das_mean"] = lambda x: set_subspace(basis, x, target_coords)
        edits["das_interchange"] = lambda x: set_subspace(basis, x, src_x.to(basis) @ basis)
    success = {}
    for name, edit in edits.items():
        logits = steer(bridge, tokens, hook, pos, edit)
        success[name] = float((logits.argmax(-1) == want).double().mean())
    clean = steer(bridge, tokens, hook, pos, edits["none"]).argmax(-1)
    return SteeringResult(target, hook, pos, len(base), success, float((clean == as_t(answers)).double().mean()))


__all__ = ["Edit", "SteeringResult", "add_direction", "set_features", "set_subspace", "steer", "steer_variable"]
