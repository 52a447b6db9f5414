"""Fourier tools and progress measures: invariants on synthetic inputs, Nanda's findings on a grokked model."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from interp.counterfactuals import counterfactual_batch
from interp.data import AlgorithmicConfig, generate
from interp.errors import GrokscopeError
from interp.fourier import (
    ModularTask,
    fourier_basis,
    fourier_measures,
    frequency_norms,
    gini,
    key_frequencies,
    neuron_frequencies,
    split_logits,
)
from interp.lens import lens_logits
from interp.metrics import answer_prob, baseline_metric
from interp.models import ModelConfig, build_model, to_bridge
from interp.patching import activation_patch
from interp.progress import detect_phases, progress_measures, read_progress


@pytest.mark.parametrize("p", [7, 8, 53])
def test_the_fourier_basis_is_orthonormal(p):
    basis, names = fourier_basis(p)
    assert basis.shape == (p, p) and len(names) == p and names[:3] == ["const", "cos 1", "sin 1"]
    assert_close(basis @ basis.T, torch.eye(p, dtype=basis.dtype), rtol=0, atol=1e-12)


def test_frequency_norms_keep_the_power():
    p = 11
    basis, _ = fourier_basis(p)
    x = torch.randn(p, 5, dtype=torch.float64)
    coef = basis @ x
    norms = frequency_norms(coef)
    assert norms.shape == (p // 2,)
    assert_close(norms.pow(2).sum() + coef[0].pow(2).sum(), x.pow(2).sum())
    # a pure wave of frequency 3 has all its power there
    wave = torch.cos(2 * math.pi * 3 * torch.arange(p) / p).double()
    assert int(frequency_norms(basis @ wave).argmax()) + 1 == 3


def test_gini():
    assert gini(torch.ones(10)) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0, 0, 0, 5])) == pytest.approx(0.75)
    x = torch.rand(20)
    assert gini(x) == pytest.approx(gini(7 * x))


def test_neurons_are_clustered_by_their_frequency():
    p = 13
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    w = 2 * math.pi / p
    acts = torch.stack(
        [
            torch.cos(w * 3 * a) * torch.cos(w * 3 * b)
            + torch.sin(w * 3 * a)
            + 0.5 * torch.cos(w * 3 * b),  # one frequency
            torch.cos(w * 2 * a) + torch.cos(w * 5 * b),  # two frequencies, equal power
            torch.zeros(p, p),  # dead
            torch.ones(p, p) * 4,  # constant: no variance
        ],
        dim=-1,
    ).reshape(p * p, -1)
    neurons = neuron_frequencies(acts, p)
    assert int(neurons.frequency[0]) == 3 and float(neurons.explained[0]) == pytest.approx(1.0)
    assert float(neurons.explained[1]) == pytest.approx(0.5)
    assert neurons.single.tolist() == [True, False, False, False]
    assert key_frequencies(neurons) == [3]


def test_restricted_and_excluded_logits_split_the_logits():
    ds = generate(AlgorithmicConfig(operation="add", modulus=11, train_fraction=0.5, probe_size=10))
    task = ModularTask(ds)
    p, w = 11, 2 * math.pi / 11
    c = torch.arange(p).double()
    phase = (task.a + task.b).double()[:, None] - c[None, :]
    perfect = 3 * (torch.cos(w * 2 * phase) + torch.cos(w * 4 * phase))  # only the key waves, zero mean per class
    restricted, excluded = split_logits(perfect, task.answer_waves([2, 4]))
    assert_close(restricted, perfect, rtol=0, atol=1e-10)
    assert_close(excluded, torch.zeros_like(perfect), rtol=0, atol=1e-10)
    noisy = perfect + torch.randn_like(perfect)
    restricted, excluded = split_logits(noisy, task.answer_waves([2, 4]))
    assert_close(restricted - noisy.mean(0, keepdim=True) + excluded, noisy)
    # the key waves are orthonormal over the pairs
    waves = task.answer_waves([2, 4])
    assert_close(waves.T @ waves, torch.eye(4, dtype=waves.dtype), rtol=0, atol=1e-10)


def test_modular_task_tables_every_pair_once():
    ds = generate(AlgorithmicConfig(operation="sub", modulus=7, train_fraction=0.4, probe_size=10))
    task = ModularTask(ds)
    assert task.tokens.shape == (49, 3)
    assert int(task.train.sum()) == len(ds.splits["train"]) and int(task.test.sum()) == len(ds.splits["test_id"])
    assert not bool((task.train & task.test).any())
    decoded = ds.vocab.decode(task.tokens[10].tolist())
    assert decoded == ["<1>", "<3>", "<op_sub>"] and int(task.answer[10]) == (1 - 3) % 7


def test_measures_of_an_untrained_model_and_one_line_refusals(one_line):
    cfg = ModelConfig(
        n_layers=1, d_model=32, n_heads=4, d_mlp=64, activation="relu", normalization="none", tie_embeddings=False
    )
    ds = generate(AlgorithmicConfig(operation="add", modulus=11, train_fraction=0.5, probe_size=10))
    model = build_model(cfg, len(ds.vocab), 5, seed=0, device="cpu")
    row = fourier_measures(model, ModularTask(ds), key=[1, 2])
    assert row["key_frequencies"] == [1, 2] and 0 < row["embedding_key_power"] < 1
    assert row["restricted_loss"] > 0 and row["excluded_loss"] > 0
    assert row["train_loss"] == pytest.approx(math.log(11), rel=0.2)
    mul = generate(AlgorithmicConfig(operation="mul", modulus=11, train_fraction=0.5, probe_size=10))
    assert fourier_measures(model, ModularTask(mul))["restricted_loss"] is None
    s5 = generate(AlgorithmicConfig(operation="s5", train_fraction=0.5, probe_size=10))
    with pytest.raises(GrokscopeError) as err:
        ModularTask(s5)
    assert "modular-arithmetic dataset" in one_line(err.value)


# --------------------------------------------------------------------------- grokked model
@pytest.fixture(scope="module")
def progress(grokked_modular_run_dir, tmp_path_factory):
    return progress_measures(grokked_modular_run_dir, save=False)


def test_the_grokked_model_runs_nandas_algorithm(progress):
    """Nanda et al.: a handful of key frequencies; most neurons single-frequency; the embedding's power in
    the key frequencies; logits from the key frequencies alone lose less than the model's own (restricted
    loss < test loss), and without them the training pairs are lost (excluded loss >> train loss)."""
    last = progress[-1]
    assert last["test_accuracy"] >= 0.99
    assert 1 <= len(last["key_frequencies"]) <= 8, last["key_frequencies"]
    assert last["single_frequency_neurons"] >= 0.3
    assert last["embedding_key_power"] >= 0.5
    assert last["restricted_loss"] < last["test_loss"]
    assert last["excluded_loss"] > 1.0 > 10 * last["train_loss"]


def test_progress_measures_move_as_the_paper_says(progress, grokked_modular_run_dir):
    first, last = progress[0], progress[-1]
    assert last["gini_embedding"] > first["gini_embedding"] + 0.1
    assert last["gini_unembed_out"] > first["gini_unembed_out"] + 0.1
    assert last["embedding_key_power"] > first["embedding_key_power"]
    assert last["weight_norm"] < first["weight_norm"]
    assert last["restricted_loss"] < first["restricted_loss"]
    phases = detect_phases(progress)
    mem, formation, cleanup = phases["memorisation"], phases["circuit_formation"], phases["cleanup"]
    assert mem[0] == 0 and mem[1] == formation[0] <= formation[1] == cleanup[0] < cleanup[1], phases
    assert read_progress(grokked_modular_run_dir) is None  # not saved (save=False), so nothing stale is read


def test_the_analyses_work_on_the_modular_model(grokked_modular):
    """On a model without LayerNorm: the logit lens at the last layer is the model's output; patching
    the clean run into itself gives the clean metric; and the residual at ``a`` before the block,
    taken from a prompt with another ``a``, carries that prompt's answer (the model reads ``a`` there only)."""
    bridge = to_bridge(grokked_modular.model)
    pairs = counterfactual_batch(grokked_modular.dataset, "test_id", "a", n=64, id_only=False)
    with torch.no_grad():
        logits = bridge(pairs.clean)
    assert_close(lens_logits(bridge, pairs.clean)[:, -1], logits, rtol=1e-5, atol=1e-4)
    metric = answer_prob(pairs.clean_answer)
    clean = baseline_metric(bridge, pairs.clean, metric).mean()
    assert clean > 0.9
    same = activation_patch(bridge, pairs.clean, pairs.clean, metric, "resid_pre", skip_noops=False)
    assert_close(same, clean.expand_as(same), rtol=1e-5, atol=1e-6)
    swapped = activation_patch(bridge, pairs.clean, pairs.corrupt, answer_prob(pairs.corrupt_answer), "resid_pre")
    assert swapped.shape == (1, 3) and float(swapped[0, 0]) > 0.9 and float(swapped[0, 1]) < 0.1
