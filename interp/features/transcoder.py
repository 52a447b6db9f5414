"""Transcoders: a sparse, wider stand-in for one MLP, read from its input and written to its output.

A (per-layer) transcoder reads the MLP's input ``x`` (the ``ln2``-normalised residual,
``blocks.{L}.ln2.hook_normalized``) and predicts the MLP's output ``y``
(``blocks.{L}.hook_mlp_out``) as a sparse sum of decoder rows::

    pre = x @ W_enc + b_enc                 # (..., d_sae); no input centring (SAELens's Transcoder)
    f   = sparsify(pre)                     # TopK, BatchTopK or JumpReLU, as the dictionaries
    ŷ   = f @ W_dec + b_dec + x @ W_skip    # (..., d_out); the skip term (Paulo et al. 2025) is optional

Because the features' effects on the residual stream are their decoder rows, a model whose
MLPs are replaced by transcoders (plus an error term) is linear in the feature activations
once attention patterns and LayerNorm scales are frozen: the basis of attribution graphs
(:mod:`interp.features.attribution_graph`). Names follow SAELens's ``Transcoder``
(``hook_name`` / ``hook_name_out``, ``d_in`` / ``d_out``); a set of transcoders, one per
layer, is saved as circuit-tracer's ``transcoder_set`` (``feature_input_hook`` /
``feature_output_hook``), one SAELens folder per layer::

    from interp.features import TranscoderConfig, train_transcoders_on_run, evaluate_transcoder
    from interp.features import save_transcoders, load_transcoders

    results, run = train_transcoders_on_run(RUN_DIR, TranscoderConfig.for_layer(0, k=16, steps=500))
    tcs = {layer: r.dictionary for layer, r in results.items()}     # every layer by default
    metrics = evaluate_transcoder(tcs[1], run.model, run.dataset)   # fvu (of the MLP out), l0, ...
    save_transcoders(tcs, OUT)            # OUT/transcoders.json + OUT/layer_{L}/{cfg.json, sae_weights.safetensors}
    tcs = load_transcoders(OUT, run.model)  # one-line error for another model, layer or hook

``cross_layer=True`` gives a cross-layer transcoder (:mod:`interp.features.clt`). Training and
scoring live in :mod:`interp.features.transcoder_train`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.configs import check_range
from interp.errors import ConfigError
from interp.features.architectures import BatchTopKDictionary, JumpReLUDictionary, TopKDictionary
from interp.features.config import DictionaryConfig, DictionaryFormatError, DictionaryMismatchError, FeatureError
from interp.features.dictionary import SparseDictionary
from interp.features.io import FORMAT_VERSION, load_folder, model_fingerprint, save_dictionary, site_width
from interp.features.resample import TranscoderTerms
from interp.intervene import as_bridge
from interp.io import atomic_write_json, read_json
from interp.models.protocol import HookedModel

INPUT_HOOK = "ln2.hook_normalized"
"""Default feature input hook inside a block (the MLP's input; ``ln2.hook_out`` and ``mlp.hook_in`` are accepted too)."""
OUTPUT_HOOK = "hook_mlp_out"
INPUT_HOOKS = (INPUT_HOOK, "ln2.hook_out", "mlp.hook_in")
FORMAT = "grokscope-transcoder"
SET_FORMAT = "grokscope-transcoder-set"
SET_FILE = "transcoders.json"
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
LEGACY: dict[str, Any] = {
    "skip": False,
    "resample_every": None,
    "resample_until": 0.5,
    "cross_layer": False,
    "n_layers": None,
}
"""Transcoder fields added after format 1, and what a ``cfg.json`` without them means."""


def _split_hook(hook: str) -> tuple[int, str] | None:
    match = _BLOCK.match(hook)
    return None if match is None else (int(match.group(1)), match.group(2))


# ------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TranscoderConfig(DictionaryConfig):
    """A :class:`DictionaryConfig` whose output is another hook: ``hook_name`` in, ``hook_name_out`` out.

    ``d_out`` is read from the activations when None. Build one per layer with
    :meth:`for_layer`; :func:`~interp.features.transcoder_train.train_transcoders_on_run`
    copies a config to every layer with :meth:`at_layer`. With ``normalize_activations`` on,
    inputs and outputs are each scaled to mean norm ``sqrt(width)`` for training and the
    scales are folded into the weights afterwards (decoder rows then all have norm
    ``scale_in / scale_out``).
    """

    hook_name_out: str = ""
    d_out: int | None = None
    skip: bool = True
    """Add a linear skip term ``x @ W_skip`` (zero at first) to the prediction (Paulo et al. 2025): it takes the
    MLP's linear part, so the features are free for the rest. A saved config without the field reads as False."""
    dead_feature_window: int = 50
    """A feature that has not fired for this many steps counts as dead (and is resampled)."""
    resample_every: int | None = 50
    """Every this many steps (in the first ``resample_until`` of them) re-initialise the dead features from the
    worst-predicted rows of the batch (:mod:`interp.features.resample`); None: never."""
    resample_until: float = 0.5
    """The share of the training steps during which dead features are resampled."""
    cross_layer: bool = False
    """A cross-layer transcoder (:mod:`interp.features.clt`): features read one layer and write every later MLP."""
    n_layers: int | None = None
    """The layers a cross-layer transcoder covers, ``0..n_layers-1`` (None: the model's, when trained)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.hook_name_out, str) or not self.hook_name_out:
            raise ConfigError("hook_name_out must be a hook name such as blocks.1.hook_mlp_out (the MLP's output)")
        if self.d_out is not None and (isinstance(self.d_out, bool) or self.d_out < 1):
            raise ConfigError(f"d_out = {self.d_out!r} must be an integer >= 1")
        if self.n_layers is not None and (isinstance(self.n_layers, bool) or self.n_layers < 1):
            raise ConfigError(f"n_layers = {self.n_layers!r} must be an integer >= 1")
        if self.resample_every is not None:
            check_range("resample_every", self.resample_every, low=1)
        check_range("resample_until", self.resample_until, low=0, high=1)
        if self.n_layers is not None and not self.cross_layer:
            raise ConfigError("n_layers is for cross-layer transcoders; set cross_layer=True or leave n_layers unset")

    @classmethod
    def for_layer(cls, layer: int, **fields: Any) -> TranscoderConfig:
        """A transcoder of block ``layer``'s MLP: ``blocks.{layer}.ln2.hook_normalized`` -> ``blocks.{layer}.hook_mlp_out``."""
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ConfigError(f"layer = {layer!r} must be a block index >= 0")
        return cls(hook_name=f"blocks.{layer}.{INPUT_HOOK}", hook_name_out=f"blocks.{layer}.{OUTPUT_HOOK}", **fields)

    def at_layer(self, layer: int) -> TranscoderConfig:
        """This config moved to block ``layer`` (same hooks inside the block, widths unset)."""
        inner_in = (_split_hook(self.hook_name) or (0, INPUT_HOOK))[1]
        inner_out = (_split_hook(self.hook_name_out) or (0, OUTPUT_HOOK))[1]
        return dataclasses.replace(
            self,
            hook_name=f"blocks.{layer}.{inner_in}",
            hook_name_out=f"blocks.{layer}.{inner_out}",
            d_in=None,
            d_out=None,
            d_sae=None if self.d_in is not None else self.d_sae,
        )

    @property
    def layer(self) -> int | None:
        """The block of ``hook_name_out`` (None for a hook outside the blocks)."""
        split = _split_hook(self.hook_name_out)
        return None if split is None else split[0]

    def resolved_io(self, d_in: int, d_out: int) -> TranscoderConfig:
        """This config with ``d_in``, ``d_sae`` and ``d_out`` set for these widths."""
        if self.d_out is not None and self.d_out != d_out:
            raise DictionaryMismatchError(
                f"the config says d_out = {self.d_out} but the activations at {self.hook_name_out} have width {d_out}"
            )
        return dataclasses.replace(self.resolved(d_in), d_out=d_out)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain mapping; the fields of ``LEGACY`` only where they differ from it."""
        out = super().to_dict()
        for name, legacy in LEGACY.items():
            if out[name] == legacy:
                out.pop(name)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscoderConfig:
        """Build from a plain mapping (``cfg.json``), with one-line errors on unknown or mistyped fields; a field of
        ``LEGACY`` that is missing (a file written before it) takes its value there."""
        return super().from_dict({**LEGACY, **data})  # type: ignore[return-value]


# ----------------------------------------------------------------------------- module
class Transcoder(TranscoderTerms, SparseDictionary, family=True):
    """A transcoder with SAELens's parameter names: ``W_enc`` ``d_in d_sae``, ``W_dec`` ``d_sae d_out``,
    ``b_enc`` ``d_sae``, ``b_dec`` ``d_out``, ``threshold`` ``d_sae`` (BatchTopK / JumpReLU at inference).

    The family's transcoders: ``Transcoder(cfg)`` gives :class:`TopKTranscoder`,
    :class:`BatchTopKTranscoder` or :class:`JumpReLUTranscoder`, the dictionaries' sparsity
    rules on this encoder (no input centring) and output site.
    """

    kind = "transcoder"
    file_format = FORMAT
    config_class = TranscoderConfig
    width_names = "d_in, d_sae and d_out"
    cfg: TranscoderConfig

    def __new__(cls, cfg: DictionaryConfig | None = None, *args: Any, **kwargs: Any) -> Transcoder:
        """``Transcoder(cfg)`` builds the member of ``cfg.architecture``; a cross-layer one with ``cfg.cross_layer``."""
        if cls is Transcoder and getattr(cfg, "cross_layer", False):
            from interp.features.clt import CrossLayerTranscoder

            cls = CrossLayerTranscoder
        return super().__new__(cls, cfg, *args, **kwargs)  # type: ignore[return-value]

    def __init__(self, cfg: TranscoderConfig, *, meta: dict[str, Any] | None = None) -> None:
        if not isinstance(cfg, TranscoderConfig) or cfg.d_out is None:
            raise FeatureError(
                "a transcoder needs a TranscoderConfig with d_out; build it with cfg.resolved_io(d_in, d_out)"
            )
        super().__init__(cfg, meta=meta)
        shape = self.tensor_shapes(cfg).get("W_skip")
        self.W_skip = None if shape is None else nn.Parameter(torch.zeros(shape))

    @classmethod
    def tensor_shapes(cls, cfg: DictionaryConfig) -> dict[str, tuple[int, ...]]:
        """The dictionaries' tensors, and ``W_skip`` (``d_in d_out``) for a skip transcoder."""
        shapes = super().tensor_shapes(cfg)
        if getattr(cfg, "skip", False):
            shapes["W_skip"] = (shapes["W_enc"][0], shapes["W_dec"][1])
        return shapes

    @classmethod
    def output_width(cls, cfg: DictionaryConfig) -> int | None:
        """``d_out``: the width of the hook the transcoder writes (the MLP output's)."""
        return getattr(cfg, "d_out", None)

    @property
    def hook_name_out(self) -> str:
        """The hook point whose value the transcoder predicts (the MLP output)."""
        return self.cfg.hook_name_out

    @property
    def layer(self) -> int | None:
        """The block of ``hook_name_out`` (None for a hook outside the blocks)."""
        return self.cfg.layer

    def pre_acts(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """The encoder's affine map (no input centring)."""
        return x @ self.W_enc + self.b_enc

    def extra_repr(self) -> str:
        """Architecture, hooks and sizes, for the module's ``repr``."""
        return (
            f"{self.architecture}, {self.hook_name!r} -> {self.hook_name_out!r}, d_in={self.d_in}, "
            f"d_sae={self.d_sae}, d_out={self.d_out}, k={self.cfg.k}, skip={self.W_skip is not None}"
        )


class TopKTranscoder(Transcoder, TopKDictionary, architecture="topk"):
    """A transcoder with TopK's rule (:class:`~interp.features.architectures.TopKDictionary`)."""


class BatchTopKTranscoder(Transcoder, BatchTopKDictionary, architecture="batchtopk"):
    """A transcoder with BatchTopK's rule (:class:`~interp.features.architectures.BatchTopKDictionary`)."""


class JumpReLUTranscoder(Transcoder, JumpReLUDictionary, architecture="jumprelu"):
    """A transcoder with JumpReLU's rule (:class:`~interp.features.architectures.JumpReLUDictionary`)."""


# -------------------------------------------------------------------------- checking
def check_transcoder(tc: Transcoder, model: HookedModel, *, check_weights: bool = True) -> None:
    """Refuse, in one line, a transcoder whose hooks, widths or model do not fit ``model``."""
    bridge = as_bridge(model)
    split_in, split_out = _split_hook(tc.hook_name), _split_hook(tc.hook_name_out)
    if (
        split_out is None
        or split_out[1] != OUTPUT_HOOK
        or split_in is None
        or split_in[0] != split_out[0]
        or split_in[1] not in INPUT_HOOKS
    ):
        raise DictionaryMismatchError(
            f"a transcoder must read blocks.L.{{{', '.join(INPUT_HOOKS)}}} and write blocks.L.{OUTPUT_HOOK} of one block; "
            f"this one maps {tc.hook_name} -> {tc.hook_name_out}"
        )
    for hook, width in ((tc.hook_name, tc.d_in), (tc.hook_name_out, tc.d_out)):
        here = site_width(bridge, hook)
        if here != width:
            raise DictionaryMismatchError(
                f"the transcoder expects {width}-wide activations at {hook} but this model's are {here} wide; "
                "it was trained on another model"
            )
    stored = tc.meta.get("model_fingerprint")
    if check_weights and stored is not None:
        here_fp = model_fingerprint(bridge)
        if here_fp != stored:
            raise DictionaryMismatchError(
                f"the transcoder of layer {tc.layer} was trained on model {stored}, not on this one ({here_fp}); "
                "load it for its own model, or pass check_weights=False"
            )


# ---------------------------------------------------------------------------- saving
def save_transcoder(tc: Transcoder, path: str | Path) -> Path:
    """Write ``tc`` into the folder ``path``: ``cfg.json`` (SAELens fields, ``metadata``) and the weights."""
    return save_dictionary(tc, path)


def save_transcoders(transcoders: dict[int, Transcoder], path: str | Path) -> Path:
    """Write one transcoder per layer: ``path/layer_{L}/`` each, and ``path/transcoders.json`` naming them; a CLT
    (every layer mapped to it) as circuit-tracer lays one out (:func:`interp.features.clt.save_clt`)."""
    folder = Path(path)
    if not transcoders:
        raise FeatureError("no transcoders to save; give a mapping layer -> Transcoder")
    first = next(iter(transcoders.values()))
    if getattr(first.cfg, "cross_layer", False):
        from interp.features.clt import save_clt_set

        return save_clt_set(transcoders, folder)
    for layer, tc in sorted(transcoders.items()):
        save_transcoder(tc, folder / f"layer_{layer}")
    first = next(iter(transcoders.values()))
    index = {
        "format": SET_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_kind": "transcoder_set",
        "feature_input_hook": (_split_hook(first.hook_name) or (0, first.hook_name))[1],
        "feature_output_hook": OUTPUT_HOOK,
        "layers": sorted(transcoders),
        "model_fingerprint": first.meta.get("model_fingerprint"),
    }
    atomic_write_json(folder / SET_FILE, index, indent=2)
    return folder


# --------------------------------------------------------------------------- loading
def load_transcoder(
    path: str | Path,
    model: HookedModel | None = None,
    *,
    check_weights: bool = True,
    device: torch.device | str | None = None,
) -> Transcoder:
    """Read a transcoder folder; with ``model``, check that it fits (:func:`check_transcoder`)."""
    tc = load_folder(path, Transcoder, device=device)
    if model is not None:
        check_transcoder(tc, model, check_weights=check_weights)
    return tc


def load_transcoders(
    path: str | Path,
    model: HookedModel | None = None,
    *,
    check_weights: bool = True,
    device: torch.device | str | None = None,
) -> dict[int, Transcoder]:
    """Read a folder :func:`save_transcoders` wrote: layer -> transcoder, each checked against ``model`` (a CLT: every
    layer -> the one CLT)."""
    folder = Path(path)
    index_file = folder / SET_FILE
    if not index_file.is_file():
        raise DictionaryFormatError(f"{index_file} is missing; give the folder save_transcoders wrote")
    index = read_json(index_file, DictionaryFormatError, what="transcoder set index", expect=dict)
    if index.get("format") != SET_FORMAT or not isinstance(index.get("layers"), list):
        raise DictionaryFormatError(
            f"{index_file}: not a grokscope transcoder set (format {SET_FORMAT!r} with a layers list)"
        )
    if index.get("model_kind") == "cross_layer_transcoder":
        from interp.features.clt import load_clt_set

        return load_clt_set(folder, model, check_weights=check_weights, device=device)  # type: ignore[return-value]
    out = {}
    for layer in index["layers"]:
        tc = load_transcoder(folder / f"layer_{layer}", model, check_weights=check_weights, device=device)
        if tc.layer != layer:
            raise DictionaryFormatError(
                f"{folder / f'layer_{layer}'} holds the transcoder of layer {tc.layer}, not {layer}"
            )
        out[int(layer)] = tc
    return out


__all__ = [
    "INPUT_HOOK",
    "INPUT_HOOKS",
    "OUTPUT_HOOK",
    "BatchTopKTranscoder",
    "JumpReLUTranscoder",
    "TopKTranscoder",
    "Transcoder",
    "TranscoderConfig",
    "check_transcoder",
    "load_transcoder",
    "load_transcoders",
    "save_transcoder",
    "save_transcoders",
]
