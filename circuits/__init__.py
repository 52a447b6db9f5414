"""circuits: find the circuit a grokked transformer uses, check it, and show it.

Given a model and a task (clean prompts against corrupt ones), the package answers, in
increasing order of detail:

* which nodes (layer, position, component) the task depends on: causal tracing,
  :func:`node_importance`;
* which edges (writer -> reader at one position) carry it: edge attribution patching,
  :func:`edge_attribution` (EAP and EAP-IG), checked against exact :func:`edge_patch`;
* which small subgraph does the task alone: :func:`find_circuit` prunes the edges to a
  :class:`CircuitGraph` (JSON round trip), :func:`evaluate_circuit` measures its
  faithfulness and completeness under mean, resample or corrupt ablation;
* where the intermediate answer lives (the bridge entity of a two-hop query; the two
  attribute values of a comparison): :func:`locate_bridge`, :func:`locate_values`, with
  the interchange test;
* how the circuit forms over training: :func:`circuit_formation`;
* and shows it all in one offline HTML page: :func:`write_report`; the views, apart from
  circuit finding, are the subpackage :mod:`circuits.views` (its renderers display inline in
  notebooks).

Everything runs on grokscope's intervention engine (:mod:`interp.intervene`) and its
patching sweep; nothing re-implements a forward pass.

Dimension names: those of :mod:`interp` (``batch``, ``pos``, ``layer``, ``head_index``,
``d_model`` ...) and ``writer`` / ``reader`` (components that write into / read from the
residual stream at one position, in :class:`ModelGraph` order), ``edge`` (edges, as
``pos writer reader`` index triples), ``step`` (checkpoints).
"""

from circuits.ablation import (
    ABLATIONS,
    CircuitEval,
    CircuitRun,
    EdgeAblation,
    Faithfulness,
    ablation_reference,
    circuit_interventions,
    circuit_logits,
    evaluate_circuit,
    faithfulness_curve,
)
from circuits.discover import Handoff, Mover, circuit_shape, find_circuit, handoff, layer_split_mass
from circuits.edges import EdgeScores, edge_attribution, edge_hooks, edge_patch, writer_outputs
from circuits.formation import circuit_formation, key_states, state_strengths
from circuits.graph import CircuitError, CircuitGraph, Edge, ModelGraph, Node, connected, prune
from circuits.localize import (
    InterchangePairs,
    Localization,
    bridge_pairs,
    interchange,
    interchange_pairs,
    localize,
    locate,
    locate_bridge,
    locate_values,
    predicts,
    value_pairs,
)
from circuits.nodes import NodeImportance, node_importance
from circuits.tasks import (
    Task,
    comparison_task,
    composition_task,
    dataset_task,
    task_from_counterfactuals,
    task_from_tokens,
)
from circuits.views.report import build_report, write_report
from circuits.views.sections import (
    attention_figures,
    circuit_figures,
    formation_figures,
    grokking_curves,
    lens_figures,
    localization_figures,
    tracing_figures,
)

__all__ = [
    "ABLATIONS",
    "CircuitError",
    "CircuitEval",
    "CircuitGraph",
    "CircuitRun",
    "Edge",
    "Handoff",
    "EdgeAblation",
    "EdgeScores",
    "Faithfulness",
    "InterchangePairs",
    "Localization",
    "ModelGraph",
    "Mover",
    "Node",
    "NodeImportance",
    "Task",
    "ablation_reference",
    "attention_figures",
    "bridge_pairs",
    "build_report",
    "circuit_figures",
    "circuit_formation",
    "circuit_interventions",
    "circuit_logits",
    "circuit_shape",
    "comparison_task",
    "composition_task",
    "connected",
    "dataset_task",
    "edge_attribution",
    "edge_hooks",
    "edge_patch",
    "evaluate_circuit",
    "faithfulness_curve",
    "find_circuit",
    "formation_figures",
    "grokking_curves",
    "handoff",
    "interchange",
    "interchange_pairs",
    "locate",
    "key_states",
    "layer_split_mass",
    "lens_figures",
    "localization_figures",
    "locate_bridge",
    "locate_values",
    "localize",
    "node_importance",
    "predicts",
    "prune",
    "state_strengths",
    "task_from_counterfactuals",
    "tracing_figures",
    "task_from_tokens",
    "value_pairs",
    "write_report",
    "writer_outputs",
]
