"""Splicing through the engine: a perfect reconstruction recovers exactly 1, zeros recover exactly 0."""

from __future__ import annotations

import pytest
import torch

from interp.features import evaluate_dictionary, prompt_set, splice_metrics
from interp.intervene import run_with_interventions

from .conftest import SITE, identity_dictionary

SITES = (SITE, "blocks.0.hook_resid_mid", "blocks.1.attn.hook_z", "blocks.0.hook_mlp_out")


def _own_answers(bridge, graph):
    """Prompts whose 'answer' is the model's own clean prediction: clean accuracy is 1 by construction."""
    prompts = prompt_set(graph, ("train_inferred", "test_id"))
    batch = prompts.batch
    with torch.no_grad():
        pred = run_with_interventions(bridge, prompts.tokens, answer_pos=batch.answer_pos).argmax(-1)
    return prompts, pred


@pytest.mark.parametrize("hook", SITES)
def test_the_activation_itself_recovers_exactly_one(bridge, graph, hook):
    prompts, answer = _own_answers(bridge, graph)
    m = splice_metrics(bridge, hook, lambda x: x, prompts.tokens, prompts.batch.answer_pos, answer, prompts.mask)
    assert m["accuracy_clean"] == 1.0 and m["accuracy_zero"] < 1.0  # zero-ablation does change answers here
    assert m["loss_spliced"] == m["loss_clean"] and m["loss_zero"] != m["loss_clean"]
    assert m["accuracy_recovered"] == 1.0 and m["loss_recovered"] == 1.0


def test_zeros_recover_exactly_zero(bridge, graph):
    prompts, answer = _own_answers(bridge, graph)
    m = splice_metrics(bridge, SITE, torch.zeros_like, prompts.tokens, prompts.batch.answer_pos, answer, prompts.mask)
    assert m["accuracy_recovered"] == 0.0 and m["loss_recovered"] == 0.0


def test_positions_outside_the_mask_are_untouched(bridge, graph):
    """A reconstruction that is off everywhere, spliced at position 0 only, equals one that is off only there."""
    prompts, answer = _own_answers(bridge, graph)
    at_first = torch.arange(prompts.mask.shape[1]) == 0
    bump = torch.zeros(bridge.cfg.d_model)
    bump[0] = 3.0
    args = (prompts.tokens, prompts.batch.answer_pos, answer)
    masked = splice_metrics(bridge, SITE, lambda x: x + bump, *args, prompts.mask & at_first)
    unmasked = splice_metrics(bridge, SITE, lambda x: x + bump * at_first[None, :, None], *args, None)
    assert masked["loss_spliced"] == unmasked["loss_spliced"] != masked["loss_clean"]
    assert masked["accuracy_spliced"] == unmasked["accuracy_spliced"]


def test_identity_dictionary_scores_perfectly(bridge, graph):
    sae = identity_dictionary(bridge.cfg.d_model, "batchtopk", dtype=torch.float32)
    m = evaluate_dictionary(sae, bridge, graph, splits=("train_inferred",))
    assert m.fvu == 0.0 and m.loss_recovered == 1.0 and m.loss_spliced == m.loss_clean
    assert m.l0 <= bridge.cfg.d_model and m.n_rows == 3 * m.n_prompts
