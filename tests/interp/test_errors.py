"""Bad input gives one clear line that says what to fix."""

from __future__ import annotations

import pytest
import torch

from interp.attribution import attribution_patch
from interp.data import UnknownTokenError
from interp.errors import GrokscopeError
from interp.intervene import (
    LayerOutOfRangeError,
    PositionOutOfRangeError,
    ShapeMismatchError,
    UnknownHookError,
    VocabMismatchError,
    restore,
    run_with_interventions,
)
from interp.lens import bridge_entity_lens, example_targets, logit_lens
from interp.patching import InterventionError, activation_patch, answer_prob, named_metric, patch_sites
from interp.sites import Site
from interp.tracing import trace_counterfactual, trace_noise

from ..typecheck import unchecked

CASES = {
    # name: (error, text the message must contain)
    "layer past the last": (LayerOutOfRangeError, "layer 3 is out of range; choose one of 0..2"),
    "negative layer": (LayerOutOfRangeError, "layer -1 is out of range; choose one of 0..3"),
    "site layer": (LayerOutOfRangeError, "layer 7 is out of range"),
    "start layer": (LayerOutOfRangeError, "start layer 9 is out of range"),
    "site before its layer": (InterventionError, "site blocks.0.hook_resid_pre is not in block 1 or later"),
    "position": (PositionOutOfRangeError, "position 3 is out of range; the prompts have 3 positions (0..2)"),
    "answer position": (PositionOutOfRangeError, "answer position 5 is out of range"),
    "lens position": (PositionOutOfRangeError, "position 4 is out of range"),
    "noise position": (PositionOutOfRangeError, "position 3 is out of range"),
    "token id": (UnknownTokenError, "tokens[1, 2] = 10000 is outside the model's vocabulary (ids 0..56)"),
    "source token id": (UnknownTokenError, "source[1, 2] = 10000"),
    "lens target id": (UnknownTokenError, "targets[0] = 999"),
    "token string": (UnknownTokenError, "unknown token '<e_999>'"),
    "lengths differ": (ShapeMismatchError, "must have the same shape; got (12, 2) and (12, 3)"),
    "batches differ": (ShapeMismatchError, "must have the same shape; got (12, 3) and (5, 3)"),
    "float tokens": (ShapeMismatchError, "must be an integer tensor of shape (batch, pos)"),
    "vocab (lens)": (VocabMismatchError, "the model's vocabulary has 57 tokens but the dataset's has 59"),
    "vocab (tracing)": (VocabMismatchError, "the model's vocabulary has 57 tokens"),
    "hook": (UnknownHookError, "unknown hook 'blocks.0.hook_nope'"),
    "family": (InterventionError, "unknown hook family 'resid_pree'"),
    "metric": (InterventionError, "unknown metric 'accuracy'"),
    "lens target": (InterventionError, "unknown lens target 'v1' for a composition dataset"),
}


def _call(name, bridge, graph, comparison_graph, p):
    metric = answer_prob(p.clean_answer)
    big = p.clean.clone()
    big[1, 2] = 10_000
    bad_hook = "blocks.0.hook_nope"
    calls = {
        "layer past the last": lambda: activation_patch(bridge, p.corrupt, p.clean, metric, layers=[3]),
        "negative layer": lambda: activation_patch(bridge, p.corrupt, p.clean, metric, "resid", layers=[-1]),
        "site layer": lambda: patch_sites(bridge, p.corrupt, p.clean, [Site(7, ("blocks.0.hook_resid_pre",))], metric),
        "site before its layer": lambda: patch_sites(
            bridge, p.corrupt, p.clean, [Site(1, ("blocks.0.hook_resid_pre",))], metric
        ),
        "start layer": lambda: run_with_interventions(bridge, torch.zeros(2, 3, 32), start_at_layer=9),
        "position": lambda: activation_patch(bridge, p.corrupt, p.clean, metric, positions=[3]),
        "answer position": lambda: activation_patch(bridge, p.corrupt, p.clean, metric, answer_pos=5),
        "lens position": lambda: logit_lens(bridge, p.clean, p.clean_answer, positions=[4]),
        "noise position": lambda: trace_noise(bridge, p.clean, p.clean_answer, [3]),
        "token id": lambda: activation_patch(bridge, big, p.clean, metric),
        "source token id": lambda: activation_patch(bridge, p.clean, big, metric),
        "lens target id": lambda: logit_lens(bridge, p.clean, torch.full((len(p),), 999)),
        "token string": lambda: graph.vocab.id("<e_999>"),
        "lengths differ": lambda: activation_patch(bridge, p.corrupt, p.clean[:, :2], metric),
        "batches differ": lambda: attribution_patch(bridge, p.corrupt[:5], p.clean, metric),
        "float tokens": lambda: activation_patch(bridge, p.corrupt.float(), p.clean, metric),
        "vocab (lens)": lambda: bridge_entity_lens(bridge, comparison_graph),
        "vocab (tracing)": lambda: trace_counterfactual(bridge, comparison_graph),
        "hook": lambda: run_with_interventions(bridge, p.clean, [restore({bad_hook: torch.zeros(())}, bad_hook)]),
        "family": lambda: activation_patch(bridge, p.corrupt, p.clean, metric, "resid_pree"),
        "metric": lambda: named_metric("accuracy", clean_answer=p.clean_answer),
        "lens target": lambda: example_targets(graph, graph.examples("train_inferred")[:2], "v1"),
    }
    return calls[name]()


ILL_TYPED = {"float tokens"}
"""Cases that break the annotations themselves: they run without the runtime type checks."""


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, bridge, graph, comparison_graph, pairs, one_line):
    kind, text = CASES[name]
    with pytest.raises(kind) as err, unchecked(name in ILL_TYPED):
        _call(name, bridge, graph, comparison_graph, pairs["h"])
    assert isinstance(err.value, GrokscopeError)
    assert text in one_line(err.value)
