"""Training the llama family: the loss falls, checkpoints round-trip, resume is bit-exact (looped too)."""

from __future__ import annotations

import pytest
import torch

from interp.models import context_size, family_of, loop_accuracy, n_loops
from interp.runs import load_checkpoint, read_metrics
from interp.train import resume, train
from interp.train.checkpoint import latest_checkpoint
from interp.train.objective import answer_logits

from ..tiny import one_thread, quick_config  # noqa: F401 (fixture)

LLAMA = ("model.family=llama", "model.positions=rotary", "model.activation=silu")


def _rows(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(run_dir)]


@pytest.mark.parametrize(
    "options",
    [(), ("model.loops=2", "model.zero_init_residual=true"), ("model.positions=none",)],
    ids=["rotary", "looped-zero-init", "no-positions"],
)
def test_a_short_llama_run_learns_checkpoints_and_resumes_bit_exact(tmp_path, options):
    cfg = quick_config(*LLAMA, "train.warmup_steps=5", *options)
    full = train(cfg, tmp_path / "full")
    rows = read_metrics(tmp_path / "full")
    assert full.step == 50 and len(rows) == 5
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3  # it learns (about 0.5 nats in 40 steps)
    loaded = load_checkpoint(tmp_path / "full", device="cpu")
    assert family_of(loaded.model) == "llama" and n_loops(loaded.model) == cfg.model.n_loops
    assert loaded.config == cfg and context_size(loaded.model) == loaded.state["n_ctx"]
    batch = loaded.dataset.batch("train")
    with torch.no_grad():  # the answer-only logits the trainer scores are the full forward's, at the answer
        full_logits = loaded.model(input_ids=batch.tokens).logits[torch.arange(len(batch)), batch.answer_pos]
        torch.testing.assert_close(answer_logits(loaded.model, batch.tokens, batch.answer_pos), full_logits)
    accuracy = float((full_logits.argmax(-1) == batch.answer).float().mean())
    t = cfg.model.n_loops
    assert loop_accuracy(loaded.model, loaded.dataset.examples("train"), loaded.dataset.vocab, [t]) == {t: accuracy}
    # killed after 20 steps, resumed: the same metrics and weights, bit for bit
    part = train(cfg, tmp_path / "part", max_steps=20)
    assert part.step == 20
    assert resume(tmp_path / "part").step == 50
    assert _rows(tmp_path / "part") == _rows(tmp_path / "full")
    a = load_checkpoint(tmp_path / "full", device="cpu").model.state_dict()
    b = load_checkpoint(latest_checkpoint(tmp_path / "part"), device="cpu").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
