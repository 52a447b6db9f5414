"""The answer after every loop iteration, adaptive halting, and the lens per iteration at each hop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interp.data import data_config, generate, heldout_chains, make_batch
from interp.errors import ConfigError
from interp.loop_lens import hop_iterations
from interp.models import ModelConfig, build_model, halting_predictions, iteration_logits, with_loops

LLAMA = {"family": "llama", "positions": "rotary", "activation": "silu"}


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    extra = LLAMA if request.param == "llama" else {}
    cfg = ModelConfig(n_layers=8, d_model=32, n_heads=2, loops=4, n_ctx=12, init_range=0.2, **extra)
    return build_model(cfg, 40, 12, seed=1, device="cpu").eval()


@pytest.fixture(scope="module")
def prompts():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 40, (16, 9), generator=gen), torch.randint(3, 9, (16,), generator=gen)


def test_iteration_t_is_the_model_applied_t_times(model, prompts):
    tokens, pos = prompts
    logits = iteration_logits(model, tokens, pos, 6)  # 6 > the 4 loops it was built with
    rows = torch.arange(len(tokens))
    for t in (1, 3, 4, 6):
        expected = with_loops(model, t)(input_ids=tokens).logits[rows, pos]
        torch.testing.assert_close(logits[t - 1], expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def gpt2():
    cfg = ModelConfig(n_layers=8, d_model=32, n_heads=2, loops=4, n_ctx=12, init_range=0.2)
    return build_model(cfg, 40, 12, seed=1, device="cpu").eval()


def test_halting_stops_where_the_answer_distribution_settles(gpt2, prompts):
    """(Halting reads iteration_logits, which the test above checks for both families.)"""
    model = gpt2
    tokens, pos = prompts
    rows = torch.arange(len(tokens))
    with torch.no_grad():
        logp = torch.stack(
            [F.log_softmax(with_loops(model, t)(input_ids=tokens).logits[rows, pos], -1) for t in range(1, 9)]
        )
    kl = (logp[1:].exp() * (logp[1:] - logp[:-1])).sum(-1)  # kl[i]: iteration i + 2 against i + 1
    threshold = float(kl.median())
    halted = halting_predictions(model, tokens, pos, max_loops=8, kl=threshold)
    for b in range(len(tokens)):
        below = [i + 2 for i in range(7) if kl[i, b] < threshold]
        stop = below[0] if below else 8
        assert int(halted.iteration[b]) == stop
        assert int(halted.prediction[b]) == int(logp[stop - 1, b].argmax())
    assert set(halting_predictions(model, tokens, pos, max_loops=8, kl=1e9).iteration.tolist()) == {2}
    assert set(halting_predictions(model, tokens, pos, max_loops=8, kl=1e-30).iteration.tolist()) == {8}
    assert set(halting_predictions(model, tokens, pos, max_loops=8, kl=1e9, min_loops=5).iteration.tolist()) == {5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kl": 0.0}, "kl = 0.0"), ({"min_loops": 1}, "min_loops = 1"), ({"max_loops": 0}, "min_loops = 2")],
)
def test_bad_halting_settings_are_one_line_errors(gpt2, prompts, kwargs, message, one_line):
    with pytest.raises(ConfigError) as err:
        halting_predictions(gpt2, *prompts, **kwargs)
    assert message in one_line(err.value)


def test_too_long_prompts_are_a_one_line_error(gpt2, one_line):
    with pytest.raises(ConfigError) as err:
        iteration_logits(gpt2, torch.zeros(1, 13, dtype=torch.long), torch.zeros(1, dtype=torch.long), 2)
    assert "raise model.n_ctx" in one_line(err.value)


@pytest.fixture(scope="module")
def khop():
    return generate(data_config("khop-depth8", ["probe_size=50"]))


def test_hop_iterations_read_each_hop_at_its_relation(khop, one_line):
    cfg = ModelConfig(n_layers=4, d_model=32, n_heads=2, loops=4, n_ctx=11, init_range=0.3)
    model = build_model(cfg, len(khop.vocab), 11, seed=0, device="cpu").eval()
    chains = heldout_chains(khop, 3, size=50)
    hops = hop_iterations(model, chains, khop.vocab, loops=6)
    batch = make_batch(chains, khop.vocab)
    targets = torch.tensor([khop.vocab.encode([*ex.provenance["bridges"], ex.answer]) for ex in chains])
    top = torch.stack(
        [with_loops(model, t)(input_ids=batch.tokens).logits[:, 1:4].argmax(-1) for t in range(1, 7)]
    )  # (iteration, prompt, hop)
    hit = top == targets
    for b in range(len(chains)):
        for k in range(3):
            seq = hit[:, b, k].tolist()
            first = seq.index(True) + 1 if any(seq) else 0
            settled = 0 if not seq[-1] else next(t for t in range(1, 7) if all(seq[t - 1 :]))
            assert (int(hops.first[b, k]), int(hops.settled[b, k])) == (first, settled)
    assert hops.depth == 3 and len(hops.table()) == 3 and hops.table()[0]["prompts"] == 50
    with pytest.raises(ConfigError) as err:
        hop_iterations(model, chains + heldout_chains(khop, 2, size=5), khop.vocab)
    assert "mix depths [2, 3]" in one_line(err.value)
