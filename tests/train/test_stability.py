"""StableMax and the orthogonal gradient (Prieto et al. 2025): their definitions, and a training step with each."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from interp.data import AlgorithmicConfig, generate
from interp.models import ModelConfig
from interp.train import RunConfig, TrainConfig
from interp.train.stability import log_stablemax, orthogonalize_gradients_, stablemax_cross_entropy
from interp.train.trainer import Trainer


def test_stablemax_is_s_normalised():
    x = torch.tensor([[0.0, 1.0, -1.0, 3.0]])
    s = torch.tensor([[1.0, 2.0, 0.5, 4.0]])  # x + 1 above 0, 1 / (1 - x) below
    assert_close(log_stablemax(x).exp(), s / s.sum())
    logits = torch.randn(16, 9) * 5
    probs = log_stablemax(logits).exp()
    assert_close(probs.sum(-1), torch.ones(16))
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))  # s is increasing
    target = torch.randint(0, 9, (16,))
    assert_close(stablemax_cross_entropy(logits, target), -log_stablemax(logits)[torch.arange(16), target].mean())
    # label smoothing mixes in the uniform target as F.cross_entropy does
    smoothed = stablemax_cross_entropy(logits, target, label_smoothing=0.1)
    log_p = log_stablemax(logits)
    expected = (0.9 * -log_p[torch.arange(16), target] - 0.1 * log_p.mean(-1)).mean()
    assert_close(smoothed, expected)


def test_stablemax_does_not_collapse_where_softmax_does():
    """Scaling confident logits by 1,000 rounds the softmax of the answer to 1 (loss 0, no gradient left);
    StableMax's loss stays positive and its gradient non-zero."""
    logits = torch.tensor([[30.0, 1.0, -2.0]]) * 1000
    target = torch.tensor([0])
    soft = logits.clone().requires_grad_()
    F.cross_entropy(soft, target).backward()
    assert float(soft.grad.abs().max()) == 0.0
    stable = logits.clone().requires_grad_()
    loss = stablemax_cross_entropy(stable, target)
    loss.backward()
    assert float(loss.detach()) > 0 and float(stable.grad.abs().max()) > 0


def test_orthogonal_gradient_is_orthogonal_and_keeps_its_norm():
    w = torch.nn.Parameter(torch.randn(5, 4))
    w.grad = torch.randn(5, 4) + 3 * w.detach()
    assert abs(float((w.grad * w.detach()).sum())) > 1  # not orthogonal to begin with
    norm = w.grad.norm()
    orthogonalize_gradients_([w])
    assert abs(float((w.grad * w.detach()).sum())) < 1e-4 * float(norm * w.detach().norm())
    assert float(w.grad.norm()) == pytest.approx(float(norm), rel=1e-5)


@pytest.mark.parametrize("option", ["train.loss_function=stablemax", "train.orthogonal_grad=true"])
def test_a_training_step_with_each_option(option, tmp_path):
    data = AlgorithmicConfig(operation="add", modulus=11, train_fraction=0.5, probe_size=10)
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=64, activation="relu", normalization="none")
    base = RunConfig(
        name="t",
        data=data,
        model=model,
        train=TrainConfig(
            batch_size=64,
            lr=1e-2,
            weight_decay=0.0,
            warmup_steps=1,
            loss_on_eos=False,
            answer_only_unembed=True,
            progress=False,
            tensorboard=False,
        ),
    )
    config = base.with_overrides([option])
    trainer = Trainer(config, tmp_path, dataset=generate(data))
    losses = [float(trainer.train_step(*trainer.batch_for(step))) for step in range(30)]
    assert math.isfinite(losses[-1]) and losses[-1] < losses[0]
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train_step(*trainer.batch_for(30))
    # the cosine of each step's gradient (kept after the step) with its parameter before the step
    cosines = [
        float((p.grad * before[n]).sum() / (p.grad.norm() * before[n].norm()).clamp_min(1e-12))
        for n, p in trainer.model.named_parameters()
    ]
    orthogonal = [abs(c) < 1e-4 for c in cosines]
    assert all(orthogonal) if config.train.orthogonal_grad else not all(orthogonal), cosines
