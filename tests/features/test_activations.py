"""Collecting activations: the rows are the engine's activations at real prompt tokens, nothing else."""

from __future__ import annotations

import pytest
import torch

from interp.features import DictionaryConfig, EmptyPromptSetError, collect_activations, prompt_set, train_dictionary
from interp.features.activations import check_site
from interp.intervene import UnknownHookError, cache_activations

from .conftest import SITE


def test_rows_are_every_prompt_token_of_each_distinct_prompt(graph, resid_acts, bridge):
    prompts = {tuple(ex.input_tokens) for split in graph.splits.values() for ex in split}
    assert len(resid_acts) == sum(len(p) for p in prompts)  # each distinct prompt once, padding never
    assert resid_acts.prompts.batch.tokens.shape[0] == len(prompts)
    # a row is the activation cache_activations reads at its (prompt, position)
    tokens = resid_acts.prompts.tokens
    _, store = cache_activations(bridge, tokens[:20], [SITE])
    for row in torch.nonzero(resid_acts.example < 20).flatten()[:30].tolist():
        b, p = int(resid_acts.example[row]), int(resid_acts.position[row])
        assert p < int(resid_acts.prompts.batch.prompt_len[b])
        assert torch.equal(resid_acts.acts[row], store[SITE][b, p])


def test_named_position_selects_the_task_prompts(graph, bridge):
    acts = collect_activations(bridge, graph, SITE, splits=("train_inferred", "test_id"), positions=("r1",))
    n = len({tuple(ex.input_tokens) for s in ("train_inferred", "test_id") for ex in graph.examples(s)})
    assert len(acts) == n and set(acts.position.tolist()) == {1}
    by_index = collect_activations(bridge, graph, SITE, splits=("train",), positions=(2,))
    assert set(by_index.position.tolist()) == {2}
    assert bool((by_index.prompts.batch.prompt_len[by_index.example] == 3).all())  # atomic facts have no position 2


def test_per_head_hooks_are_flattened(graph, bridge):
    acts = collect_activations(bridge, graph, "blocks.0.attn.hook_z", splits=("test_id",))
    assert acts.d_in == bridge.cfg.n_heads * bridge.cfg.d_head


def test_unknown_hook_lists_examples(bridge, graph, one_line):
    with pytest.raises(UnknownHookError) as err:
        collect_activations(bridge, graph, "blocks.1.hook_resid_pots")
    msg = one_line(err.value)
    assert "unknown hook 'blocks.1.hook_resid_pots'" in msg
    assert "did you mean blocks.1.hook_resid_post" in msg and "blocks.0.attn.hook_z" in msg


def test_attention_pattern_is_refused(bridge, one_line):
    with pytest.raises(UnknownHookError) as err:
        check_site(bridge, "blocks.0.attn.hook_pattern")
    assert "not one activation per position" in one_line(err.value)


def test_empty_prompt_sets_are_one_line(graph, one_line):
    with pytest.raises(EmptyPromptSetError) as err:
        prompt_set(graph, ("train",), (7,))
    assert "select no prompt token" in one_line(err.value)
    with pytest.raises(EmptyPromptSetError) as err:
        prompt_set(graph, ("id_atomic",), ("r2",))  # atomic facts only: no prompt of the task's shape
    assert "no prompts in splits id_atomic" in one_line(err.value)
    with pytest.raises(EmptyPromptSetError) as err:
        train_dictionary(DictionaryConfig(SITE), torch.zeros(0, 32))
    assert "no activations to train on" in one_line(err.value)
