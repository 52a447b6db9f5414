"""Knowledge edits: the dependent facts by the graph, both edit methods, scores, errors."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from interp.data import KGDataset
from interp.edits import (
    EditError,
    control_facts,
    dependent_facts,
    edit_suite,
    finetune_edit,
    independent_facts,
    key_covariance,
    make_edit,
    predictions,
    rome_edit,
    sample_edits,
    score_edit,
)
from interp.models import build_model

from ..tiny import TINY_MODEL


@pytest.fixture(scope="module")
def model(graph):
    return build_model(TINY_MODEL, len(graph.vocab), 5, seed=0, device="cpu").eval()


def _an_edit(graph: KGDataset, k: int = 0):
    """The k-th ID fact, edited to the first other entity sharing a relation with its tail."""
    kg = graph.kg
    h, r, t = kg.id_facts[k]
    new = next(
        e
        for e in sorted({x for _, _, x in kg.id_facts})
        if e != t and set(kg.relations_of(e)) & set(kg.relations_of(t))
    )
    return make_edit(graph, h, r, new)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_dependent_facts_match_a_brute_force_listing(graph):
    kg = graph.kg
    ents = sorted({h for h, _ in kg.facts} | {t for t, _ in kg.facts.values()})
    rels = sorted({r for _, r in kg.facts})
    for k in (0, 5, 17):
        edit = _an_edit(graph, k)
        want = {}
        for h0, r1, r2 in itertools.product(ents, rels, rels):
            b = kg.tail(h0, r1)
            if b is None or kg.tail(b, r2) is None:
                continue
            uses = [(h0, r1) == edit.prompt, (b, r2) == edit.prompt]
            if not any(uses):
                continue
            b_new = edit.new if (h0, r1) == edit.prompt else b
            t_new = edit.new if (b_new, r2) == edit.prompt else kg.tail(b_new, r2)
            want[(h0, r1, r2)] = (kg.tail(b, r2), t_new, uses)
        got = {d.prompt: d for d in dependent_facts(graph, edit)}
        assert set(got) == set(want) and want
        for prompt, (old, new, uses) in want.items():
            d = got[prompt]
            assert (d.old, d.new) == (old, new)
            assert d.hop == {(True, False): "first", (False, True): "second", (True, True): "both"}[tuple(uses)]
            b = kg.tail(prompt[0], prompt[1])
            assert d.in_distribution == (not kg.is_ood(prompt[0], prompt[1]) and not kg.is_ood(b, prompt[2]))
        # a second-hop fact answers the new target itself
        assert all(d.new == edit.new for d in got.values() if d.hop == "second")


def test_independent_facts_exclude_every_use_of_the_edited_fact(graph):
    edit = _an_edit(graph)
    dependent = {d.prompt for d in dependent_facts(graph, edit)}
    for split in ("id_atomic", "test_id", "train_inferred"):
        kept = independent_facts(graph, edit, split)
        assert not any(p[:2] == edit.prompt or p in dependent for p, _ in kept)
        dropped = [
            ex for ex in graph.examples(split) if ex.input_tokens[:2] == edit.prompt or ex.input_tokens in dependent
        ]
        assert len(kept) + len(dropped) == len(graph.examples(split))


def test_control_facts_end_in_the_edited_relation_without_using_the_edit(graph):
    kg = graph.kg
    for k in (0, 5, 17):
        edit = _an_edit(graph, k)
        want = {}
        for (h0, r1), (b, _) in kg.facts.items():
            t = kg.tail(b, edit.relation)
            if t is None or b == edit.head or (h0, r1) == edit.prompt or t == edit.new:
                continue
            if not kg.is_ood(h0, r1) and not kg.is_ood(b, edit.relation):
                want[(h0, r1, edit.relation)] = t
        got = dict(control_facts(graph, edit))
        assert got == want and want
        # disjoint from the facts the edit changes: an edit cannot legitimately move a control
        assert not set(got) & {d.prompt for d in dependent_facts(graph, edit)}


def test_finetune_reaches_the_new_target_on_a_copy(graph, model):
    edit = _an_edit(graph)
    before = _params(model)
    assert predictions(model, graph, [edit.prompt])[0] != edit.new
    edited = finetune_edit(model, graph, edit, steps=200, lr=3e-3, retain_weight=0.5, n_retain=32)
    assert predictions(edited, graph, [edit.prompt]) == [edit.new]
    after = _params(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is untouched
    assert any(not torch.equal(before[k], v) for k, v in edited.state_dict().items())
    score = score_edit(model, edited, graph, edit)
    assert score.edit_accuracy == 1.0
    assert 0.0 <= score.locality_atomic <= 1.0 and 0.0 <= score.locality_inferred <= 1.0
    assert score.n_control == 0 or 0.0 <= score.spurious_second <= 1.0


DOWN_PROJECTION = {"gpt2": "transformer.h.{}.mlp.c_proj.weight", "llama": "model.layers.{}.mlp.down_proj.weight"}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_rome_is_a_rank_one_change_of_one_mlp_that_maps_the_key(graph, model, family):
    if family == "llama":
        llama = dataclasses.replace(TINY_MODEL, family="llama", positions="rotary", activation="silu")
        model = build_model(llama, len(graph.vocab), 5, seed=0, device="cpu").eval()
    edit = _an_edit(graph, 3)
    layer = 1
    before = _params(model)
    edited = rome_edit(model, graph, edit, layer=layer, steps=300, lr=0.5, delta_decay=0.0)
    after = _params(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    name = DOWN_PROJECTION[family].format(layer)
    changed = [k for k, v in edited.state_dict().items() if not torch.equal(before[k], v)]
    assert changed == [name]
    diff = (edited.state_dict()[name] - before[name]).double()
    s = torch.linalg.svdvals(diff)
    assert s[0] > 0 and s[1] < 1e-4 * s[0]  # rank one
    assert predictions(edited, graph, [edit.prompt]) == [edit.new]
    cov = key_covariance(model, graph, layer)
    assert torch.allclose(cov, cov.T) and torch.linalg.eigvalsh(cov).min() > 0


def test_edit_errors_are_one_line(graph, comparison_graph, model):
    kg = graph.kg
    h, r, t = kg.id_facts[0]
    missing_r = next(x for x in sorted({r for _, r in kg.facts}) if kg.tail(h, x) is None)
    cases = [
        (lambda: make_edit(graph, h, missing_r, t), "no atomic fact"),
        (lambda: make_edit(graph, "<e_nope>", r, t), "no atomic fact"),
        (lambda: make_edit(graph, h, r, "<e_nope>"), "not an entity"),
        (lambda: make_edit(graph, h, r, t), "already answers"),
        (lambda: make_edit(comparison_graph, "<e_0>", "<attr_0>", "<e_1>"), "composition dataset"),
        (lambda: rome_edit(model, graph, _an_edit(graph), layer=99), "out of range"),
    ]
    for call, text in cases:
        with pytest.raises(EditError) as err:
            call()
        assert text in str(err.value) and "\n" not in str(err.value)


def test_edit_suite_on_a_grokked_model(grokked_composition):
    """The slow test: edits of a grokked model reach their new targets and leave atomic facts mostly alone."""
    run = grokked_composition
    out = edit_suite(
        run.model,
        run.dataset,
        n_edits=1,
        methods={
            "finetune": lambda m, d, e: finetune_edit(m, d, e, retain_weight=1.0),
            "rome": lambda m, d, e: rome_edit(m, d, e, layer=0),
        },
    )
    assert out["n_edits"] == 1.0
    # the original scored against itself: nothing propagates, everything is local, no control moves
    same = score_edit(run.model, run.model, run.dataset, sample_edits(run.model, run.dataset, 1)[0])
    assert same.n_dependent > 0 and same.n_control > 0
    assert (same.propagation, same.spurious_second, same.locality_atomic, same.locality_inferred) == (
        0.0,
        0.0,
        1.0,
        1.0,
    )
    for method, local in (("finetune", 0.7), ("rome", 0.95)):  # the rank-one edit is the local one
        assert out[f"{method}_edit_accuracy"] == 1.0
        assert out[f"{method}_locality_atomic"] >= local
