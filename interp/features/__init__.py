"""Features of a model: sparse dictionaries (sparse autoencoders) at any hook point.

A sparse dictionary rewrites an activation ``x`` as a sparse, non-negative combination of
``d_sae`` learned unit directions (the decoder rows) plus a bias, ``x ≈ f(x) @ W_dec + b_dec``,
with few features active per input. When the features are interpretable, each active one
says something the model represents at that point (here, perhaps, "the bridge entity is
e17"). The conventions follow SAELens v6 (which cannot be installed beside TransformerLens 4),
so configs, files and metrics read the same in both:

    from interp.features import DictionaryConfig, train_on_run, evaluate_dictionary, save_dictionary

    cfg = DictionaryConfig("blocks.1.hook_resid_post", architecture="batchtopk", k=16, expansion_factor=8)
    result, acts, run = train_on_run(RUN_DIR, cfg)
    metrics = evaluate_dictionary(result.dictionary, run.model, run.dataset)   # l0, fvu, ...
    save_dictionary(result.dictionary, OUT)        # OUT/cfg.json + OUT/sae_weights.safetensors
    sae = load_dictionary(OUT, run.model)          # one-line error if it is another model's

Modules: :mod:`~interp.features.config` (the config and the errors),
:mod:`~interp.features.activations` (prompt sets and activation collection),
:mod:`~interp.features.dictionary` (the family's interface, :class:`SparseDictionary`),
:mod:`~interp.features.architectures` (TopK, BatchTopK, JumpReLU), :mod:`~interp.features.train`
(the one training loop, for dictionaries and transcoders), :mod:`~interp.features.metrics` (L0, FVU, dead features, accuracy and
loss recovered by splicing through the intervention engine), :mod:`~interp.features.io`
(safetensors + JSON, model fingerprints), :mod:`~interp.features.dashboard` (feature dashboards:
top activations, logits, histograms, the task variable a feature matches; built on
:mod:`~interp.features.encoded`, :mod:`~interp.features.logit_effects` and
:mod:`~interp.features.ground_truth`).

Dimension names, beside the package's (see :mod:`interp`):

``row``      one activation: a (prompt, position) pair, flattened
``d_in``     a dictionary's input width (``d_model`` for the residual stream; ``head_index *
             d_head`` for ``attn.hook_z``; ``d_mlp`` for ``mlp.hook_post``)
``d_sae``    a dictionary's width (its number of features)
``feature``  an index into the ``d_sae`` features
"""

from interp.features.activations import Activations, PromptSet, check_site, collect_activations, prompt_set
from interp.features.architectures import BatchTopKDictionary, JumpReLUDictionary, TopKDictionary
from interp.features.attribution_graph import AttributionGraph, AttributionGraphError, attribution_graph, prompt_tokens
from interp.features.clt import CrossLayerTranscoder, load_clt, save_clt
from interp.features.config import (
    ARCHITECTURES,
    DictionaryConfig,
    DictionaryFormatError,
    DictionaryMismatchError,
    EmptyPromptSetError,
    FeatureError,
)
from interp.features.das import DAS, DASResult, das_pairs, interchange_accuracy, train_das
from interp.features.das_runs import DASPoint, boundless_das, das_curve, das_over_checkpoints, full_interchange
from interp.features.dashboard import Dashboard, FeatureDashboard, dashboard_data
from interp.features.dictionary import SparseDictionary
from interp.features.encoded import feature_activations
from interp.features.graph_json import (
    GraphFormatError,
    graph_to_json,
    load_graph_json,
    write_graph_files,
    write_graph_json,
)
from interp.features.graph_prune import PruneResult, graph_scores, node_influence, prune_graph
from interp.features.ground_truth import variable_matches
from interp.features.io import check_compatible, load_dictionary, model_fingerprint, save_dictionary, site_width
from interp.features.logit_effects import feature_logits
from interp.features.metrics import DictionaryMetrics, evaluate_dictionary, reconstruction_metrics, splice_metrics
from interp.features.probing import (
    ProbeResult,
    SingleFeatures,
    best_single_features,
    k_sparse_probe,
    probe_site,
    split_rows,
)
from interp.features.replacement import Replacement
from interp.features.steering import SteeringResult, add_direction, set_features, set_subspace, steer, steer_variable
from interp.features.train import TrainingResult, fit, train_dictionary, train_on_model, train_on_run
from interp.features.transcoder import (
    BatchTopKTranscoder,
    JumpReLUTranscoder,
    TopKTranscoder,
    Transcoder,
    TranscoderConfig,
    check_transcoder,
    load_transcoder,
    load_transcoders,
    save_transcoder,
    save_transcoders,
)
from interp.features.transcoder_train import (
    TranscoderMetrics,
    TranscoderSplice,
    evaluate_replacement,
    evaluate_transcoder,
    splice_interventions,
    train_cross_layer_on_model,
    train_transcoder,
    train_transcoders_on_model,
    train_transcoders_on_run,
)

__all__ = [
    "ARCHITECTURES",
    "Activations",
    "BatchTopKDictionary",
    "DictionaryConfig",
    "DictionaryFormatError",
    "DictionaryMetrics",
    "DictionaryMismatchError",
    "EmptyPromptSetError",
    "FeatureError",
    "JumpReLUDictionary",
    "PromptSet",
    "SparseDictionary",
    "TopKDictionary",
    "TrainingResult",
    "check_compatible",
    "check_site",
    "collect_activations",
    "evaluate_dictionary",
    "fit",
    "load_dictionary",
    "model_fingerprint",
    "prompt_set",
    "reconstruction_metrics",
    "save_dictionary",
    "site_width",
    "splice_metrics",
    "train_dictionary",
    "train_on_model",
    "train_on_run",
    # feature dashboards
    "Dashboard",
    "FeatureDashboard",
    "dashboard_data",
    "feature_activations",
    "feature_logits",
    "variable_matches",
    # transcoders and attribution graphs
    "AttributionGraph",
    "AttributionGraphError",
    "BatchTopKTranscoder",
    "CrossLayerTranscoder",
    "GraphFormatError",
    "JumpReLUTranscoder",
    "PruneResult",
    "Replacement",
    "TopKTranscoder",
    "Transcoder",
    "TranscoderConfig",
    "TranscoderMetrics",
    "TranscoderSplice",
    "attribution_graph",
    "check_transcoder",
    "evaluate_replacement",
    "evaluate_transcoder",
    "graph_scores",
    "graph_to_json",
    "load_clt",
    "load_graph_json",
    "load_transcoder",
    "load_transcoders",
    "node_influence",
    "prompt_tokens",
    "prune_graph",
    "save_clt",
    "save_transcoder",
    "save_transcoders",
    "splice_interventions",
    "train_cross_layer_on_model",
    "train_transcoder",
    "train_transcoders_on_model",
    "train_transcoders_on_run",
    "write_graph_files",
    "write_graph_json",
    # probing, DAS and steering
    "DAS",
    "DASPoint",
    "DASResult",
    "ProbeResult",
    "SingleFeatures",
    "SteeringResult",
    "add_direction",
    "best_single_features",
    "boundless_das",
    "das_curve",
    "das_over_checkpoints",
    "das_pairs",
    "full_interchange",
    "interchange_accuracy",
    "k_sparse_probe",
    "probe_site",
    "set_features",
    "set_subspace",
    "split_rows",
    "steer",
    "steer_variable",
    "train_das",
]
