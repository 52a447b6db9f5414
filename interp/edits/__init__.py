"""Knowledge edits: rewrite one atomic fact in a trained model and measure what follows.

A grokked composition model answers two-hop queries ``(h, r1, r2)`` by chaining atomic
facts it stores in its weights. Editing one stored fact ``(h, r) -> t`` to ``t'`` asks
whether the model's knowledge is *used* as a single store: a model that re-reads the
same memory for both hops should answer the two-hop facts built on the edited fact with
the new value (propagation), and leave every other fact alone (locality).

* :mod:`~interp.edits.facts`: the edit (:func:`make_edit`, one-line errors) and which
  two-hop facts depend on it (and which are its controls), from the dataset's typed graph;
* :mod:`~interp.edits.methods`: fine-tuning on the edited fact (optionally with a retain
  KL term) and ROME's rank-one MLP edit, each on a copy of the model;
* :mod:`~interp.edits.score`: edit accuracy, propagation per hop, locality, the second-hop
  control; a suite over several sampled edits.
"""

from interp.edits.facts import (
    DependentFact,
    EditError,
    FactEdit,
    composition_graph,
    control_facts,
    dependent_facts,
    independent_facts,
    make_edit,
)
from interp.edits.methods import finetune_edit, key_covariance, prompt_batch, rome_edit
from interp.edits.score import EditMethod, EditScore, default_methods, edit_suite, predictions, sample_edits, score_edit

__all__ = [
    "DependentFact",
    "EditError",
    "EditMethod",
    "EditScore",
    "FactEdit",
    "composition_graph",
    "control_facts",
    "default_methods",
    "dependent_facts",
    "edit_suite",
    "finetune_edit",
    "independent_facts",
    "key_covariance",
    "make_edit",
    "predictions",
    "prompt_batch",
    "rome_edit",
    "sample_edits",
    "score_edit",
]
