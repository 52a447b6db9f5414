"""Muon: torch's update where it can be compared bit for bit, an orthogonal update, and its split of parameters."""

from __future__ import annotations

import pytest
import torch

from interp.train import Trainer, load_run_config
from interp.train.muon import BF16_MIN_SIDE, Muon, fast_ns_dtype, orthogonalize
from tests.tiny import QUICK

SHAPES = [(16, 48), (40, 16), (24, 24)]  # wide, tall (transposed inside) and square


def _steps(optimizer_factory, seed=0, steps=6):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(shape, generator=gen).requires_grad_() for shape in SHAPES]
    opt = optimizer_factory(params)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return params, opt


@pytest.mark.parametrize("adjust", ["match_rms_adamw", "original"])
def test_bfloat16_iteration_is_torchs_muon_bit_for_bit(adjust):
    kwargs = dict(lr=0.01, weight_decay=0.1, adjust_lr_fn=adjust)
    ours, ours_opt = _steps(lambda ps: Muon(ps, ns_dtype=torch.bfloat16, **kwargs))
    ref, ref_opt = _steps(lambda ps: torch.optim.Muon(ps, **kwargs))
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    ours_state, ref_state = ours_opt.state_dict()["state"], ref_opt.state_dict()["state"]
    assert ours_state.keys() == ref_state.keys()
    assert all(torch.equal(ours_state[i]["momentum_buffer"], ref_state[i]["momentum_buffer"]) for i in ref_state)


def test_float32_iteration_stays_within_bfloat16_rounding_of_torchs_muon():
    kwargs = dict(lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    ours, _ = _steps(lambda ps: Muon(ps, ns_dtype=torch.float32, **kwargs))
    ref, _ = _steps(lambda ps: torch.optim.Muon(ps, **kwargs))
    for a, b in zip(ours, ref):
        assert not torch.equal(a, b)  # it really is another iteration ...
        torch.testing.assert_close(a, b, rtol=0, atol=2e-3)  # ... of the same update


@pytest.mark.parametrize("nesterov", [True, False])
def test_float32_iteration_keeps_torchs_momentum_buffers(nesterov):
    """The momentum is the same running average of the gradients, whatever dtype the iteration runs in."""
    kwargs = dict(lr=0.01, weight_decay=0.0, nesterov=nesterov)
    ours = Muon([torch.zeros(s, requires_grad=True) for s in SHAPES], **kwargs)
    ref = torch.optim.Muon([torch.zeros(s, requires_grad=True) for s in SHAPES], **kwargs)
    gen = torch.Generator().manual_seed(2)
    for _ in range(4):
        grads = [torch.randn(s, generator=gen) for s in SHAPES]
        for opt in (ours, ref):
            for p, g in zip(opt.param_groups[0]["params"], grads):
                p.grad = g.clone()
            opt.step()
    for i in range(len(SHAPES)):
        assert torch.equal(
            ours.state_dict()["state"][i]["momentum_buffer"], ref.state_dict()["state"][i]["momentum_buffer"]
        )


@pytest.mark.parametrize("shape", SHAPES)
def test_orthogonalize_gives_the_polar_factor_up_to_its_singular_value_band(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = orthogonalize(g, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.float32)
    assert out.shape == g.shape and out.dtype == torch.float32
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    # Muon's quintic iteration maps every singular value into about [0.7, 1.2] (not exactly 1)
    s = torch.linalg.svdvals(out)
    assert s.min() > 0.6 and s.max() < 1.25
    cosine = (out * polar).sum() / (out.norm() * polar.norm())
    assert cosine > 0.97


def test_trainer_gives_hidden_matrices_to_muon_and_the_rest_to_adamw(tmp_path):
    cfg = load_run_config("composition-tiny", QUICK + ["train.optimizer=muon"])
    trainer = Trainer(cfg, tmp_path / "run")
    muon = {id(p) for g in trainer.muon.param_groups for p in g["params"]}
    adamw = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    params = dict(trainer.model.named_parameters())
    assert muon.isdisjoint(adamw) and muon | adamw == {id(p) for p in params.values()}
    for name, p in params.items():
        hidden = p.ndim == 2 and ".h." in name and (".attn." in name or ".mlp." in name)
        assert (id(p) in muon) == hidden, name
    # the tied embedding / unembedding is an AdamW parameter with weight decay
    wte = trainer.model.transformer.wte.weight
    decayed = {id(p) for p in trainer.optimizer.param_groups[0]["params"]}
    assert id(wte) in decayed and trainer.optimizer.param_groups[0]["weight_decay"] == cfg.train.weight_decay
    assert Trainer(load_run_config("composition-tiny", QUICK), tmp_path / "plain").muon is None


@pytest.mark.parametrize(("name", "dtype"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_train_muon_ns_dtype_sets_the_iterations_dtype(tmp_path, name, dtype):
    cfg = load_run_config("composition-tiny", QUICK + ["train.optimizer=muon", f"train.muon_ns_dtype={name}"])
    trainer = Trainer(cfg, tmp_path / "run")
    param = trainer.muon.param_groups[0]["params"][0]
    assert trainer.muon.dtype_for(param) == dtype


def test_auto_ns_dtype_follows_the_cpus_bfloat16_units_and_the_matrix_size(tmp_path):
    cfg = load_run_config("composition-tiny", QUICK + ["train.optimizer=muon", "train.device=cpu"])
    trainer = Trainer(cfg, tmp_path / "run")
    fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    for param in trainer.muon.param_groups[0]["params"]:  # d_model 64: below BF16_MIN_SIDE
        assert trainer.muon.dtype_for(param) == torch.float32
    big = torch.zeros(BF16_MIN_SIDE, 4 * BF16_MIN_SIDE)
    assert fast_ns_dtype(big) == (torch.bfloat16 if fast else torch.float32)
    assert fast_ns_dtype(big[:, : BF16_MIN_SIDE - 1]) == torch.float32
    assert fast_ns_dtype(torch.zeros(2, 2, device="meta")) == torch.bfloat16  # not a CPU
