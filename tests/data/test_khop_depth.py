"""k-hop depth extrapolation: train on depths min_hops..n_hops, test on deeper chains that no training prompt has."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from interp.data import CompositionConfig, KGDataset, data_config, depth_test, generate, heldout_chains, task_schema
from interp.data.composition import _sample_id_chains
from interp.errors import ConfigError
from interp.train import load_run_config

DEPTH = CompositionConfig(
    n_entities=40,
    n_relations=10,
    out_degree=4,
    n_hops=3,
    min_hops=2,
    test_hops=5,
    ood_fraction=0.3,
    phi=2.0,
    test_id_fraction=0.1,
    probe_size=80,
)
"""Trained on 2- and 3-hop chains, tested on 5-hop chains; 30% OOD facts, so deep OOD chains exist."""


@pytest.fixture(scope="module")
def ds() -> KGDataset:
    return generate(DEPTH)


def _edges(ds: KGDataset) -> dict[tuple[str, str], tuple[str, bool]]:
    return {(h, r): (t, bool(o)) for h, r, t, o in ds.graph["atomic"]}


def _walk(ds: KGDataset, prompt: tuple[str, ...]) -> tuple[str, list[bool]]:
    """Follow the prompt's relations through the graph: the answer and each hop's OOD flag."""
    edges, e, flags = _edges(ds), prompt[0], []
    for r in prompt[1:]:
        e, o = edges[(e, r)]
        flags.append(o)
    return e, flags


def _all_chains(ds: KGDataset, depth: int, *, ood: bool) -> set[tuple[str, ...]]:
    """Brute force: every prompt of ``depth`` hops whose hops are all OOD (or all ID)."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for h, r, t, o in ds.graph["atomic"]:
        out.setdefault(h, []).append((r, t, bool(o)))
    frontier = [((h,), h) for h in out]
    for _ in range(depth):
        frontier = [(p + (r,), t) for p, e in frontier for r, t, o in out[e] if o == ood]
    return {p for p, _ in frontier}


def test_training_has_every_depth_from_min_hops_all_id_and_correct(ds):
    inferred = [ex for ex in ds.splits["train"] if ex.type == "inferred"]
    depths = Counter(len(ex.input_tokens) - 1 for ex in inferred)
    assert depths == {2: DEPTH.n_inferred, 3: DEPTH.n_inferred}
    assert len({ex.input_tokens for ex in inferred}) == len(inferred)
    for ex in inferred:
        answer, flags = _walk(ds, ex.input_tokens)
        assert ex.target_tokens == (answer, "</a>") and not any(flags)
        assert ex.provenance["bridges"] == [hop[2] for hop in ex.provenance["atomic"][:-1]]
    # the probe of trained inferred facts keeps one prompt length (the deepest trained)
    assert {len(ex.input_tokens) for ex in ds.splits["train_inferred"]} == {4}


def test_tests_are_deeper_chains_id_or_ood_with_correct_answers(ds):
    trained = {ex.input_tokens for ex in ds.splits["train"]}
    for split, ood in (("test_id", False), ("test_ood", True)):
        examples = ds.splits[split]
        assert examples and {len(ex.input_tokens) for ex in examples} == {1 + DEPTH.test_hops}
        assert len({ex.input_tokens for ex in examples}) == len(examples)
        for ex in examples:
            answer, flags = _walk(ds, ex.input_tokens)
            assert ex.target_tokens == (answer, "</a>") and flags == [ood] * DEPTH.test_hops
            assert ex.input_tokens not in trained
    all_ood = _all_chains(ds, DEPTH.test_hops, ood=True)
    assert {ex.input_tokens for ex in ds.splits["test_ood"]} <= all_ood
    assert len(ds.splits["test_ood"]) == min(len(all_ood), DEPTH.probe_size)
    # analyses read the test depth
    assert task_schema(ds).n_hops == DEPTH.test_hops


def test_without_depth_settings_the_dataset_is_unchanged():
    base = dataclasses.replace(DEPTH, min_hops=None, test_hops=None)
    same = dataclasses.replace(DEPTH, min_hops=3, test_hops=3)  # one depth, tested at it: the plain k-hop recipe
    a, b = generate(base), generate(same)
    assert a.splits == b.splits and a.graph == b.graph
    assert {len(ex.input_tokens) for ex in a.splits["train"] if ex.type == "inferred"} == {4}


@pytest.mark.parametrize("depth", [4, 6])
def test_depth_test_sets_match_brute_force(ds, depth):
    sets = depth_test(ds, depth, size=50, seed=1)
    all_id, all_ood = _all_chains(ds, depth, ood=False), _all_chains(ds, depth, ood=True)
    for name, pool in (("id", all_id), ("ood", all_ood)):
        prompts = [ex.input_tokens for ex in sets[name]]
        assert len(prompts) == len(set(prompts)) == min(50, len(pool))
        assert set(prompts) <= pool
        for ex in sets[name]:
            assert ex.target_tokens[0] == _walk(ds, ex.input_tokens)[0]
    assert depth_test(ds, depth, size=50, seed=1) == sets  # reproducible


def test_deep_id_chains_by_rejection_are_distinct_all_id_chains(ds):
    """Past the enumeration limit ID chains are drawn by rejection: still distinct and all-ID."""
    import numpy as np

    facts = ds.graph["atomic"]
    n, d = DEPTH.n_entities, DEPTH.out_degree
    tails = np.array([int(t[3:-1]) for _, _, t, _ in facts]).reshape(n, d)
    ood = np.array([bool(o) for *_, o in facts]).reshape(n, d)
    depth = 12  # 40 * 4**12 chains: beyond MAX_CHAINS
    chains = _sample_id_chains(np.random.default_rng(0), tails, ood, depth, 200)
    assert len(chains) == len(set(chains.tolist())) == 200
    for c in chains.tolist()[:50]:
        digits = []
        for _ in range(depth):
            c, s = divmod(c, d)
            digits.append(s)
        e = c
        for s in reversed(digits):
            assert not ood[e, s]
            e = tails[e, s]


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        ({"min_hops": 4}, "min_hops"),
        ({"min_hops": 1}, "min_hops"),
        ({"test_hops": 2}, "test_hops"),
        ({"test_hops": 40}, "more hops than this graph allows"),
        ({"phi": 7.0, "test_hops": None}, "min_hops = 2 is out of range"),
    ],
)
def test_bad_depth_config_is_one_line(one_line, overrides, expect):
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(DEPTH, **overrides)
    assert expect in one_line(err.value)


@pytest.mark.parametrize("depth", [2, 3])
def test_heldout_chains_are_untrained_id_chains_of_a_trained_depth(ds, depth):
    held = heldout_chains(ds, depth, size=60, seed=1)
    trained = {ex.input_tokens for ex in ds.examples("train")}
    untrained = _all_chains(ds, depth, ood=False) - trained
    prompts = [ex.input_tokens for ex in held]
    assert len(prompts) == len(set(prompts)) == min(60, len(untrained)) > 0
    assert set(prompts) <= untrained
    for ex in held:
        assert ex.target_tokens[0] == _walk(ds, ex.input_tokens)[0]
    assert heldout_chains(ds, depth, size=60, seed=1) == held  # reproducible
    with pytest.raises(ConfigError, match=r"a trained depth, 2 \.\. 3"):
        heldout_chains(ds, depth + 2)


def test_more_hops_than_the_graph_has_ood_chains_for_is_one_line(one_line):
    sparse = dataclasses.replace(DEPTH, ood_fraction=0.05, test_hops=4)  # 8 OOD facts: no 4-hop OOD chain
    with pytest.raises(ConfigError) as err:
        generate(sparse)
    assert "more hops than this graph allows" in one_line(err.value) and "test_hops = 4" in one_line(err.value)


def test_depth_test_rejects_trained_depths_and_other_datasets(one_line, ds):
    for depth in (2, 3):
        with pytest.raises(ConfigError) as err:
            depth_test(ds, depth)
        assert "deeper than training" in one_line(err.value)
    with pytest.raises(ConfigError) as err:
        depth_test(generate(data_config("comparison-tiny", ["n_entities=20", "phi=2", "probe_size=20"])), 4)
    assert "composition" in one_line(err.value)


def test_deep_tests_need_model_positions(one_line):
    with pytest.raises(ConfigError) as err:
        load_run_config("khop-depth-tiny", ["model.n_ctx=none"])
    assert "model.n_ctx >= 7" in one_line(err.value)
    cfg = load_run_config("khop-depth-tiny")
    assert cfg.model.n_ctx >= cfg.data.test_hops + 3 and cfg.data.min_hops == 2


def test_a_mixed_depth_dataset_saves_and_loads(tmp_path, ds):
    from interp.data import load_dataset

    loaded = load_dataset(ds.save(tmp_path / "depth"))
    assert loaded.splits == ds.splits and loaded.config == ds.config
    assert task_schema(loaded).n_hops == DEPTH.test_hops
