"""The intervention engine: composable edits of activations, applied through TransformerLens hooks.

Every causal analysis in grokscope is one or more forward passes in which some activations
are read or replaced. This package is the single mechanism behind all of them; the logit
lens, activation patching, causal tracing and attribution patching are thin uses of it.

An :class:`Intervention` names a TransformerLens hook point (``blocks.3.hook_resid_pre``,
``blocks.1.attn.hook_z``, ...) and says what to do with the activation there:

* :class:`Read`      store the activation (optionally keeping its autograd graph);
* :class:`Patch`     replace it, at the positions (and heads) a mask selects, by a value:
                     an activation of another run (patching, :func:`restore`), zeros
                     (:func:`zero_ablation`), a mean (:func:`mean_ablation`) or the
                     activation of other examples (:func:`resample_ablation`);
* :class:`AddNoise`  add a fixed noise tensor (:func:`gaussian_noise`, ROME's corruption);
* :class:`GradLeaf`  start the autograd graph (with ``Read(detach=False)``, the pieces of
                     :func:`activation_gradients`, the one place gradients with respect to
                     activations are taken: attribution patching, edge attribution).

A list of interventions runs in a single forward (:func:`run_with_interventions`); several
on one hook apply in list order, so "add noise, then restore one position" is two
interventions. Every random choice is drawn when the intervention is built, from a seed
or a ``torch.Generator``: running the same interventions twice gives the same result.

Because the model is causal, the residual stream entering block ``L`` carries everything
blocks ``L..`` need. :func:`run_with_interventions` can therefore start at block ``L`` from
a cached residual (``start_at_layer=L``) and run only the blocks from ``L`` on; patching
sweeps use this to skip the blocks below each patched layer, and they stack many patched
copies of a batch into one forward with :meth:`Intervention.take`.

The engine is three modules: :mod:`~interp.intervene.checks` (input checks, one-line errors,
:func:`as_bridge`), :mod:`~interp.intervene.pieces` (the interventions and their
constructors) and :mod:`~interp.intervene.run` (the forward, and the forward + backward).

Masks (``where``) are boolean tensors over ``batch pos`` or ``batch pos head_index``; they
broadcast over the trailing feature axes of the activation. ``None`` means "everywhere".
"""

from interp.intervene.checks import (
    InterventionError,
    LayerOutOfRangeError,
    PositionOutOfRangeError,
    ShapeMismatchError,
    UnknownHookError,
    VocabMismatchError,
    answer_positions,
    as_bridge,
    check_hook,
    check_in_vocab,
    check_layer,
    check_position,
    check_same_shape,
    check_tokens,
    check_vocab,
    n_layers,
)
from interp.intervene.pieces import (
    IN_PLACE_HOOKS,
    AddNoise,
    GradLeaf,
    Intervention,
    Patch,
    Read,
    Where,
    gaussian_noise,
    generator_from,
    mean_ablation,
    position_mask,
    resample_ablation,
    restore,
    zero_ablation,
)
from interp.intervene.run import activation_gradients, cache_activations, run_with_interventions

__all__ = [
    "IN_PLACE_HOOKS",
    "AddNoise",
    "GradLeaf",
    "Intervention",
    "InterventionError",
    "LayerOutOfRangeError",
    "Patch",
    "PositionOutOfRangeError",
    "Read",
    "ShapeMismatchError",
    "UnknownHookError",
    "VocabMismatchError",
    "Where",
    "activation_gradients",
    "answer_positions",
    "as_bridge",
    "cache_activations",
    "check_hook",
    "check_in_vocab",
    "check_layer",
    "check_position",
    "check_same_shape",
    "check_tokens",
    "check_vocab",
    "gaussian_noise",
    "generator_from",
    "mean_ablation",
    "n_layers",
    "position_mask",
    "resample_ablation",
    "restore",
    "run_with_interventions",
    "zero_ablation",
]
