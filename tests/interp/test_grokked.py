"""The paper's finding, on a composition model that really grokked (Wang et al. 2024, section 4).

In the generalising circuit the lower layers do the first hop: the bridge entity ``b`` of
``(h, r1, b)`` is held at the ``r1`` position in the middle layers, where the logit lens
decodes it. The ``grokked_composition`` fixture (top-level ``tests/conftest.py``) is a
``LoadedRun`` of a composition model trained until it grokked.
"""

from __future__ import annotations

from interp.lens import bridge_entity_lens


def test_bridge_entity_is_top1_at_r1_in_a_middle_layer(grokked_composition):
    run = grokked_composition
    assert run.dataset.task == "composition"
    lens = bridge_entity_lens(run.model, run.dataset, split="train_inferred", n=300)
    n_layers = run.config.model.n_layers
    # residual after 1 .. n_layers-1 blocks (neither the embeddings nor the output), at r1 (position 1)
    middle_at_r1 = lens.rank[:, 1:n_layers, 1]
    decoded = (middle_at_r1 == 0).any(dim=1).float().mean()
    assert decoded > 0.5, f"bridge entity top-1 at r1 in some middle layer for only {decoded:.0%} of examples"
