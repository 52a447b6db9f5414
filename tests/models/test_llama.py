"""The llama family (RoPE, RMSNorm, SwiGLU) bridged exactly; position options; zero-initialised residual writers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.testing import assert_close
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from interp.errors import ConfigError
from interp.lens import lens_logits
from interp.metrics import answer_prob, baseline_metric
from interp.models import ModelConfig, build_model, family_of, to_bridge, with_loops
from interp.models.family import decoder_blocks, residual_writers
from interp.models.llama import RMSNorm
from interp.patching import activation_patch
from interp.train import load_run_config

from ..tiny import one_thread  # noqa: F401 (fixture)

D_VOCAB, N_CTX = 37, 6
LLAMA = ModelConfig(
    n_layers=3, d_model=32, n_heads=4, d_mlp=48, family="llama", positions="rotary", activation="silu", init_range=0.15
)
GPT2 = ModelConfig(n_layers=3, d_model=32, n_heads=4, init_range=0.15)


def _tokens(batch: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, D_VOCAB, (batch, N_CTX), generator=torch.Generator().manual_seed(seed))


def _model(cfg: ModelConfig = LLAMA, seed: int = 0):
    """A float64 model in eval mode whose RMSNorm weights are not all one (so folding them is tested)."""
    model = build_model(cfg, D_VOCAB, N_CTX, seed=seed, device="cpu").double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.mul_(1 + 0.5 * torch.rand(param.shape, generator=gen, dtype=param.dtype))
    return model


def test_a_llama_is_a_hugging_face_llama_with_rope_rmsnorm_and_a_gated_mlp():
    model = _model()
    assert isinstance(model, LlamaForCausalLM) and family_of(model) == "llama"
    assert model.config.hidden_act == "silu" and model.config._attn_implementation == "eager"
    block = decoder_blocks(model)[0]
    assert isinstance(block.input_layernorm, LlamaRMSNorm) and isinstance(model.model.norm, LlamaRMSNorm)
    assert {n for n, _ in block.mlp.named_children()} >= {"gate_proj", "up_proj", "down_proj"}
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert type(model.model.rotary_emb).__name__ == "LlamaRotaryEmbedding"
    # its norms are Hugging Face's in float32 and stay float64 for a float64 model
    assert isinstance(block.input_layernorm, RMSNorm)
    norm, reference = RMSNorm(32, eps=1e-5), LlamaRMSNorm(32, eps=1e-5)
    x = torch.randn(4, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(norm(x.float()), reference(x.float()))
        assert_close(norm.double()(x), x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("loops", [1, 3], ids=["plain", "looped"])
def test_bridge_logits_equal_the_hugging_face_model(loops):
    cfg = dataclasses.replace(LLAMA, loops=loops) if loops > 1 else LLAMA
    model = _model(cfg)
    tokens = _tokens()
    with torch.no_grad():
        expected = model(input_ids=tokens).logits
        unprocessed = to_bridge(model, process_weights=False)(tokens)
    assert expected.abs().max() > 0.5  # not a comparison between near-zero logits
    assert_close(unprocessed, expected, rtol=0, atol=1e-12)
    if loops == 1:  # folded RMSNorm weights: TransformerLens's processing rounds at ~1e-7, as for GPT-2
        with torch.no_grad():
            assert_close(to_bridge(model)(tokens), expected, rtol=1e-5, atol=1e-5)


def test_classic_hook_names_and_the_last_layer_lens_is_the_logits():
    """Every hook name of a GPT-2 bridge of the same shape exists, but GPT-2's joint qkv projection's and
    position table's; llama adds its rotary and gate hooks."""
    bridge = to_bridge(_model())
    gpt2 = to_bridge(build_model(dataclasses.replace(GPT2, d_mlp=48), D_VOCAB, N_CTX, device="cpu"))
    names, gpt2_names = set(bridge.hook_dict), set(gpt2.hook_dict)
    gpt2_only = {f"blocks.{L}.attn.qkv.{h}" for L in range(LLAMA.n_layers) for h in ("hook_in", "hook_out")}
    assert gpt2_names - names == gpt2_only | {"pos_embed.hook_in", "pos_embed.hook_out"}
    assert {"blocks.0.attn.hook_rot_q", "blocks.0.mlp.gate.hook_out", "rotary_emb.hook_cos"} <= names
    tokens = _tokens()
    logits, cache = bridge.run_with_cache(tokens)
    assert "hook_pos_embed" not in cache  # rotary positions add nothing to the residual stream
    assert cache["blocks.0.attn.hook_pattern"].shape == (6, LLAMA.n_heads, N_CTX, N_CTX)
    # per-head results sum to the attention output (llama has no output bias)
    assert_close(cache["blocks.1.attn.hook_result"].sum(2), cache["blocks.1.hook_attn_out"], rtol=0, atol=1e-10)
    lens = lens_logits(bridge, tokens)  # batch layer pos d_vocab
    assert lens.shape[1] == LLAMA.n_layers + 1
    assert_close(lens[:, -1], logits, rtol=0, atol=1e-10)


def test_patching_clean_into_clean_reproduces_the_clean_metric():
    bridge = to_bridge(_model())
    clean = _tokens(seed=1)
    metric = answer_prob(clean[:, -1])
    expected = baseline_metric(bridge, clean, metric).mean()
    for name in ("resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "result"):
        got = activation_patch(bridge, clean, clean, metric, name, skip_noops=False)  # really run every patch
        assert_close(got, expected.expand_as(got), rtol=1e-10, atol=1e-10)


def test_a_looped_llama_applies_one_stack_t_times():
    cfg = dataclasses.replace(LLAMA, n_layers=4, loops=2)  # 2 blocks, applied twice
    model = build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu")
    blocks = decoder_blocks(model)
    for i in range(4):
        for p, q in zip(blocks[i].parameters(), blocks[i % 2].parameters(), strict=True):
            assert p is q and p.data_ptr() == q.data_ptr()
    plain = build_model(dataclasses.replace(cfg, loops=1), D_VOCAB, N_CTX, device="cpu")
    per_block = sum(p.numel() for p in blocks[0].parameters())
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in model.parameters()) == 2 * per_block
    deeper = with_loops(model, 5)
    assert len(decoder_blocks(deeper)) == 10 and deeper.config.num_hidden_layers == 10
    assert [block.self_attn.layer_idx for block in decoder_blocks(deeper)] == list(range(10))
    bridge = to_bridge(deeper)
    fired: list[int] = []
    hooks = [(f"blocks.{L}.hook_resid_post", lambda t, hook, L=L: fired.append(L)) for L in range(10)]
    bridge.run_with_hooks(_tokens(), fwd_hooks=hooks)
    assert fired == list(range(10))
    x = torch.randn(1, N_CTX, cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # block 6 is block 0's weights
        cos_sin = deeper.model.rotary_emb(x, torch.arange(N_CTX)[None])
        a = decoder_blocks(deeper)[0](x, position_embeddings=cos_sin)
        b = decoder_blocks(deeper)[6](x, position_embeddings=cos_sin)
    assert_close(a, b, rtol=0, atol=0)


# -- positions ----------------------------------------------------------------------------------------
ONE_LAYER = {"n_layers": 1, "d_model": 32, "n_heads": 4, "init_range": 0.3}
POSITIONS = {
    "gpt2-learned": ModelConfig(**ONE_LAYER),
    "gpt2-none": ModelConfig(**ONE_LAYER, positions="none"),
    "llama-rotary": ModelConfig(**ONE_LAYER, family="llama", positions="rotary", activation="silu"),
    "llama-none": ModelConfig(**ONE_LAYER, family="llama", positions="none", activation="silu"),
}


@pytest.mark.parametrize("name", list(POSITIONS))
def test_without_positions_one_layer_sees_its_prefix_as_a_set(name):
    """With no positions, one causal layer's output at the last token is the same for any order of the
    tokens before it (attention over a set); learned and rotary positions make the order matter."""
    model = build_model(POSITIONS[name], D_VOCAB, N_CTX, seed=0, device="cpu").double().eval()
    tokens = _tokens(batch=4)
    order = torch.tensor([3, 0, 4, 1, 2, 5])  # the last token stays last
    with torch.no_grad():
        a, b = model(input_ids=tokens).logits[:, -1], model(input_ids=tokens[:, order]).logits[:, -1]
    if name.endswith("none"):  # (llama's attention softmax rounds to float32, in Hugging Face and TransformerLens)
        assert_close(a, b, rtol=0, atol=1e-10 if name.startswith("gpt2") else 1e-6)
    else:
        assert (a - b).abs().max() > 1e-3


def test_a_gpt2_without_positions_has_no_position_parameter_and_a_zero_position_embedding():
    model = build_model(POSITIONS["gpt2-none"], D_VOCAB, N_CTX, seed=0, device="cpu")
    assert not any("wpe" in name for name, _ in model.named_parameters())
    learned = build_model(POSITIONS["gpt2-learned"], D_VOCAB, N_CTX, seed=0, device="cpu")
    assert sum(p.numel() for p in learned.parameters()) - sum(p.numel() for p in model.parameters()) == N_CTX * 32
    logits, cache = to_bridge(model).run_with_cache(_tokens())
    assert torch.count_nonzero(cache["hook_pos_embed"]) == 0
    with torch.no_grad():  # the bridge (weights processed, the zero table centred) is the module
        assert_close(logits, model.eval()(input_ids=_tokens()).logits, rtol=1e-5, atol=1e-5)
    # the same token everywhere: every position computes the same thing (nothing tells them apart)
    same = torch.full((2, N_CTX), 7)
    with torch.no_grad():
        out = model.eval()(input_ids=same).logits
    assert_close(out, out[:, :1].expand_as(out), rtol=1e-6, atol=1e-6)


# -- zero-initialised residual writers ---------------------------------------------------------------
@pytest.mark.parametrize("cfg", [GPT2, LLAMA], ids=["gpt2", "llama"])
def test_zero_init_residual_starts_the_residual_stream_as_the_embedding(cfg):
    zero = dataclasses.replace(cfg, zero_init_residual=True)
    model = build_model(zero, D_VOCAB, N_CTX, seed=0, device="cpu").double()
    for block in decoder_blocks(model):
        for proj in residual_writers(block):
            assert all(torch.count_nonzero(p) == 0 for p in proj.parameters())
    tokens = _tokens()
    _, cache = to_bridge(model).run_with_cache(tokens)
    embedding = cache["blocks.0.hook_resid_pre"]
    assert embedding.abs().max() > 0
    for layer in range(cfg.n_layers):
        assert torch.equal(cache[f"blocks.{layer}.hook_resid_post"], embedding)
    # the rest of the initialisation is the plain model's, and a gradient step moves the writers off zero
    plain = build_model(cfg, D_VOCAB, N_CTX, seed=0, device="cpu").double()
    assert torch.equal(plain.get_input_embeddings().weight, model.get_input_embeddings().weight)
    torch.optim.SGD(model.parameters(), lr=0.1).zero_grad()
    model.train()(input_ids=tokens).logits.logsumexp(-1).mean().backward()
    assert all(proj.weight.grad.abs().max() > 0 for proj in residual_writers(decoder_blocks(model)[-1]))


# -- config --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"positions": "rotary"}, "model.family = llama"),
        ({"family": "llama"}, "model.positions = rotary"),
        ({"family": "llama", "positions": "rotary"}, "model.activation"),
        ({"family": "llama", "positions": "rotary", "activation": "silu", "normalization": "none"}, "normalization"),
        ({"family": "llama", "positions": "rotary", "activation": "silu", "dropout": 0.1}, "model.dropout"),
    ],
)
def test_a_combination_a_family_has_not_got_is_one_line(kwargs, match, one_line):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**kwargs)
    assert match in one_line(err.value)


def test_the_llama_preset_builds_a_llama():
    cfg = load_run_config("composition-tiny-llama")
    assert (cfg.model.family, cfg.model.positions, cfg.model.activation) == ("llama", "rotary", "silu")
    composition = load_run_config("composition-tiny")
    assert (
        dataclasses.replace(cfg.model, family="gpt2", positions="learned", activation="gelu_new") == composition.model
    )
    assert cfg.train == composition.train and cfg.data == composition.data
