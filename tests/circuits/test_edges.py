"""Edge attribution patching against exact edge patching, TransformerLens, and integrated-gradient completeness.

EAP estimates ``f(1)`` of ``f(t) = m(edge patched with t * delta) - m(run)`` by ``f'(0)``.
Whatever the model, that must equal the central difference ``(f(t) - f(-t)) / 2t`` of
exact edge patching up to O(t^2): in float64 with ``t = 1e-4`` far below the tolerance,
while a wrong gradient (a reader whose gradient includes the residual skip path, a sign,
a scale) is off by O(1).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from circuits.edges import edge_attribution, edge_patch
from circuits.graph import CircuitError, Node
from interp.attribution import attribution_patch
from interp.patching import logit_diff

from ..typecheck import unchecked


@pytest.fixture(scope="module")
def pair(task):
    """Corrupt prompts as the run, clean as the source (TransformerLens's denoising direction)."""
    return task.corrupt, task.clean, logit_diff(task.clean_answer, task.corrupt_answer)


def test_eap_is_the_derivative_of_exact_edge_patching(bridge64, pair):
    run, src, metric = pair
    t = 1e-4
    plus = edge_patch(bridge64, run, src, metric, scale=t).scores
    minus = edge_patch(bridge64, run, src, metric, scale=-t).scores
    derivative = (plus - minus) / (2 * t)
    eap = edge_attribution(bridge64, run, src, metric, method="eap")
    scale = float(derivative.abs().max())
    assert scale > 1e-2
    assert bool((eap.scores[~eap.space.allowed] == 0).all())
    assert_close(eap.scores, derivative, rtol=1e-6, atol=1e-6 * scale)


def test_eap_equals_transformer_lens_edge_attribution(bridge64, task):
    from transformer_lens.tools.analysis import EdgeAttributionConfig
    from transformer_lens.tools.analysis import attribution_patch as tl_attribution_patch

    run, src = task.corrupt[:4], task.clean[:4]
    answers = list(zip(task.clean_answer[:4].tolist(), task.corrupt_answer[:4].tolist()))
    ours = edge_attribution(
        bridge64, run, src, logit_diff(task.clean_answer[:4], task.corrupt_answer[:4]), method="eap"
    )
    space = ours.space
    totals: dict = {}
    for i, (a, b) in enumerate(answers):  # TransformerLens scores one pair at a time, metric on its logits
        res = tl_attribution_patch(
            bridge64,
            src[i : i + 1],
            run[i : i + 1],
            lambda lg, a=a, b=b: lg[0, -1, a] - lg[0, -1, b],
            EdgeAttributionConfig(granularity="edge"),
        )
        for edge, s in res.edge_scores.items():
            totals[edge] = totals.get(edge, 0.0) + s / len(answers)
    compared = 0
    for (u, v), s in totals.items():
        src_node = _from_tl(u)[0]
        dst_node, channel = _from_tl(v)
        if channel == "logits" and dst_node.pos not in space.logit_positions:
            assert abs(s) < 1e-12  # TransformerLens reads logits everywhere; the metric only at the end
            continue
        idx = (src_node.pos, space.writer_index(src_node), space.reader_index(dst_node, channel))
        assert abs(float(ours.scores[idx]) - s) <= 1e-10 * (1 + abs(s)), (u, v)
        compared += 1
    assert compared == space.n_edges
    assert float(ours.scores.abs().max()) > 1e-2


def _from_tl(n):
    if n.kind == "embed":
        return Node("embed", n.position), None
    if n.kind == "attn_head_out":
        return Node("head", n.position, n.layer, n.head), None
    if n.kind == "mlp_out":
        return Node("mlp", n.position, n.layer), None
    if n.kind in ("q_input", "k_input", "v_input"):
        return Node("head", n.position, n.layer, n.head), n.kind[0]
    if n.kind == "mlp_in":
        return Node("mlp", n.position, n.layer), "mlp"
    return Node("logits", n.position), "logits"


def test_eap_ig_is_complete_on_the_embedding_edges(bridge64, pair):
    # The embedding feeds every reader at its position, so its edges sum to integrated gradients
    # of the input embedding along the straight path: m(source) - m(run) as the steps grow.
    run, src, metric = pair
    errors = []
    for steps in (4, 16, 64):
        ig = edge_attribution(bridge64, run, src, metric, method="eap-ig", ig_steps=steps)
        target = ig.source_metric - ig.run_metric
        errors.append(abs(float(ig.scores[:, 0, :].sum()) - target))
    assert abs(target) > 1e-2
    assert errors[2] < 1e-3 * abs(target)
    assert errors[0] > errors[1] > errors[2]  # the midpoint rule converges


def test_edge_scores_sum_to_node_attribution(bridge64, pair):
    # a head's output reaches the metric only through the readers after it, so its edges add up
    # to attribution patching of the head's output (interp.attribution, family "result")
    run, src, metric = pair
    eap = edge_attribution(bridge64, run, src, metric, method="eap")
    node = attribution_patch(bridge64, run, src, metric, ["result", "mlp_out"])
    assert_close(eap.head_scores(), node["result"].to(eap.scores), rtol=1e-8, atol=1e-10)
    H = bridge64.cfg.n_heads
    mlp = eap.writer_scores()[:, [1 + L * (H + 1) + H for L in range(len(bridge64.blocks))]].T
    assert_close(mlp, node["mlp_out"].to(mlp), rtol=1e-8, atol=1e-10)


def test_identical_runs_attribute_nothing(bridge, task):
    scores = edge_attribution(bridge, task.clean, task.clean, task.metric(), ig_steps=2)
    assert_close(scores.scores, torch.zeros_like(scores.scores), rtol=0, atol=0)
    exact = edge_patch(bridge, task.clean[:2], task.clean[:2], task.metric())
    assert_close(exact.scores, torch.zeros_like(exact.scores), rtol=0, atol=0)


def test_batching_does_not_change_the_scores(bridge64, pair):
    run, src, metric = pair
    whole = edge_attribution(bridge64, run, src, metric, ig_steps=3)
    chunked = edge_attribution(bridge64, run, src, metric, ig_steps=3, batch_size=4)
    assert_close(chunked.scores, whole.scores, rtol=1e-10, atol=1e-12)


def test_top_edges_and_pruning(bridge, task):
    scores = edge_attribution(bridge, task.clean, task.corrupt, task.metric(), method="eap", positions=task.positions)
    top = scores.top(10)
    assert [abs(s) for _, s in top] == sorted((abs(s) for _, s in top), reverse=True)
    assert abs(top[0][1]) == pytest.approx(float(scores.scores.abs().max()))
    circuit = scores.prune(top_n=10)
    assert set(circuit.edges) <= {e for e, _ in top}
    assert circuit.positions == ["h", "r1", "r2"]
    assert circuit.meta["method"] == "eap"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"method": "acdc"}, "unknown method"), ({"ig_steps": 0}, "ig_steps"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_arguments_are_one_line(bridge, task, one_line, kwargs, match):
    with pytest.raises(CircuitError) as err, unchecked("method" in kwargs):  # an unknown Literal option
        edge_attribution(bridge, task.clean, task.corrupt, task.metric(), **kwargs)
    assert match in one_line(err.value)
