"""k-sparse probing and best single features: exact against brute force, meaningful on planted data, and the finding."""

from __future__ import annotations

import pytest
import torch

from interp.features import DictionaryMismatchError, EmptyPromptSetError, FeatureError
from interp.features.probing import (
    ProbeRows,
    auroc_matrix,
    best_single_features,
    f_statistic,
    k_sparse_probe,
    probe_rows,
    probe_site,
    split_rows,
)
from interp.intervene import as_bridge

from .conftest import SITE, identity_dictionary


def _brute_auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2, over every pair."""
    pos, neg = scores[positive], scores[~positive]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def test_auroc_matches_every_pair_with_ties():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (40, 5), generator=gen).double()  # many ties
    labels = torch.randint(0, 3, (40,), generator=gen)
    classes, auc = auroc_matrix(x, labels)
    for i, c in enumerate(classes):
        for j in range(x.shape[1]):
            assert auc[i, j].item() == pytest.approx(_brute_auroc(x[:, j], labels == c), abs=1e-12)


def test_f_statistic_is_the_one_way_anova():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    labels = torch.arange(30) % 3
    f = f_statistic(x, labels)
    groups = [x[labels == c] for c in range(3)]
    grand = x.mean(0)
    between = sum(len(g) * (g.mean(0) - grand) ** 2 for g in groups) / 2
    within = sum(((g - g.mean(0)) ** 2).sum(0) for g in groups) / 27
    torch.testing.assert_close(f, between / within)


def _planted(n: int, seed: int) -> ProbeRows:
    """Ten classes written as a 2-digit code (tens in dim 3, units in dim 7) among 20 noise dimensions."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=gen)
    x = 0.05 * torch.randn(n, 20, generator=gen)
    x[:, 3] += (labels // 5).float() * 3
    x[:, 7] += (labels % 5).float() * 3
    return ProbeRows(x, labels, [(str(i),) for i in range(n)])


def test_k_sparse_probe_finds_the_planted_dimensions():
    train, test = _planted(400, 0), _planted(200, 1)
    acc, order = k_sparse_probe(train, {"test": test}, [1, 2, 20])
    assert set(order[:2]) == {3, 7}
    assert acc["test"][1] == 1.0 and acc["test"][2] > acc["test"][0]
    assert acc["test"][0] < 0.7  # one digit alone cannot tell ten classes apart


def test_best_single_feature_of_a_one_hot_code_is_perfect():
    labels = torch.arange(60) % 6
    x = torch.zeros(60, 12)
    x[torch.arange(60), labels * 2] = 1.0 + torch.rand(60)  # class c fires feature 2c
    single = best_single_features(x, labels)
    assert single.feature == [0, 2, 4, 6, 8, 10]
    assert single.auroc == [1.0] * 6 and single.precision == [1.0] * 6 and single.recall == [1.0] * 6
    assert single.share() == 1.0 and single.distinct_features == 6


def test_rows_are_distinct_prefixes_labelled_by_the_bridge(bridge, graph):
    rows = probe_rows(bridge, graph, [SITE], "bridge", "train")[SITE]
    assert len(set(rows.prefixes)) == len(rows) and all(len(p) == 2 for p in rows.prefixes)
    for prefix, label in zip(rows.prefixes, rows.labels.tolist()):
        assert graph.vocab.decode([label])[0] == graph.kg.tail(*prefix)
    splits = split_rows(bridge, graph, [SITE], "bridge", holdout=0.3)[SITE]
    train = set(splits.train.prefixes)
    assert splits.evals["held_out"] and all(not (set(r.prefixes) & train) for r in splits.evals.values())


def test_probe_site_on_raw_dimensions_and_on_a_dictionary(bridge, graph):
    raw = probe_site(bridge, graph, SITE, "bridge", ks=[1, 4])
    assert raw.source == "raw" and raw.width == bridge.cfg.d_model and set(raw.accuracy) >= {"held_out"}
    assert all(0 <= a <= 1 for a in raw.accuracy["held_out"])
    sae = identity_dictionary(bridge.cfg.d_model, dtype=torch.float32)
    feats = probe_site(bridge, graph, SITE, "bridge", dictionary=sae, ks=[2])
    assert feats.source == "dictionary" and feats.width == 2 * bridge.cfg.d_model
    assert raw.n_rows == feats.n_rows and raw.n_classes == feats.n_classes


def test_bad_input_is_one_line(bridge, graph, one_line):
    d = bridge.cfg.d_model
    with pytest.raises(FeatureError, match="out of range") as err:
        probe_site(bridge, graph, SITE, "bridge", ks=[d + 1])
    one_line(err.value)
    with pytest.raises(DictionaryMismatchError, match="trained at") as err:
        probe_site(bridge, graph, "blocks.0.hook_resid_post", "bridge", dictionary=identity_dictionary(d))
    one_line(err.value)
    with pytest.raises(FeatureError, match="unknown position") as err:
        probe_rows(bridge, graph, [SITE], "bridge", "train", position="e1")
    one_line(err.value)
    with pytest.raises(EmptyPromptSetError) as err:
        probe_rows(bridge, graph, [SITE], "bridge", "id_atomic")
    one_line(err.value)
    with pytest.raises(FeatureError, match="unknown") as err:
        probe_rows(bridge, graph, [SITE], "v1", "train")
    one_line(err.value)
    with pytest.raises(FeatureError, match="holdout") as err:
        split_rows(bridge, graph, [SITE], "bridge", holdout=1.0)
    one_line(err.value)


# ------------------------------------------------------------------------------ grokked
def test_the_bridge_is_linearly_decodable_in_a_middle_state_of_a_grokked_model(grokked_composition):
    """The finding: at the middle state S[n_layers / 2, r1] a 16-sparse probe names the bridge entity of
    held-out prefixes far above chance; the token embedding S[0, r1] cannot."""
    run = grokked_composition
    middle = len(as_bridge(run.model).blocks) // 2
    hooks = ["blocks.0.hook_resid_pre", f"blocks.{middle}.hook_resid_pre"]
    splits = split_rows(run.model, run.dataset, hooks, "bridge")
    low, mid = (probe_site(run.model, run.dataset, h, "bridge", ks=[16], splits=splits) for h in hooks)
    assert mid.n_classes >= 50 and mid.chance <= 0.05
    assert mid.accuracy["held_out"][0] >= 0.7, mid.accuracy
    assert low.accuracy["held_out"][0] <= 0.1, low.accuracy
