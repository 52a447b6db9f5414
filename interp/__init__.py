"""grokscope: train transformers that grok on synthetic knowledge graphs, then open them up.

Sub-packages
------------
``interp.data``     synthetic knowledge graphs (composition, k-hop, comparison, complex) and
                    the paper's JSON layout.
``interp.models``   hooked GPT-2 models (TransformerLens 4 ``TransformerBridge``), with
                    optional cross-layer parameter sharing; the ``Bridge`` protocol.
``interp.runs``     run folders: load a checkpoint, iterate a run's checkpoints, its metrics.
``interp.train``    the trainer and the run configs and presets.
``interp.intervene`` the intervention engine every analysis runs on; ``lens``, ``patching``,
                    ``tracing``, ``attribution``, ``counterfactuals`` and ``features`` use it.

Dimension names
---------------
Every tensor annotation in grokscope uses these jaxtyping dimension names:

``batch``       examples in a batch
``pos``         token positions (``seq`` is never used)
``layer``       transformer blocks (``n_layers``), or ``n_layers + 1`` for "after embedding" too
``head_index``  attention heads
``d_model``     residual stream width
``d_head``      per-head width
``d_mlp``       MLP hidden width
``d_vocab``     vocabulary size
``d_in``        a dictionary's input width (the hooked activation's, flattened)
``d_sae``       dictionary width (features of a sparse dictionary)
``feature``     features of a dictionary, when a subset of them is indexed
``row``         rows of a flat activation set (one per example and position)
"""

__version__ = "0.1.0"
