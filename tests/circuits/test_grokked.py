"""The paper's mechanisms, recovered by the API on models that really grokked (Wang et al. 2024, section 4).

Composition (``grokked_composition``, tests/conftest.py): the first hop runs in the lower
layers and leaves the bridge entity ``b`` at the ``r1`` position, where the logit lens
reads it and where pasting it from another prompt makes the model answer ``r2(b')``; heads
in the upper layers move it to the ``r2`` position, where the second hop happens.

Comparison (``grokked_comparison``, tests/circuits/conftest.py): the parallel circuit. The
same lower-layer MLP retrieves ``v1`` at ``e1`` and ``v2`` at ``e2``; by the middle layers
``v1`` has reached ``e2``, where an MLP above the retrieval compares the two values. (The
values are causally localised; the logit lens does not read them in these small models.)

Every threshold sits well below what the grokked models reach and well above what a model
without the mechanism gives (chance for the interchange is the baseline rate, ~0).
"""

from __future__ import annotations

import pytest

from interp.lens import dataset_lens
from interp.models import to_bridge

from circuits.discover import circuit_shape, find_circuit, handoff
from circuits.formation import circuit_formation
from circuits.localize import interchange, locate_bridge, locate_values, value_pairs
from circuits.nodes import node_importance
from circuits.tasks import comparison_task, composition_task

from .helpers import single_thread


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


@pytest.fixture(scope="module")
def comparison(grokked_comparison):
    run = grokked_comparison
    with single_thread():
        bridge, ds = to_bridge(run.model), run.dataset
        by_swap = {  # node importance when only e1 (only e2) is swapped for an entity with another value
            swap: node_importance(bridge, comparison_task(ds, "test_id", swaps=(swap,), n=200), ("mlp_out", "attn_out"))
            for swap in ("e1", "e2")
        }
        pairs = value_pairs(ds, ds.examples("test_id")[:300], "v1")
        v1_at_e2 = interchange(bridge, pairs.clean, pairs.source, pairs.expected, 4)
        values = locate_values(bridge, ds, "test_id", n=300)
        circuit = find_circuit(bridge, comparison_task(ds, "test_id", n=60), target=0.9)
    return run, by_swap, v1_at_e2, values, circuit


def _retrieval_layer(importance, position: int) -> int:
    return int(importance["mlp_out"][:, position].argmax())


def test_values_are_retrieved_in_parallel_at_e1_and_e2(comparison):
    run, by_swap, *_ = comparison
    n = run.config.model.n_layers
    # the MLP that matters most for e1 sits at e1, the one for e2 at e2, in the same lower layer
    l1, l2 = _retrieval_layer(by_swap["e1"], 2), _retrieval_layer(by_swap["e2"], 4)
    assert l1 == l2 < n // 2, (by_swap["e1"]["mlp_out"], by_swap["e2"]["mlp_out"])
    assert float(by_swap["e1"]["mlp_out"][l1, 2]) >= 0.25
    assert float(by_swap["e2"]["mlp_out"][l2, 4]) >= 0.5
    # nothing of e2 is ever needed at e1 (causality), and e1's own MLP is not where e2 matters
    assert float(by_swap["e2"]["mlp_out"][:, :4].abs().max()) == 0.0


def test_the_values_are_compared_at_e2_above_the_retrieval(comparison):
    run, by_swap, *_ = comparison
    retrieval = _retrieval_layer(by_swap["e2"], 4)
    above = {swap: imp["mlp_out"][retrieval + 1 :, 4] for swap, imp in by_swap.items()}
    # one MLP above the retrieval, at e2, is needed for either value: it compares them
    layer = int((above["e1"] + above["e2"]).argmax())
    assert float(above["e1"][layer]) >= 0.3 and float(above["e2"][layer]) >= 0.3, above


def test_v1_reaches_e2_before_the_comparison(comparison):
    run, by_swap, v1_at_e2, values, _ = comparison
    n = run.config.model.n_layers
    # pasting S[l, e2] from a prompt whose e1 has another value: from the middle layers on, that state
    # already holds v1 and the model compares the other value (S[0, e2] is the e2 token: nothing moves)
    assert float(v1_at_e2[0]) <= 0.05
    assert float(v1_at_e2[n // 2]) >= 0.6, v1_at_e2
    assert float(v1_at_e2[n]) >= 0.9
    v1 = values["v1"]
    assert v1.interchange_baseline <= 0.05
    assert float(v1.interchange[0]) >= 0.9, v1.summary()  # the e1 token itself decides


def test_comparison_circuit_is_faithful_and_parallel(comparison):
    run, by_swap, _, _, circuit = comparison
    for ablation, least in (("mean", 0.85), ("resample", 0.8)):
        ev = circuit.meta["evaluations"][ablation]
        assert ev["faithfulness"] >= least, (ablation, ev)
        assert ev["completeness"] >= 0.9, (ablation, ev)
    # the circuit does its own work at both entity positions in the retrieval layer
    retrieval = _retrieval_layer(by_swap["e2"], 4)
    layers = circuit_shape(circuit)["writer_layers"]
    assert retrieval in layers["e1"] and retrieval in layers["e2"], layers
