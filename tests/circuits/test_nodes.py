"""Node importance from tracing: exact at the ends, zero where causality forbids an effect."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from circuits.nodes import node_importance
from circuits.tasks import composition_task


def test_importance_is_one_at_the_swapped_embedding_and_the_final_state(bridge64, graph):
    task = composition_task(graph, swaps=("h",), n=8)
    imp = node_importance(bridge64, task, ("resid",))
    resid = imp["resid"]  # (n_layers + 1) states x 3 positions
    n = len(bridge64.blocks)
    assert resid.shape == (n + 1, 3)
    # pasting the corrupt embedding at h, or the corrupt final residual at the answer, is the corrupt run
    assert float(resid[0, 0]) == pytest.approx(1.0, abs=1e-9)
    assert float(resid[n, 2]) == pytest.approx(1.0, abs=1e-9)
    # the embeddings of r1 and r2 are the same in both prompts
    assert_close(resid[0, 1:], torch.zeros(2, dtype=resid.dtype), rtol=0, atol=0)


def test_nothing_before_the_swapped_token_matters(bridge, graph):
    task = composition_task(graph, swaps=("r2",), n=8)
    imp = node_importance(bridge, task, ("resid", "attn_out", "mlp_out", "z"))
    for fam, t in imp.scores.items():
        assert_close(t[:, :2], torch.zeros_like(t[:, :2]), rtol=0, atol=0, msg=fam)
    assert float(imp["resid"][0, 2]) == pytest.approx(1.0, abs=1e-5)


def test_top1_change_rates_and_dataframe(bridge, task):
    imp = node_importance(bridge, task, ("resid", "z"), metric="top1_change")
    for t in imp.scores.values():
        assert bool(((t >= 0) & (t <= 1)).all())
    df = imp.to_dataframe()
    assert len(df) == sum(t.numel() for t in imp.scores.values())
    assert set(df["position"]) == {"h", "r1", "r2"}
    assert df[df["family"] == "z"]["head"].notna().all()
