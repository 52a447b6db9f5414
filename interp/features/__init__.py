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
:mod:`~interp.features.dictionary` (TopK, BatchTopK, JumpReLU), :mod:`~interp.features.train`
(the training loop), :mod:`~interp.features.metrics` (L0, FVU, dead features, accuracy and
loss recovered by splicing through the intervention engine), :mod:`~interp.features.io`
(safetensors + JSON, model fingerprints).

Dimension names, beside the package's (see :mod:`interp`):

``row``      one activation: a (prompt, position) pair, flattened
``d_in``     a dictionary's input width (``d_model`` for the residual stream; ``head_index *
             d_head`` for ``attn.hook_z``; ``d_mlp`` for ``mlp.hook_post``)
``d_sae``    a dictionary's width (its number of features)
``feature``  an index into the ``d_sae`` features
"""

from interp.features.activations import Activations, PromptSet, check_site, collect_activations, prompt_set
from interp.features.config import (
    ARCHITECTURES,
    DictionaryConfig,
    DictionaryFormatError,
    DictionaryMismatchError,
    EmptyPromptSetError,
    FeatureError,
)
from interp.features.dictionary import SparseDictionary
from interp.features.io import check_compatible, load_dictionary, model_fingerprint, save_dictionary, site_width
from interp.features.metrics import DictionaryMetrics, evaluate_dictionary, reconstruction_metrics, splice_metrics
from interp.features.train import TrainingResult, train_dictionary, train_on_model, train_on_run

__all__ = [
    "ARCHITECTURES",
    "Activations",
    "DictionaryConfig",
    "DictionaryFormatError",
    "DictionaryMetrics",
    "DictionaryMismatchError",
    "EmptyPromptSetError",
    "FeatureError",
    "PromptSet",
    "SparseDictionary",
    "TrainingResult",
    "check_compatible",
    "check_site",
    "collect_activations",
    "evaluate_dictionary",
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
]
