"""Running circuits alone: the ends of the normalisation are exact, and agree with TransformerLens."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from circuits.ablation import ABLATIONS, ablation_reference, circuit_logits, evaluate_circuit, faithfulness_curve
from circuits.edges import writer_outputs
from circuits.graph import CircuitError, CircuitGraph, ModelGraph, Node
from interp.intervene import generator_from

from ..typecheck import unchecked

TOL = {"rtol": 1e-9, "atol": 1e-9}


def _random_keep(space: ModelGraph, p: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(space.allowed.shape, generator=gen) < p) & space.allowed


def _last(bridge, tokens):
    with torch.no_grad():
        return bridge(tokens)[:, -1]


def test_ablating_to_the_run_itself_changes_nothing(bridge64, task):
    space = ModelGraph.of(bridge64, task.n_pos)
    own = writer_outputs(bridge64, task.clean)
    logits = circuit_logits(bridge64, task.clean, _random_keep(space, 0.3), own)
    assert_close(logits, _last(bridge64, task.clean), **TOL)


def test_the_whole_graph_is_the_model(bridge64, task):
    space = ModelGraph.of(bridge64, task.n_pos)
    ref = ablation_reference(bridge64, task.clean, "corrupt", corrupt=task.corrupt)
    # split q/k/v inputs change the float rounding only
    assert_close(circuit_logits(bridge64, task.clean, space.allowed, ref), _last(bridge64, task.clean), **TOL)


def test_the_empty_circuit_is_the_reference_run(bridge64, task):
    space = ModelGraph.of(bridge64, task.n_pos)
    empty = torch.zeros_like(space.allowed)
    # corrupt ablation: every reader sees the corrupt run, so the run is the corrupt run
    ref = ablation_reference(bridge64, task.clean, "corrupt", corrupt=task.corrupt)
    assert_close(circuit_logits(bridge64, task.clean, empty, ref), _last(bridge64, task.corrupt), **TOL)
    # resample ablation: the run on the drawn prompts (the engine's permutation, seed 3)
    ref = ablation_reference(bridge64, task.clean, "resample", seed=3)
    perm = torch.randperm(len(task), generator=generator_from(3))
    assert_close(circuit_logits(bridge64, task.clean, empty, ref), _last(bridge64, task.clean[perm]), **TOL)
    # mean ablation: every prompt sees the same inputs, so every row is the same
    ref = ablation_reference(bridge64, task.clean, "mean")
    out = circuit_logits(bridge64, task.clean, empty, ref)
    assert_close(out, out[:1].expand_as(out), **TOL)


def test_circuit_run_matches_transformer_lens_faithfulness(bridge64, task):
    from transformer_lens.tools.analysis import faithfulness
    from transformer_lens.tools.analysis.attribution_patching import Node as TLNode

    space = ModelGraph.of(bridge64, task.n_pos)
    keep = _random_keep(space, 0.3, seed=1)
    circuit = [
        (_to_tl(TLNode, e.src), _to_tl(TLNode, e.dst, e.channel, space.n_layers))
        for e in (space.edge(*map(int, i)) for i in keep.nonzero())
    ]
    # TransformerLens also reads logits at earlier positions; keep those edges (they are not in our graph)
    circuit += [
        (_to_tl(TLNode, space.writer(p, w)), TLNode("logits", p, space.n_layers - 1))
        for p in range(task.n_pos - 1)
        for w in range(space.n_writers)
    ]
    ref = ablation_reference(bridge64, task.clean, "corrupt", corrupt=task.corrupt)
    ours = circuit_logits(bridge64, task.clean, keep, ref)
    clean, corrupt = _last(bridge64, task.clean), _last(bridge64, task.corrupt)
    for i in range(4):
        a, b = int(task.clean_answer[i]), int(task.corrupt_answer[i])
        res = faithfulness(
            bridge64,
            task.clean[i : i + 1],
            task.corrupt[i : i + 1],
            lambda lg, a=a, b=b: lg[0, -1, a] - lg[0, -1, b],
            circuit,
        )
        m = lambda lg, i=i, a=a, b=b: float(lg[i, a] - lg[i, b])  # noqa: E731
        assert (m(ours) - m(corrupt)) / (m(clean) - m(corrupt)) == pytest.approx(res.recovered, rel=1e-9, abs=1e-9)


def _to_tl(TLNode, n: Node, channel: str | None = None, n_layers: int = 0):  # noqa: N803
    if channel is None:
        kind = {"embed": "embed", "head": "attn_head_out", "mlp": "mlp_out"}[n.kind]
        return TLNode(kind, n.pos) if kind == "embed" else TLNode(kind, n.pos, n.layer, n.head)
    if channel == "logits":
        return TLNode("logits", n.pos, n_layers - 1)
    if channel == "mlp":
        return TLNode("mlp_in", n.pos, n.layer)
    return TLNode(f"{channel}_input", n.pos, n.layer, n.head)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_faithfulness_and_completeness_are_normalised(bridge64, task, ablation):
    space = ModelGraph.of(bridge64, task.n_pos)
    full = CircuitGraph.full(space, task.positions)
    empty = CircuitGraph.empty(space, task.positions)
    ev_full = evaluate_circuit(bridge64, task, full, ablation)
    ev_empty = evaluate_circuit(bridge64, task, empty, ablation)
    assert ev_full.faithfulness == pytest.approx(1.0, abs=1e-12)
    assert ev_full.completeness == pytest.approx(1.0, abs=1e-12)
    assert ev_empty.faithfulness == pytest.approx(0.0, abs=1e-12)
    assert ev_empty.completeness == pytest.approx(0.0, abs=1e-12)
    assert ev_full.model_metric == ev_full.circuit_metric
    assert ev_full.model_accuracy == ev_full.circuit_accuracy


def test_completeness_is_what_the_complement_cannot_do(bridge64, task):
    space = ModelGraph.of(bridge64, task.n_pos)
    keep = _random_keep(space, 0.4, seed=2)
    circuit = CircuitGraph(
        space.n_layers,
        space.n_heads,
        task.positions,
        [task.n_pos - 1],
        {space.edge(*map(int, i)): 0.0 for i in keep.nonzero()},
    )
    for ablation in ("mean", "resample"):
        ev = evaluate_circuit(bridge64, task, circuit, ablation)
        rest = evaluate_circuit(bridge64, task, circuit.complement(), ablation)
        assert ev.completeness == pytest.approx(1.0 - rest.faithfulness, abs=1e-9)
        assert ev.empty_metric == pytest.approx(rest.empty_metric, abs=1e-12)
        assert not ev.faithfulness == pytest.approx(1.0, abs=1e-3)  # a random 40% of the edges is not the model


def test_faithfulness_curve_ends(bridge64, task):
    space = ModelGraph.of(bridge64, task.n_pos)
    order = space.allowed.nonzero()
    ends = faithfulness_curve(bridge64, task, order, [0, space.n_edges], "resample")
    assert ends == pytest.approx([0.0, 1.0], abs=1e-12)


def test_errors_are_one_line(bridge, task, one_line):
    with pytest.raises(CircuitError) as err, unchecked():  # an unknown Literal option
        ablation_reference(bridge, task.clean, "median")
    assert "unknown ablation" in one_line(err.value)
    with pytest.raises(CircuitError) as err:
        ablation_reference(bridge, task.clean, "corrupt")
    one_line(err.value)
    with pytest.raises(CircuitError) as err:
        ablation_reference(bridge, task.clean, "resample", reference=task.clean[:3])
    one_line(err.value)
    wrong = CircuitGraph.empty(ModelGraph(2, 4, task.n_pos, (task.n_pos - 1,)))
    with pytest.raises(CircuitError) as err:
        evaluate_circuit(bridge, task, wrong)
    assert "circuit is for 2 layers" in one_line(err.value)


def test_circuit_runs_compose_with_other_engine_interventions(bridge64, task):
    # ablating edges is one more list of engine interventions: with every edge kept and the head
    # zero-ablated, the run is the engine's zero ablation of that head
    from interp.intervene import run_with_interventions, zero_ablation

    space = ModelGraph.of(bridge64, task.n_pos)
    head_2 = torch.zeros(len(task), task.n_pos, 4, dtype=torch.bool)
    head_2[:, :, 2] = True
    head_off = zero_ablation("blocks.1.attn.hook_z", head_2)
    ref = ablation_reference(bridge64, task.clean, "mean")
    keep = space.allowed.clone()
    keep[:, 0, -1] = False  # and the embedding -> logits edges ablated to their mean
    ours = circuit_logits(bridge64, task.clean, keep, ref, interventions=[head_off])
    with torch.no_grad():
        engine = run_with_interventions(bridge64, task.clean, [head_off], answer_pos=task.answer_pos)
    direct = ref[0, -1, 0] - writer_outputs(bridge64, task.clean)[:, -1, 0]  # what the ablated edge changes
    expected = bridge64.unembed(bridge64.ln_final(_final_resid(bridge64, task, head_off) + direct))
    assert_close(ours, expected, **TOL)
    assert not torch.allclose(ours, engine)


def _final_resid(bridge, task, intervention):
    from interp.intervene import cache_activations

    hook = f"blocks.{len(bridge.blocks) - 1}.hook_resid_post"
    with torch.no_grad():
        _, acts = cache_activations(bridge, task.clean, [hook], [intervention])
    return acts[hook][:, -1]
