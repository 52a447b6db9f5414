"""DAS: the interchange of a rotated subspace, on tiny random models (invariants) and on a grokked one (the finding)."""

from __future__ import annotations

import pytest
import torch

from interp.features import EmptyPromptSetError, FeatureError
from interp.features.das import (
    DAS,
    das_pairs,
    interchange_accuracy,
    orthogonality_error,
    patched_logits,
    residual_states,
    state_hook,
    train_das,
)
from interp.features.das_runs import das_curve, full_interchange
from interp.intervene import LayerOutOfRangeError, cache_activations, position_mask, restore, run_with_interventions


@pytest.fixture(scope="module")
def pairs(graph):
    return das_pairs(graph, "bridge", "train", n=12)


def _full_state_reference(bridge, pairs, layer, position):
    """Logits with the whole state S[layer, position] pasted from the source run by a hook Patch in a full forward."""
    hook = state_hook(bridge, layer)
    _, src = cache_activations(bridge, pairs.corrupt, [hook])
    where = position_mask(len(pairs), pairs.n_pos, position)
    return run_with_interventions(bridge, pairs.clean, [restore(src, hook, where)], answer_pos=pairs.answer_pos)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_full_dimension_das_is_the_full_state_interchange(bridge64, pairs, layer):
    position = pairs.positions.index("r1")
    das = DAS(bridge64.cfg.d_model, bridge64.cfg.d_model, seed=3, dtype=torch.float64)
    assert orthogonality_error(das) < 1e-12
    base = residual_states(bridge64, pairs.clean, layer)
    source = residual_states(bridge64, pairs.corrupt, layer)[:, position]
    got = patched_logits(bridge64, base, das(base[:, position], source), layer, position)
    want = _full_state_reference(bridge64, pairs, layer, position)
    clean = run_with_interventions(bridge64, pairs.clean, answer_pos=pairs.answer_pos)
    assert (want - clean).abs().max() > 1e-3  # the interchange really changes the answer logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_zero_dimensions_change_nothing(bridge64, pairs):
    position = pairs.positions.index("r1")
    das = DAS(bridge64.cfg.d_model, 0, dtype=torch.float64)
    base = residual_states(bridge64, pairs.clean, 1)
    source = residual_states(bridge64, pairs.corrupt, 1)[:, position]
    assert torch.equal(das(base[:, position], source), base[:, position])
    got = patched_logits(bridge64, base, das(base[:, position], source), 1, position)
    clean = run_with_interventions(bridge64, pairs.clean, answer_pos=pairs.answer_pos)
    torch.testing.assert_close(got, clean, rtol=0, atol=1e-12)


def test_iia_of_the_whole_state_matches_full_dimension_das_and_zero_dimensions_match_no_edit(bridge, graph, pairs):
    full = interchange_accuracy(bridge, None, pairs, layer=2, position="r1")
    das = DAS(bridge.cfg.d_model, bridge.cfg.d_model, seed=1)
    assert interchange_accuracy(bridge, das, pairs, layer=2, position="r1") == full
    none = interchange_accuracy(bridge, DAS(bridge.cfg.d_model, 0), pairs, layer=2, position="r1")
    logits = run_with_interventions(bridge, pairs.clean, answer_pos=pairs.answer_pos)
    assert none == float((logits.argmax(-1) == pairs.corrupt_answer).double().mean())
    assert full_interchange(bridge, graph, pairs=pairs, layers=[2], position=1) == {2: full}


def test_training_keeps_the_rotation_orthogonal_and_lowers_the_loss(bridge, pairs):
    fit = train_das(bridge, pairs, layer=1, position="r1", d=4, steps=25, lr=5e-2, batch_size=16)
    assert orthogonality_error(fit.das) < 1e-4
    assert fit.das.basis().shape == (bridge.cfg.d_model, 4)
    assert sum(fit.losses[-5:]) < sum(fit.losses[:5])
    assert 0.0 <= fit.train_iia <= 1.0 and fit.hook == "blocks.1.hook_resid_pre" and fit.position == 1


def test_boundless_das_learns_a_mask_and_counts_its_size(bridge, pairs):
    fit = train_das(bridge, pairs, layer=2, position=1, d=None, steps=20, lr=5e-2, batch_size=16, mask_penalty=0.05)
    m = fit.das.mask()
    assert m.shape == (bridge.cfg.d_model,) and bool(((m >= 0) & (m <= 1)).all())
    assert fit.size == int((m > 0.5).sum()) == fit.das.basis().shape[1]
    assert orthogonality_error(fit.das) < 1e-4


def test_das_curve_reports_one_point_per_size(bridge, graph, pairs):
    points = das_curve(bridge, graph, "bridge", layer=1, sizes=[0, 2], pairs=(pairs, pairs), steps=3, batch_size=8)
    assert [p.d for p in points] == [0, 2] and all(0 <= p.iia <= 1 for p in points)


def test_pairs_swap_what_sets_the_bridge_and_keep_r2(graph, pairs):
    assert set(pairs.swaps) == {"h", "r1"}
    assert torch.equal(pairs.clean[:, 2], pairs.corrupt[:, 2])
    assert bool((pairs.clean_answer != pairs.corrupt_answer).all())


def test_bad_input_is_one_line(bridge, graph, pairs, one_line):
    d_model = bridge.cfg.d_model
    with pytest.raises(FeatureError, match="out of range") as err:
        train_das(bridge, pairs, layer=1, position="r1", d=d_model + 1, steps=1)
    one_line(err.value)
    with pytest.raises(LayerOutOfRangeError) as err:
        train_das(bridge, pairs, layer=9, position="r1", d=2, steps=1)
    one_line(err.value)
    with pytest.raises(FeatureError, match="unknown position") as err:
        interchange_accuracy(bridge, None, pairs, layer=1, position="e1")
    one_line(err.value)
    with pytest.raises(EmptyPromptSetError) as err:
        interchange_accuracy(bridge, None, pairs[[]], layer=1, position=1)
    one_line(err.value)
    with pytest.raises(EmptyPromptSetError) as err:
        das_pairs(graph, "bridge", "id_atomic")
    one_line(err.value)
    with pytest.raises(FeatureError, match="unknown intermediate") as err:
        das_pairs(graph, "v1", "train")
    one_line(err.value)
    with pytest.raises(FeatureError, match="rotates") as err:
        interchange_accuracy(bridge, DAS(d_model + 2, 1), pairs, layer=1, position=1)
    one_line(err.value)


# ------------------------------------------------------------------------------ grokked
def test_a_small_das_subspace_carries_the_bridge_on_a_grokked_model(grokked_composition):
    """The finding: at the state where interchanging S[l, r1] works best, a 16-dimensional subspace of
    the 128-dimensional state carries the bridge entity on held-out pairs."""
    run = grokked_composition
    test = das_pairs(run.dataset, "bridge", "test_id", seed=1)
    ceiling = full_interchange(run.model, run.dataset, "bridge", pairs=test)
    layer = max(ceiling, key=ceiling.get)
    assert ceiling[layer] >= 0.9, ceiling
    train = das_pairs(run.dataset, "bridge", "train", n=600)
    fit = train_das(run.model, train, layer=layer, position="r1", d=16, steps=150, lr=3e-2, batch_size=128)
    iia = interchange_accuracy(run.model, fit.das, test, layer=layer, position="r1")
    assert iia >= 0.5, (layer, iia, ceiling)
    assert orthogonality_error(fit.das) < 1e-4
