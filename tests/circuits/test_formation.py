"""Circuit formation over a run's checkpoints: one row per checkpoint and key state, exact where it must be."""

from __future__ import annotations

import pytest

from circuits.formation import circuit_formation
from interp.counterfactuals import counterfactual_batch
from interp.patching import top1
from interp.train import load_checkpoint
from interp.train.checkpoint import list_checkpoints


def test_formation_rows_per_checkpoint_and_state(tiny_run_dir):
    df = circuit_formation(tiny_run_dir, layer=0, n=20)
    ckpts = list_checkpoints(tiny_run_dir)
    assert len(ckpts) >= 3
    assert sorted(df["step"].unique()) == sorted(int(p.name.split("_")[1]) for p in ckpts)
    assert set(df["state"]) == {"S[0,r1]", "S[0,r2]"}
    assert len(df) == 2 * len(ckpts)
    for col in ("causal", "mrr", "top1"):
        assert df[col].between(0, 1).all()
    assert "test_id" in df.columns  # the run's accuracies sit next to each checkpoint
    # S[0, r1] is the embedding of r1: swapping h cannot change it
    assert (df[df["state"] == "S[0,r1]"]["causal"] == 0).all()


def test_embedding_state_strength_is_the_counterfactual_answer_change(tiny_run_dir):
    # pasting the swapped r2 embedding is running the swapped prompt: the top-1 changes exactly
    # where the two prompts' top-1 answers differ
    df = circuit_formation(tiny_run_dir, layer=0, n=20)
    last = load_checkpoint(list_checkpoints(tiny_run_dir)[-1], device="cpu")
    from interp.models import to_bridge

    bridge = to_bridge(last.model)
    pairs = counterfactual_batch(last.dataset, last.dataset.examples("train_inferred")[:20], "r2")
    expected = float((top1(bridge, pairs.clean) != top1(bridge, pairs.corrupt)).double().mean())
    got = df[(df["state"] == "S[0,r2]") & (df["step"] == last.step)]["causal"].item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_max_checkpoints_keeps_the_ends(tiny_run_dir):
    df = circuit_formation(tiny_run_dir, layer=1, n=10, max_checkpoints=2)
    steps = sorted(int(p.name.split("_")[1]) for p in list_checkpoints(tiny_run_dir))
    assert sorted(df["step"].unique()) == [steps[0], steps[-1]]
