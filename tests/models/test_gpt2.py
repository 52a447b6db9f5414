"""The hooked GPT-2: classic hook names, bridge == wrapped model, real parameter sharing."""

from __future__ import annotations

import socket

import pytest
import torch

from interp.errors import ConfigError
from interp.models import ModelConfig, build_model, shared_parameter_groups, to_bridge
from interp.models.gpt2 import with_hf_default_kernels

D_VOCAB, N_CTX = 37, 5


def _tokens(batch: int = 6, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, D_VOCAB, (batch, N_CTX), generator=gen)


@pytest.fixture(scope="module")
def cfg() -> ModelConfig:
    return ModelConfig(n_layers=4, d_model=32, n_heads=4, tie_embeddings=False)


@pytest.fixture(scope="module")
def shared_cfg() -> ModelConfig:
    return ModelConfig(n_layers=4, d_model=32, n_heads=4, share_layers=True)


def test_classic_hook_names(cfg):
    bridge = to_bridge(build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu"))
    names = set(bridge.hook_dict)
    for layer in range(cfg.n_layers):
        for hook in (
            "hook_resid_pre",
            "hook_resid_mid",
            "hook_resid_post",
            "hook_attn_out",
            "hook_mlp_out",
            "attn.hook_pattern",
            "attn.hook_z",
            "attn.hook_result",
        ):
            assert f"blocks.{layer}.{hook}" in names
    assert f"blocks.{cfg.n_layers}.hook_resid_post" not in names
    _, cache = bridge.run_with_cache(_tokens())
    assert cache["blocks.0.attn.hook_pattern"].shape == (6, cfg.n_heads, N_CTX, N_CTX)
    assert cache["blocks.1.attn.hook_result"].shape == (6, N_CTX, cfg.n_heads, cfg.d_model)
    # per-head results sum (with the output bias) to the attention output
    summed = cache["blocks.1.attn.hook_result"].sum(dim=2)
    torch.testing.assert_close(
        summed + bridge.blocks[1].attn.b_O, cache["blocks.1.hook_attn_out"], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("which", ["plain", "shared"])
def test_bridge_logits_equal_wrapped_model(which, cfg, shared_cfg):
    model = build_model(cfg if which == "plain" else shared_cfg, D_VOCAB, N_CTX, seed=1, device="cpu").eval()
    tokens = _tokens()
    with torch.no_grad():
        expected = model(input_ids=tokens).logits
        got = to_bridge(model)(tokens)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the bridge is a view on a copy: the trained module keeps its own forward
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=tokens).logits, expected, rtol=0, atol=0)


def test_fast_kernels_compute_hugging_faces_gpt2(cfg):
    """Eager attention and the fused tanh-GELU give the logits of GPT-2 as Hugging Face builds it by default."""
    from transformers.activations import NewGELUActivation

    ours = build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu").eval()
    assert ours.config._attn_implementation == "eager"
    assert ours.config.activation_function == "gelu_pytorch_tanh"
    reference = with_hf_default_kernels(ours).eval()
    assert reference.config._attn_implementation == "sdpa"
    assert all(isinstance(block.mlp.act, NewGELUActivation) for block in reference.transformer.h)
    assert ours.config._attn_implementation == "eager"  # the copy left the model as it was
    with torch.no_grad():
        expected, got = reference(_tokens()).logits, ours(_tokens()).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_weights(cfg):
    a = build_model(cfg, D_VOCAB, N_CTX, seed=3, device="cpu")
    b = build_model(cfg, D_VOCAB, N_CTX, seed=3, device="cpu")
    c = build_model(cfg, D_VOCAB, N_CTX, seed=4, device="cpu")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_parameter_sharing_shares_storage(shared_cfg):
    model = build_model(shared_cfg, D_VOCAB, N_CTX, seed=0, device="cpu")
    half = shared_cfg.n_layers // 2
    blocks = model.transformer.h
    for i in range(half):
        pairs = list(zip(blocks[i].parameters(), blocks[i + half].parameters()))
        assert pairs
        for p, q in pairs:
            assert p is q and p.data_ptr() == q.data_ptr()
    unshared = build_model(ModelConfig(n_layers=4, d_model=32, n_heads=4), D_VOCAB, N_CTX, device="cpu")
    per_block = sum(p.numel() for p in blocks[0].parameters())
    assert (
        sum(p.numel() for p in unshared.parameters()) - sum(p.numel() for p in model.parameters()) == half * per_block
    )
    groups = shared_parameter_groups(model.transformer.h)
    assert len(groups) == half * len(list(blocks[0].parameters()))
    # a gradient step moves both applied copies together
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(input_ids=_tokens()).logits.sum().backward()
    opt.step()
    for p, q in zip(blocks[0].parameters(), blocks[half].parameters()):
        assert torch.equal(p, q)


def test_shared_layers_are_hookable_under_their_own_names(shared_cfg):
    bridge = to_bridge(build_model(shared_cfg, D_VOCAB, N_CTX, seed=0, device="cpu"))
    fired: list[str] = []
    hooks = [(f"blocks.{L}.hook_resid_post", lambda t, hook, L=L: fired.append(L)) for L in range(shared_cfg.n_layers)]
    bridge.run_with_hooks(_tokens(), fwd_hooks=hooks)
    assert fired == list(range(shared_cfg.n_layers))
    _, cache = bridge.run_with_cache(_tokens())
    # block 2 applies block 0's weights to a different input: same function, other activations
    assert not torch.allclose(cache["blocks.0.hook_resid_post"], cache["blocks.2.hook_resid_post"])
    zero_in = torch.zeros_like(cache["blocks.0.hook_resid_pre"])
    with torch.no_grad():
        torch.testing.assert_close(bridge.blocks[0](zero_in), bridge.blocks[2](zero_in))


def test_no_network_needed(cfg, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("grokscope tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    bridge = to_bridge(build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu"))
    assert bridge(_tokens()).shape == (6, N_CTX, D_VOCAB)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"d_model": 30, "n_heads": 4}, "model.d_model"),
        ({"n_layers": 3, "share_layers": True}, "model.n_layers"),
        ({"n_layers": 0}, "model.n_layers"),
        ({"dropout": 1.5}, "model.dropout"),
    ],
)
def test_bad_model_config_is_one_line(kwargs, field):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**kwargs)
    message = str(err.value)
    assert "\n" not in message and field in message


def test_a_model_without_layer_norm_is_bridged_exactly():
    """Nanda's model has no LayerNorm: the HF module has none, the bridge's norm slots pass the stream through
    (still hooked), its logits are the module's, and the logit lens of the last layer is the logits."""
    cfg = ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_mlp=64,
        activation="relu",
        normalization="none",
        tie_embeddings=False,
        init_range=0.2,
    )
    model = build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu").double()
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert not any("ln" in name for name, _ in model.named_parameters())
    tokens = _tokens()
    bridge = to_bridge(model)
    logits, cache = bridge.run_with_cache(tokens)
    torch.testing.assert_close(logits, model(tokens).logits, rtol=0, atol=1e-10)
    resid = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"]
    torch.testing.assert_close(cache["ln_final.hook_normalized"], resid, rtol=0, atol=0)
    torch.testing.assert_close(bridge.unembed(bridge.ln_final(resid)), logits, rtol=0, atol=1e-10)
    # the stream is not normalised: a residual scaled by 3 gives 3x the logits (minus the bias)
    bias = bridge.unembed(torch.zeros_like(resid))
    torch.testing.assert_close(bridge.unembed(bridge.ln_final(3 * resid)) - bias, 3 * (logits - bias))
    with pytest.raises(ConfigError, match="has none"):
        to_bridge(model, process_weights=True)
