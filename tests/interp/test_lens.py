"""Logit lens: the last layer is the model's output; ranks, reciprocal ranks and probabilities agree."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from interp.data import ComplexConfig, CompositionConfig, generate
from interp.intervene import InterventionError
from interp.lens import (
    bridge_entity_lens,
    dataset_lens,
    example_targets,
    lens_logits,
    lens_over_checkpoints,
    logit_lens,
)
from interp.train import RunConfig, TrainConfig, load_checkpoint, train
from interp.train.checkpoint import list_checkpoints

from .conftest import TINY_GRAPH, TINY_MODEL


def test_lens_at_the_last_layer_is_the_model_output(bridge, pairs):
    tokens = pairs["h"].clean
    lens = lens_logits(bridge, tokens)
    assert lens.shape == (len(tokens), len(bridge.blocks) + 1, tokens.shape[1], bridge.cfg.d_vocab)
    with torch.no_grad():
        logits = bridge(tokens)
    assert_close(lens[:, -1], logits, rtol=1e-5, atol=1e-5)
    # the other layers really are different read-outs
    assert (lens[:, 1] - logits).abs().max() > 1e-2


def test_rank_rr_and_prob_follow_the_lens_logits(bridge, pairs):
    p = pairs["r1"]
    result = logit_lens(bridge, p.clean, p.clean_answer)
    lens = lens_logits(bridge, p.clean)
    index = p.clean_answer[:, None, None, None].expand(*lens.shape[:3], 1)
    own = lens.gather(-1, index)[..., 0]
    assert torch.equal(result.rank, (lens > own[..., None]).sum(-1))
    assert_close(result.rr, 1.0 / (result.rank.float() + 1.0), rtol=0, atol=0)
    assert_close(result.prob, lens.softmax(-1).gather(-1, index)[..., 0], rtol=1e-5, atol=1e-7)
    # the token each example predicts at the final layer has rank 0 there
    final_top1 = lens[:, -1, -1].argmax(-1)
    top = logit_lens(bridge, p.clean, {"top1": final_top1})["top1"]
    assert bool((top.rank[:, -1, -1] == 0).all())
    assert_close(top.mrr[-1, -1], torch.tensor(1.0), rtol=0, atol=0)


def test_dataframe_is_tidy(bridge, graph, pairs):
    p = pairs["h"]
    result = logit_lens(bridge, p.clean, p.clean_answer, positions=[1, 2], vocab=graph.vocab)
    df = result.to_dataframe()
    assert list(df.columns) == ["example", "layer", "pos", "target", "token", "rank", "rr", "prob"]
    assert len(df) == len(p) * (len(bridge.blocks) + 1) * 2
    assert sorted(df["pos"].unique()) == [1, 2]
    row = df[(df.example == 3) & (df.layer == 2) & (df.pos == 2)].iloc[0]
    assert row["token"] == graph.vocab.decode([int(p.clean_answer[3])])[0]
    assert row["rank"] == int(result.rank[3, 2, 1]) and row["prob"] == pytest.approx(float(result.prob[3, 2, 1]))


def test_dataset_targets_come_from_the_graph(graph):
    examples = graph.examples("train_inferred")[:10]
    ids = example_targets(graph, examples, "bridge")
    assert graph.vocab.decode(ids.tolist()) == [ex.provenance["bridges"][0] for ex in examples]
    r2 = example_targets(graph, examples, "r2")
    assert graph.vocab.decode(r2.tolist()) == [ex.input_tokens[2] for ex in examples]
    for ex, b in zip(examples, graph.vocab.decode(ids.tolist())):
        assert graph.tail(ex.input_tokens[0], ex.input_tokens[1]) == b


def test_bridge_entity_lens_on_a_model_or_a_bridge(graph, bridge):
    from_bridge = bridge_entity_lens(bridge, graph, n=20)
    lenses = dataset_lens(bridge, graph, ("bridge", "r2", "answer"), n=20)
    assert from_bridge.rank.shape == (20, len(bridge.blocks) + 1, 3)
    assert torch.equal(lenses["bridge"].rank, from_bridge.rank)
    assert set(lenses) == {"bridge", "r2", "answer"}


def test_comparison_targets(comparison_graph):
    examples = comparison_graph.examples("train_inferred")[:5]
    v1 = comparison_graph.vocab.decode(example_targets(comparison_graph, examples, "v1").tolist())
    assert v1 == [f"<{comparison_graph.value(ex.input_tokens[2], ex.input_tokens[0])}>" for ex in examples]


def test_lens_over_every_checkpoint_of_a_run(tmp_path, graph):
    config = RunConfig(
        name="lens-test",
        data=TINY_GRAPH,
        model=TINY_MODEL,
        train=TrainConfig(
            max_steps=4,
            batch_size=64,
            lr=1e-3,
            warmup_steps=0,
            eval_every=2,
            eval_size=64,
            checkpoint_every=2,
            checkpoint_dense_until=4,
            device="cpu",
            tensorboard=False,
            progress=False,
            stop_after_grok=False,
        ),
    )
    train(config, tmp_path / "run", dataset=graph)
    curves = lens_over_checkpoints(tmp_path / "run", "bridge", n=16)
    checkpoints = list_checkpoints(tmp_path / "run")
    assert len(checkpoints) >= 2 and curves.mrr.shape == (len(checkpoints), TINY_MODEL.n_layers + 1, 3)
    for i, ckpt in enumerate(checkpoints):
        run = load_checkpoint(ckpt, device="cpu")
        assert curves.steps[i] == run.step
        assert_close(curves.mrr[i], bridge_entity_lens(run.model, run.dataset, n=16).mrr, rtol=0, atol=0)
    df = curves.to_dataframe()
    assert list(df.columns) == ["step", "layer", "pos", "target", "mrr"] and len(df) == curves.mrr.numel()
    # training moved the weights: the curves of the first and last checkpoint differ
    assert (curves.mrr[0] - curves.mrr[-1]).abs().max() > 0


def test_khop_targets_follow_the_chain(one_line):
    ds = generate(CompositionConfig(n_entities=40, n_relations=10, out_degree=3, n_hops=3, phi=2.0, probe_size=60))
    examples = ds.examples("train_inferred")[:10]
    b1, b2, r3 = (ds.vocab.decode(example_targets(ds, examples, t).tolist()) for t in ("bridge", "bridge2", "r3"))
    for ex, first, second, rel in zip(examples, b1, b2, r3):
        h, r1, r2, last = ex.input_tokens
        assert first == ds.tail(h, r1) and second == ds.tail(first, r2) and ds.tail(second, last) == ex.answer
        assert rel == last
    with pytest.raises(InterventionError) as err:
        example_targets(ds, examples, "r4")
    assert "for a 3-hop composition dataset; choose from answer, bridge, bridge2, h, r1, r2, r3" in one_line(err.value)


def test_complex_targets_read_the_query(one_line):
    ds = generate(ComplexConfig(n_entities=250, n_attributes=6, n_hard_per_label=5, probe_size=50))
    for split in ("test_id", "test_ood"):  # ID queries and the hard OOD ones
        examples = ds.examples(split)[:10]
        v2 = ds.vocab.decode(example_targets(ds, examples, "v2").tolist())
        e1 = ds.vocab.decode(example_targets(ds, examples, "e1").tolist())
        assert v2 == [f"<{ds.value(ex.input_tokens[4], ex.input_tokens[0])}>" for ex in examples]
        assert e1 == [ex.input_tokens[2] for ex in examples]
