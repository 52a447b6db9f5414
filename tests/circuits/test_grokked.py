"""The paper's mechanisms, recovered by the API on models that really grokked (Wang et al. 2024, section 4).

Composition (``grokked_composition``, tests/conftest.py): the first hop runs in the lower
layers and leaves the bridge entity ``b`` at the ``r1`` position, where the logit lens
reads it and where pasting it from another prompt makes the model answer ``r2(b')``; heads
in the upper layers move it to the ``r2`` position, where the second hop happens.

Every threshold sits well below what the grokked models reach and well above what a model
without the mechanism gives (chance for the interchange is the baseline rate, ~0).
"""

from __future__ import annotations

import pytest

from circuits.discover import find_circuit, handoff
from circuits.formation import circuit_formation
from circuits.localize import locate_bridge
from circuits.tasks import composition_task
from interp.lens import dataset_lens
from interp.models import to_bridge

from ..tiny import single_thread

pytestmark = pytest.mark.xdist_group("grokked-composition")  # one worker builds the module's fixtures


@pytest.fixture(scope="module")
def composition(grokked_composition):
    run = grokked_composition
    with single_thread():
        bridge = to_bridge(run.model)
        loc = locate_bridge(bridge, run.dataset, "test_id", n=300)
        answer = dataset_lens(bridge, run.dataset, "answer", split="test_id", n=300)["answer"]
        circuit = find_circuit(bridge, composition_task(run.dataset, "test_id", n=60), target=0.9)
    return run, loc, answer, circuit, handoff(circuit, 1, 2)


def test_bridge_entity_is_decodable_at_r1_in_the_middle_layers(composition):
    run, loc, *_ = composition
    n = run.config.model.n_layers
    middle = loc.decodable[1:n]  # states after 1 .. n-1 blocks
    assert float(middle[:, 1].max()) >= 0.8, loc.summary()
    assert float(middle[:, 0].max()) < 0.3 and float(middle[:, 2].max()) < 0.3  # not at h, not at r2


def test_interchanging_the_r1_state_makes_the_model_answer_r2_of_the_other_bridge(composition):
    _, loc, *_ = composition
    assert loc.n_interchange >= 200
    assert loc.interchange_baseline <= 0.05
    assert float(loc.interchange.max()) >= 0.85, loc.summary()
    assert float(loc.interchange[0]) <= 0.2  # the r1 embedding alone carries no bridge: h matters too


def test_composition_circuit_is_small_faithful_and_complete(composition):
    *_, circuit, _ = composition
    for ablation in ("mean", "resample"):
        ev = circuit.meta["evaluations"][ablation]
        assert ev["faithfulness"] >= 0.85, (ablation, ev)
        assert ev["completeness"] >= 0.9, (ablation, ev)
    assert len(circuit) <= 0.3 * circuit.space.n_edges


def test_composition_circuit_has_the_papers_shape(composition):
    run, loc, answer, _, hand = composition
    n = run.config.model.n_layers
    # the heads that carry what was computed at r1 over to r2 sit in the upper layers ...
    assert hand.share_at_or_above(n // 2) >= 0.9, hand
    assert hand.layer >= n // 2, hand
    # ... the first hop is done at r1 by then ...
    assert hand.src_done >= 0.9, hand
    # ... what they read there, S[layer, r1], is the bridge entity, and the model uses it as such ...
    assert float(loc.decodable[hand.layer, 1]) >= 0.8, loc.summary()
    assert float(loc.interchange[hand.layer]) >= 0.8, loc.summary()
    # ... and the second hop happens after it, at r2: the answer appears there only in the upper layers
    assert float(answer.top1[hand.layer, 2]) <= 0.5 and float(answer.top1[n, 2]) >= 0.9, answer.top1


def test_the_bridge_state_becomes_causal_as_the_model_groks(grokked_run_dir, composition):
    # Figure 4b-c: over training, the causal strength of S[l, r1] and the MRR of b there rise together
    *_, hand = composition
    df = circuit_formation(grokked_run_dir, layer=hand.layer, n=100, max_checkpoints=8)
    r1 = df[df["position"] == "r1"].sort_values("step")
    assert len(r1) >= 3
    first, last = r1.iloc[0], r1.iloc[-1]
    assert last["causal"] >= 0.8 and last["mrr"] >= 0.8, r1[["step", "causal", "mrr", "test_id"]]
    assert last["causal"] - first["causal"] >= 0.3 and last["mrr"] - first["mrr"] >= 0.3, r1
