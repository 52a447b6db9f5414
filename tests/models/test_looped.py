"""Looped transformers: one block stack applied T times, T free at inference, every iteration hookable."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from interp.data import CompositionConfig, generate
from interp.errors import ConfigError
from interp.lens import logit_lens
from interp.models import (
    ModelConfig,
    applied_loops,
    build_model,
    iteration_ends,
    loop_accuracy,
    loop_stack_size,
    n_loops,
    per_iteration,
    to_bridge,
    with_loops,
)
from interp.train import load_run_config
from interp.train.checkpoint import load_model_state, save_checkpoint
from interp.train.objective import accuracy
from interp.train.trainer import Trainer

D_VOCAB, N_CTX = 29, 6
LOOPED = ModelConfig(n_layers=6, d_model=32, n_heads=4, loops=3, init_range=0.1)  # 2 blocks x 3 loops


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tokens(batch: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, D_VOCAB, (batch, N_CTX), generator=torch.Generator().manual_seed(seed))


def _logits(model, tokens=None) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=_tokens() if tokens is None else tokens).logits


def _unrolled(model, cfg: ModelConfig, loops: int):
    """An ordinary unshared GPT-2 of stack*loops blocks, block i a copy of the looped model's block i % stack."""
    plain = build_model(dataclasses.replace(cfg, n_layers=cfg.n_stack * loops, loops=1), D_VOCAB, N_CTX, device="cpu")
    state = {}
    for key in plain.state_dict():
        parts = key.split(".")
        if parts[:2] == ["transformer", "h"]:
            parts[2] = str(int(parts[2]) % cfg.n_stack)
        state[key] = model.state_dict()[".".join(parts)]
    plain.load_state_dict(state)
    assert not any(len(g) > 1 for g in _groups(plain.transformer.h))
    return plain


def _groups(module):
    seen = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return list(seen.values())


def test_blocks_share_weights_by_identity_and_count_once():
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=0, device="cpu")
    blocks = model.transformer.h
    assert len(blocks) == 6 and loop_stack_size(model) == 2 and n_loops(model) == 3
    for i in range(6):
        for p, q in zip(blocks[i].parameters(), blocks[i % 2].parameters(), strict=True):
            assert p is q
    assert blocks[0].attn.c_attn.weight is not blocks[1].attn.c_attn.weight
    stack = build_model(dataclasses.replace(LOOPED, n_layers=2, loops=1), D_VOCAB, N_CTX, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in stack.parameters())
    # the optimiser sees each weight once; a step moves every iteration together
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == len(list(stack.parameters()))
    model(input_ids=_tokens()).logits.square().mean().backward()
    opt.step()
    for p, q in zip(blocks[1].parameters(), blocks[5].parameters()):
        assert p is q


@pytest.mark.parametrize("loops", [1, 3, 5])
def test_looped_model_is_the_unrolled_plain_model(loops):
    """T applications of the stack compute exactly an ordinary GPT-2 whose blocks repeat the stack's weights."""
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=1, device="cpu")
    changed = with_loops(model, loops)
    assert len(changed.transformer.h) == 2 * loops and changed.config.n_layer == 2 * loops
    assert loop_stack_size(changed) == 2 and n_loops(model) == 3  # the original is untouched
    torch.testing.assert_close(_logits(changed), _logits(_unrolled(model, LOOPED, loops)), rtol=1e-5, atol=1e-5)
    # back to training depth: the original function
    torch.testing.assert_close(_logits(with_loops(changed, 3)), _logits(model), rtol=0, atol=0)
    if loops != 3:
        assert not torch.allclose(_logits(changed), _logits(model), atol=1e-3)


def test_config_with_loops_builds_the_same_function():
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=2, device="cpu")
    cfg5 = LOOPED.with_loops(5)
    assert (cfg5.n_layers, cfg5.loops, cfg5.n_stack) == (10, 5, 2)
    rebuilt = build_model(cfg5, D_VOCAB, N_CTX, seed=9, device="cpu")
    load_model_state(
        rebuilt, {k: v for k, v in model.state_dict().items() if ".h." not in k or int(k.split(".")[2]) < 2}, "test"
    )
    torch.testing.assert_close(_logits(rebuilt), _logits(with_loops(model, 5)), rtol=0, atol=0)
    shared = ModelConfig(n_layers=4, d_model=32, n_heads=4, share_layers=True)
    assert (shared.n_loops, shared.n_stack) == (2, 2) and shared.with_loops(3).n_layers == 6


def test_every_iteration_is_hookable_and_the_last_lens_is_the_logits():
    model = with_loops(build_model(LOOPED, D_VOCAB, N_CTX, seed=3, device="cpu"), 4)
    bridge = to_bridge(model)
    assert bridge.cfg.n_layers == 8
    fired: list[int] = []
    hooks = [(f"blocks.{i}.hook_resid_post", lambda t, hook, i=i: fired.append(i)) for i in range(8)]
    bridge.run_with_hooks(_tokens(), fwd_hooks=hooks)
    assert fired == list(range(8))
    tokens = _tokens()
    logits = _logits(model, tokens)
    answer = logits[:, -1].argmax(-1)
    lens = logit_lens(bridge, tokens, answer, positions=[N_CTX - 1])
    assert lens.rank.shape == (5, 9, 1)
    assert (lens.rank[:, -1, 0] == 0).all()  # the last applied block's lens is the model's own prediction
    probs = logits[:, -1].softmax(-1).gather(-1, answer[:, None])[:, 0]
    torch.testing.assert_close(lens.prob[:, -1, 0], probs, rtol=1e-4, atol=1e-5)
    ends = per_iteration(lens.mrr, n_stack=2)  # layer pos -> iteration pos
    assert iteration_ends(2, 4) == [0, 2, 4, 6, 8] and ends.shape == (5, 1)
    torch.testing.assert_close(ends[2], lens.mrr[4])
    # iterations differ: the same weights applied to a different residual
    _, cache = bridge.run_with_cache(tokens)
    assert not torch.allclose(cache["blocks.1.hook_resid_post"], cache["blocks.3.hook_resid_post"])


def test_checkpoint_stores_each_shared_tensor_once_and_round_trips(tmp_path):
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=4, device="cpu")
    path = save_checkpoint(tmp_path, 1, model.state_dict(), {}, {"config": {}})
    stored = load_file(str(path / "model.safetensors"))
    assert not any(k.startswith(f"transformer.h.{i}.") for k in stored for i in range(2, 6))
    assert "lm_head.weight" not in stored  # tied to the token embedding
    unique = {id(p) for p in model.parameters()}
    assert len([k for k in stored if not k.endswith(".attn.bias") and not k.endswith("masked_bias")]) == len(unique)
    fresh = build_model(LOOPED, D_VOCAB, N_CTX, seed=5, device="cpu")
    assert not torch.allclose(_logits(fresh), _logits(model))
    load_model_state(fresh, stored, path)
    torch.testing.assert_close(_logits(fresh), _logits(model), rtol=0, atol=0)
    assert fresh.transformer.h[4].mlp.c_fc.weight is fresh.transformer.h[0].mlp.c_fc.weight  # still tied


def test_training_keeps_blocks_tied_and_checkpoints_load_with_more_loops(tmp_path):
    cfg = load_run_config(
        "composition-tiny",
        [
            "data.n_entities=30",
            "data.n_relations=8",
            "data.out_degree=4",
            "data.phi=2",
            "data.test_id_fraction=0.1",
            "model.n_layers=4",
            "model.d_model=32",
            "model.n_heads=2",
            "model.loops=2",
            "train.batch_size=32",
            "train.max_steps=6",
            "train.eval_every=3",
            "train.checkpoint_every=3",
            "train.stop_after_grok=false",
            "train.progress=false",
            "train.tensorboard=false",
            "train.threads=1",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run")
    before = trainer.model.transformer.h[0].attn.c_attn.weight.detach().clone()
    trainer.run()
    model = trainer.model
    assert not torch.equal(model.transformer.h[0].attn.c_attn.weight, before)
    assert model.transformer.h[2].attn.c_attn.weight is model.transformer.h[0].attn.c_attn.weight
    from interp.runs import load_checkpoint

    loaded = load_checkpoint(tmp_path / "run", device="cpu")
    assert loop_stack_size(loaded.model) == 2 and n_loops(loaded.model) == 2
    tokens = loaded.dataset.batch("test_id").tokens[:8]
    torch.testing.assert_close(_logits(loaded.model, tokens), _logits(model, tokens), rtol=0, atol=0)
    deeper = build_model(
        cfg.model.with_loops(4), len(loaded.dataset.vocab), loaded.model.config.n_positions, device="cpu"
    )
    ckpt = loaded.checkpoint / "model.safetensors"
    load_model_state(deeper, load_file(str(ckpt)), ckpt)
    torch.testing.assert_close(_logits(deeper, tokens), _logits(with_loops(loaded.model, 4), tokens), rtol=0, atol=0)


def test_applied_loops_runs_fewer_loops_in_place_and_restores_the_model():
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=2, device="cpu")
    full = _logits(model)
    for loops in (1, 2, 3):
        with applied_loops(model, loops) as fewer:
            assert fewer is model and len(model.transformer.h) == LOOPED.n_stack * loops
            torch.testing.assert_close(_logits(model), _logits(with_loops(model, loops)), rtol=0, atol=0)
    assert len(model.transformer.h) == LOOPED.n_layers
    torch.testing.assert_close(_logits(model), full, rtol=0, atol=0)
    for bad in (0, 4, True):
        with pytest.raises(ConfigError, match=r"1 \.\. 3"):
            with applied_loops(model, bad):
                pass


def _atomic_loops_config(*extra: str):
    return load_run_config(
        "composition-tiny",
        [
            "data.n_entities=30",
            "data.n_relations=8",
            "data.out_degree=4",
            "data.phi=2",
            "data.test_id_fraction=0.1",
            "model.n_layers=4",
            "model.d_model=32",
            "model.n_heads=2",
            "model.loops=4",
            "train.batch_size=32",
            "train.max_steps=4",
            "train.eval_every=2",
            "train.checkpoint_every=2",
            "train.stop_after_grok=false",
            "train.progress=false",
            "train.tensorboard=false",
            "train.threads=1",
            *extra,
        ],
    )


def test_atomic_loops_trains_atomic_facts_with_fewer_loops(tmp_path):
    """The step's loss is the row-weighted mean of the atomic rows at atomic_loops and the others at all loops."""
    trainer = Trainer(_atomic_loops_config("train.atomic_loops=1"), tmp_path / "run")
    rows = trainer.batch_indices(0)
    batch, loops, shift = trainer.batch_for(0)
    examples = trainer.dataset.examples("train")
    atomic = loops == 1
    assert atomic.tolist() == [trainer.dataset.schema.is_atomic(examples[int(i)]) for i in rows]
    assert set(loops.tolist()) == {1, 4} and shift == 0
    assert 0 < int(atomic.sum()) < len(batch)

    def mean_loss(model, part):
        logits = model.eval()(input_ids=part.tokens).logits
        return torch.nn.functional.cross_entropy(
            logits[torch.arange(len(part)), part.answer_pos], part.answer, reduction="sum"
        )

    with torch.no_grad():
        expected = (
            mean_loss(with_loops(trainer.model, 1), batch[torch.nonzero(atomic).flatten()])
            + mean_loss(trainer.model, batch[torch.nonzero(~atomic).flatten()])
        ) / len(batch)
    assert not trainer.config.train.loss_on_eos  # the answer alone, as mean_loss scores it
    trainer.model.train()
    torch.testing.assert_close(trainer._loss(batch, loops), expected, rtol=1e-5, atol=1e-6)
    assert len(trainer.model.transformer.h) == 4
    with pytest.raises(ValueError, match="loops="):
        trainer.train_step(batch)
    trainer.run()
    assert (
        trainer.step == 4
        and trainer.model.transformer.h[3].mlp.c_fc.weight is trainer.model.transformer.h[0].mlp.c_fc.weight
    )


@pytest.mark.parametrize(
    "extra, expect",
    [
        (("train.atomic_loops=4",), "train.atomic_loops = 4 needs a looped model with more loops"),
        (("train.atomic_loops=1", "model.loops=1"), "train.atomic_loops = 1 needs a looped model"),
        (("train.atomic_loops=0",), "train.atomic_loops"),
    ],
)
def test_bad_atomic_loops_is_one_line(one_line, extra, expect):
    with pytest.raises(ConfigError) as err:
        _atomic_loops_config(*extra)
    assert expect in one_line(err.value)


def test_loop_accuracy_agrees_with_the_trainers_accuracy():
    data = generate(CompositionConfig(n_entities=30, n_relations=8, out_degree=4, phi=2, probe_size=40))
    batch = data.batch("test_id")
    model = build_model(LOOPED, len(data.vocab), batch.tokens.shape[1], seed=6, device="cpu")
    scores = loop_accuracy(model, data.examples("test_id"), data.vocab, [3, 1])
    assert set(scores) == {3, 1}
    assert scores[3] == pytest.approx(accuracy(model, batch))
    assert scores[1] == pytest.approx(accuracy(with_loops(model, 1), batch))
    deep = data.examples("test_id")[:1]
    short = build_model(LOOPED, len(data.vocab), 3, seed=6, device="cpu")
    with pytest.raises(ConfigError, match="n_ctx"):
        loop_accuracy(short, deep, data.vocab, [3])


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"loops": 0}, "model.loops"),
        ({"n_layers": 6, "loops": 4}, "multiple of model.loops"),
        ({"n_layers": 4, "loops": 2, "share_layers": True}, "use model.loops alone"),
        ({"n_ctx": 0}, "model.n_ctx"),
    ],
)
def test_bad_loop_config_is_one_line(one_line, kwargs, expect):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**{"d_model": 32, "n_heads": 4, **kwargs})
    assert expect in one_line(err.value)


def test_bad_loop_use_is_one_line(one_line):
    model = build_model(LOOPED, D_VOCAB, N_CTX, seed=0, device="cpu")
    for bad in (0, -1, True):
        with pytest.raises(ConfigError) as err:
            with_loops(model, bad)
        assert "loops" in one_line(err.value)
    with pytest.raises(ConfigError) as err:
        LOOPED.with_loops(0)
    assert "loops" in one_line(err.value)
    odd = build_model(ModelConfig(n_layers=4, d_model=32, n_heads=4), D_VOCAB, N_CTX, device="cpu")
    odd.transformer.h[3] = odd.transformer.h[1]  # blocks a b c b: not a stack applied in order
    with pytest.raises(ConfigError) as err:
        with_loops(odd, 2)
    assert "model.loops" in one_line(err.value)
    with pytest.raises(ConfigError) as err:
        build_model(dataclasses.replace(LOOPED, n_ctx=4), D_VOCAB, N_CTX, device="cpu")
    assert "model.n_ctx" in one_line(err.value)
    with pytest.raises(ConfigError) as err:
        per_iteration(torch.zeros(6, 2), n_stack=2)
    assert "iterations" in one_line(err.value)
