"""Node importance from causal tracing: which (layer, position, component) a task depends on.

Each node (the residual stream after ``l`` blocks, a layer's attention or MLP output, one
head's output, at one position) is patched from the corrupt run into the clean run, one
at a time, with :func:`interp.patching.activation_patch` ("noising", the paper's causal
tracing). The importance is the share of the clean-to-corrupt gap that corrupting the
node alone causes,

    importance = (m(clean) - m(node corrupted)) / (m(clean) - m(corrupt)),

so 1 means the node carries everything the corruption changes, 0 nothing; with
``metric="top1_change"`` it is instead the paper's top-1 change rate. Unlike edge scores
this needs a forward per node and example, but it is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.graph import CircuitError
from circuits.tasks import Task
from interp.intervene import as_bridge
from interp.metrics import baseline_metric, top1, top1_change
from interp.models.protocol import HookedModel
from interp.patching import activation_patch

NODE_FAMILIES = ("resid", "attn_out", "mlp_out", "z")


@dataclass
class NodeImportance:
    """Importance of every node, per hook family (``layer pos``; ``layer pos head_index`` for heads)."""

    scores: dict[str, Tensor]
    positions: list[str]
    metric: str

    def __getitem__(self, family: str) -> Tensor:
        return self.scores[family]

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy rows: family, layer, pos, position, head, score."""
        rows = []
        for fam, t in self.scores.items():
            for idx in torch.ones_like(t, dtype=torch.bool).nonzero().tolist():
                layer, pos = idx[0], idx[1]
                head = idx[2] if t.ndim == 3 else None
                rows.append(
                    {
                        "family": fam,
                        "layer": layer,
                        "pos": pos,
                        "position": self.positions[pos],
                        "head": head,
                        "score": float(t[tuple(idx)]),
                    }
                )
        return pd.DataFrame(rows, columns=["family", "layer", "pos", "position", "head", "score"])


def node_importance(
    model: HookedModel,
    task: Task,
    families: Sequence[str] = NODE_FAMILIES,
    *,
    metric: Literal["logit_diff", "top1_change"] = "logit_diff",
    max_rows: int = 2048,
) -> NodeImportance:
    """Importance of every node of ``families`` for ``task`` (see the module docstring).

    ``resid`` has ``n_layers + 1`` states (after 0 .. n_layers blocks, as the logit lens).
    """
    bridge = as_bridge(model)
    pos = task.answer_pos
    if metric == "logit_diff":
        fn = task.metric()
        # the unpatched metrics, computed as the sweep computes its own: a node that cannot change
        # anything scores exactly 0
        clean, corrupt = (
            float(baseline_metric(bridge, t, fn, answer_pos=pos).double().mean()) for t in (task.clean, task.corrupt)
        )
        if clean == corrupt:
            raise CircuitError("the clean and corrupt prompts give the same metric; nothing to trace")

        def norm(x: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
            return (clean - x.double()) / (clean - corrupt)
    elif metric == "top1_change":
        fn = top1_change(top1(bridge, task.clean, pos))

        def norm(x: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
            return x.double()
    else:
        raise CircuitError(f"unknown metric {metric!r}; choose logit_diff or top1_change")
    scores = {  # per example, averaged here in float64 as the clean and corrupt metrics are
        fam: norm(
            activation_patch(
                bridge, task.clean, task.corrupt, fn, fam, answer_pos=pos, max_rows=max_rows, per_example=True
            )
            .double()
            .mean(-1)
        )
        for fam in families
    }
    return NodeImportance(scores, list(task.positions), metric)
