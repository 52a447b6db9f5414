"""On a model that really grokked: a dictionary at a middle residual state reconstructs it and keeps the answers."""

from __future__ import annotations

from interp.features import DictionaryConfig, evaluate_dictionary, train_on_model
from interp.intervene import as_bridge


def test_dictionary_at_a_middle_residual_state_keeps_the_model_working(grokked_composition):
    run = grokked_composition
    bridge = as_bridge(run.model)
    layer = len(bridge.blocks) // 2 - 1
    cfg = DictionaryConfig(
        f"blocks.{layer}.hook_resid_post",
        architecture="batchtopk",
        k=16,
        expansion_factor=8,
        steps=300,
        batch_size=2048,
    )
    result, _ = train_on_model(bridge, run.dataset, cfg)
    m = evaluate_dictionary(result.dictionary, bridge, run.dataset, splits=("test_id",))
    assert m.accuracy_clean >= 0.99  # the model grokked: the test is about the dictionary
    assert m.fvu <= 0.1, m
    assert m.accuracy_recovered >= 0.9 and m.loss_recovered >= 0.8, m
    assert abs(m.l0 - 16) <= 4, m
