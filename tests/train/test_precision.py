"""bf16 autocast, selected by ``train.precision``: training steps and analyses agree with fp32.

The GPU path (CUDA autocast) is the same code with another ``device_type``; these tests
run it on the CPU, where torch's bfloat16 autocast covers the same matrix products.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from interp.counterfactuals import counterfactual_batch
from interp.errors import ConfigError
from interp.patching import activation_patch, logit_diff
from interp.train import Trainer
from interp.train.optim import autocast_for

from ..tiny import TINY_GRAPH, quick_config, tiny_bridge

STEPS = 5


def _trainer(tmp_path, precision: str) -> Trainer:
    config = quick_config(f"train.precision={precision}", "train.device=cpu", "train.warmup_steps=1")
    return Trainer(config, tmp_path / precision)


def test_precision_selects_the_autocast():
    cpu = torch.device("cpu")
    context, scaler = autocast_for("bf16", cpu)
    assert isinstance(context, torch.autocast) and not scaler
    with context:
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert autocast_for("fp32", cpu) == (None, False)
    assert autocast_for("auto", cpu) == (None, False)  # the CPU default stays float32
    with pytest.raises(ConfigError, match="train.precision = fp16 needs a CUDA device") as err:
        autocast_for("fp16", cpu)
    assert "\n" not in str(err.value)


def test_bf16_training_steps_agree_with_fp32(tmp_path):
    """The same steps from the same initialisation: losses within 0.2%, weight updates within 15%.

    (Measured: 2e-4 and 4.5%; Adam normalises each update, so entries with tiny gradients
    move by up to the learning rate either way, and the update, not each weight, is compared.)
    """
    fp32, bf16 = _trainer(tmp_path, "fp32"), _trainer(tmp_path, "bf16")
    assert bf16.autocast is not None and fp32.autocast is None
    for a, b in zip(fp32.model.parameters(), bf16.model.parameters()):
        assert torch.equal(a, b)
    start = [p.detach().clone() for p in fp32.model.parameters()]
    gaps = []
    for step in range(STEPS):
        batch = fp32.train_batch[fp32.batch_indices(step)]
        loss32, loss16 = fp32.train_step(batch), bf16.train_step(batch)
        assert loss32.dtype == loss16.dtype == torch.float32
        assert_close(loss16, loss32, rtol=2e-3, atol=0)
        gaps.append(float((loss16 - loss32).abs()))
    assert max(gaps) > 0  # bfloat16 really ran
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # weights stay float32
    update32 = torch.cat([(p.detach() - s).flatten() for p, s in zip(fp32.model.parameters(), start)])
    update16 = torch.cat([(p.detach() - s).flatten() for p, s in zip(bf16.model.parameters(), start)])
    assert update32.abs().max() > 1e-2  # the steps really moved the weights
    assert (update16 - update32).norm() < 0.15 * update32.norm()


@pytest.mark.parametrize("name", ["resid_pre", "z"])
def test_patching_runs_under_bf16_autocast(name):
    """Both patching forwards (KV-reuse and full) under autocast: within bfloat16 rounding of fp32."""
    from interp.data import generate

    graph = generate(TINY_GRAPH)
    bridge = tiny_bridge(graph, 5)
    p = counterfactual_batch(graph, "train_inferred", "h", n=12, seed=0)
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    reference = activation_patch(bridge, p.corrupt, p.clean, metric, name)
    context, _ = autocast_for("bf16", torch.device("cpu"))
    with context:
        reused = activation_patch(bridge, p.corrupt, p.clean, metric, name)
        full = activation_patch(bridge, p.corrupt, p.clean, metric, name, reuse_kv=False)
    scale = reference.abs().max()
    assert scale > 0.1
    for got in (reused, full):
        assert got.dtype == torch.float32
        assert_close(got, reference, rtol=0, atol=0.05 * float(scale))
    assert (reused - reference).abs().max() > 0  # bfloat16 really ran


def test_edge_attribution_runs_under_bf16_autocast():
    """EAP-IG's forwards and backwards under autocast: scores within 5% of the largest fp32 score."""
    from circuits.edges import edge_attribution
    from interp.data import generate

    graph = generate(TINY_GRAPH)
    bridge = tiny_bridge(graph, 5)
    p = counterfactual_batch(graph, "train_inferred", "h", n=12, seed=0)
    metric = logit_diff(p.clean_answer, p.corrupt_answer)
    reference = edge_attribution(bridge, p.clean, p.corrupt, metric, method="eap-ig").scores
    context, _ = autocast_for("bf16", torch.device("cpu"))
    with context:
        got = edge_attribution(bridge, p.clean, p.corrupt, metric, method="eap-ig").scores
    assert reference.abs().max() > 0.1
    assert_close(got, reference, rtol=0, atol=0.05 * float(reference.abs().max()))
    assert 0 < (got - reference).norm() < 0.05 * reference.norm()
