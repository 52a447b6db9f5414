"""Cross-layer transcoders (CLT; Ameisen et al. 2025, circuit-tracer): a feature reads one layer, writes to every later MLP.

A feature of source layer ``L`` reads the MLP input of ``L`` (``blocks.{L}.ln2.hook_normalized``)
and writes its own decoder row into the MLP output of every layer ``L' >= L``; the prediction of
MLP output ``L'`` sums the features of layers ``0..L'``::

    f_L  = sparsify(x_L @ W_enc[L] + b_enc[L])                          # (..., d_sae / n)
    ŷ_L' = sum_{L <= L'} f_L @ W_dec[L -> L'] + b_dec[L'] + x_L' @ W_skip[L']

It is a member of the transcoder family, chosen by the config option
``TranscoderConfig(cross_layer=True, n_layers=n)`` and trained by the one loop
(:func:`interp.features.train.fit`) on rows that concatenate every layer's MLP inputs and
outputs: ``d_in``, ``d_sae`` and ``d_out`` are the concatenated widths (``n`` times the
per-layer ones), ``W_enc`` is block-diagonal and ``W_dec`` block upper-triangular (the blocks
outside are zero and stay zero), so the loss is the squared error summed over every output
layer. A decoder row (unit norm) spans all the layers a feature writes to. ``k`` counts
active features per layer, as for per-layer transcoders (``k * n`` per row in all). Inference is
causal: BatchTopK and JumpReLU threshold each feature alone, TopK keeps ``k`` per layer.

Saved as circuit-tracer lays a CLT out (:func:`save_clt`): per layer ``i``,
``W_enc_{i}.safetensors`` (``W_enc_{i}`` ``d_sae/n d_model``, ``b_enc_{i}``, ``b_dec_{i}``,
``threshold_{i}``, and ``W_skip_{i}`` when there is one) and ``W_dec_{i}.safetensors``
(``W_dec_{i}`` ``d_sae/n  n-i  d_model``), beside ``cfg.json`` and ``transcoders.json``
(``model_kind`` ``cross_layer_transcoder``). The feature input hook is the normalised MLP
input here, not circuit-tracer's ``hook_resid_mid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.features.architectures import BatchTopKDictionary, JumpReLUDictionary, TopKDictionary
from interp.features.config import DictionaryConfig, DictionaryFormatError, FeatureError
from interp.features.dictionary import batch_topk_mask, topk_mask
from interp.features.io import (
    CFG_FILE,
    FORMAT_VERSION,
    config_from_saved,
    config_record,
    read_cfg_json,
    read_safetensors,
    write_safetensors,
)
from interp.features.transcoder import OUTPUT_HOOK, SET_FILE, SET_FORMAT, Transcoder, TranscoderConfig
from interp.io import atomic_write_json
from interp.models.protocol import HookedModel


class CrossLayerTranscoder(Transcoder, family=True):
    """A cross-layer transcoder over layers ``0..n_layers-1`` (module docstring); ``Transcoder(cfg)`` with
    ``cfg.cross_layer`` builds the member of ``cfg.architecture``."""

    kind = "cross-layer transcoder"
    file_format = "grokscope-cross-layer-transcoder"

    def __init__(self, cfg: TranscoderConfig, *, meta: dict[str, Any] | None = None) -> None:
        if not getattr(cfg, "cross_layer", False) or cfg.n_layers is None:
            raise FeatureError("a cross-layer transcoder needs a TranscoderConfig with cross_layer=True and n_layers")
        check_cross_layer_config(cfg)
        super().__init__(cfg, meta=meta)
        n, d, f, o = self.n_layers, self.d_layer_in, self.d_layer_sae, self.d_layer_out
        src_in = torch.arange(n * d) // d
        src_f = torch.arange(n * f) // f
        out = torch.arange(n * o) // o
        self.register_buffer("enc_mask", (src_in[:, None] == src_f[None, :]).float(), persistent=False)
        self.register_buffer("dec_mask", (src_f[:, None] <= out[None, :]).float(), persistent=False)
        self.register_buffer("skip_mask", (src_in[:, None] == out[None, :]).float(), persistent=False)

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """The layers the CLT covers, ``0..n_layers-1``."""
        return int(self.cfg.n_layers)  # type: ignore[arg-type]

    @property
    def d_layer_in(self) -> int:
        """One layer's MLP input width."""
        return self.d_in // self.n_layers

    @property
    def d_layer_sae(self) -> int:
        """Features per source layer."""
        return self.d_sae // self.n_layers

    @property
    def d_layer_out(self) -> int:
        """One layer's MLP output width."""
        return self.d_out // self.n_layers

    # -- per-layer views ------------------------------------------------------------------
    def encoder(self, layer: int) -> tuple[Float[Tensor, "d_in d_sae"], Float[Tensor, " d_sae"], Tensor]:
        """``(W_enc, b_enc, threshold)`` of source ``layer``'s features (views)."""
        d, f = self.d_layer_in, self.d_layer_sae
        cols = slice(layer * f, (layer + 1) * f)
        return self.W_enc[layer * d : (layer + 1) * d, cols], self.b_enc[cols], self.threshold[cols]

    def decoder(self, layer: int, out_layer: int) -> Float[Tensor, "d_sae d_out"]:
        """The rows that source ``layer``'s features write into MLP output ``out_layer`` (a view)."""
        f, o = self.d_layer_sae, self.d_layer_out
        return self.W_dec[layer * f : (layer + 1) * f, out_layer * o : (out_layer + 1) * o]

    def layer_b_dec(self, out_layer: int) -> Float[Tensor, " d_out"]:
        """``b_dec`` of MLP output ``out_layer``."""
        o = self.d_layer_out
        return self.b_dec[out_layer * o : (out_layer + 1) * o]

    def layer_skip(self, out_layer: int) -> Float[Tensor, "d_in d_out"] | None:
        """``W_skip`` from MLP input ``out_layer`` to its output (None without a skip term)."""
        if self.W_skip is None:
            return None
        d, o = self.d_layer_in, self.d_layer_out
        return self.W_skip[out_layer * d : (out_layer + 1) * d, out_layer * o : (out_layer + 1) * o]

    def layer_pre_acts(self, layer: int, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Pre-activations of source ``layer``'s features from that layer's MLP input."""
        w, b, _ = self.encoder(layer)
        return x @ w + b

    def layer_encode(self, layer: int, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Activations of source ``layer``'s features (causal: they need no other layer)."""
        pre = self.layer_pre_acts(layer, x)
        if self.architecture == "topk":
            return topk_mask(torch.relu(pre), self.cfg.k)
        return torch.relu(pre) * (pre > self.encoder(layer)[2])

    # -- the family's interface, on concatenated rows -------------------------------------
    def pre_acts(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Every layer's pre-activations from the concatenated MLP inputs (block-diagonal encoder)."""
        d = self.d_layer_in
        return torch.cat([self.layer_pre_acts(L, x[..., L * d : (L + 1) * d]) for L in range(self.n_layers)], -1)

    def sparsify(self, pre: Float[Tensor, "*row d_sae"]) -> Float[Tensor, "*row d_sae"]:
        """TopK: ``k`` per layer; BatchTopK / JumpReLU: each feature against its threshold."""
        if self.architecture == "topk":
            parts = pre.unflatten(-1, (self.n_layers, self.d_layer_sae))
            return topk_mask(torch.relu(parts), self.cfg.k).flatten(-2)
        return super().sparsify(pre)

    def training_sparsify(self, pre: Float[Tensor, "row d_sae"]) -> Float[Tensor, "row d_sae"]:
        """BatchTopK keeps ``k * n_layers * row`` of the batch; the others as at inference (JumpReLU's own rule)."""
        if self.architecture == "batchtopk":
            return batch_topk_mask(torch.relu(pre), self.cfg.k * self.n_layers)
        return self.sparsify(pre) if self.architecture == "topk" else super().training_sparsify(pre)

    def decoder_weights(self) -> Float[Tensor, "d_sae d_out"]:
        """``W_dec`` with every block from a feature to a layer below its own at zero."""
        return self.W_dec * self.dec_mask

    def skip_out(self, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_out"] | float:
        """Each layer's skip term from its own MLP input (0 without one)."""
        return 0.0 if self.W_skip is None else x @ (self.W_skip * self.skip_mask)

    @torch.no_grad()
    def initialize(self, *, b_dec: Float[Tensor, " d_out"] | None = None, seed: int = 0) -> CrossLayerTranscoder:
        """Random unit decoder rows inside the blocks, the encoder their transpose on the diagonal blocks."""
        super().initialize(b_dec=b_dec, seed=seed)
        self.W_dec.mul_(self.dec_mask)
        self.normalize_decoder()
        if self.d_in == self.d_out:
            self.W_enc.copy_(self.W_dec.T)
        self.W_enc.mul_(self.enc_mask)
        self.W_enc.div_(self.W_enc.norm(dim=0, keepdim=True).clamp_min(1e-12))
        return self

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """The family's rule, then no gradient outside the blocks (those weights stay zero)."""
        super().remove_parallel_decoder_grad()
        for name, mask in (("W_enc", self.enc_mask), ("W_dec", self.dec_mask), ("W_skip", self.skip_mask)):
            param = getattr(self, name)
            if param is not None and param.grad is not None:
                param.grad.mul_(mask)

    def extra_repr(self) -> str:
        """Architecture, layers and sizes, for the module's ``repr``."""
        return (
            f"{self.architecture}, layers 0..{self.n_layers - 1}, d_in={self.d_layer_in}, "
            f"d_sae={self.d_layer_sae} per layer, d_out={self.d_layer_out}, k={self.cfg.k} per layer"
        )


class TopKCrossLayerTranscoder(CrossLayerTranscoder, TopKDictionary, architecture="topk"):
    """A CLT keeping the ``k`` largest features of each layer."""


class BatchTopKCrossLayerTranscoder(CrossLayerTranscoder, BatchTopKDictionary, architecture="batchtopk"):
    """A CLT with BatchTopK's rule over all its features (a global threshold at inference)."""


class JumpReLUCrossLayerTranscoder(CrossLayerTranscoder, JumpReLUDictionary, architecture="jumprelu"):
    """A CLT with a learned threshold per feature."""


def check_cross_layer_config(cfg: DictionaryConfig) -> None:
    """Refuse, in one line, a CLT config whose widths do not split evenly over its layers."""
    n = getattr(cfg, "n_layers", None)
    for name in ("d_in", "d_sae", "d_out"):
        width = getattr(cfg, name, None)
        if width is not None and n is not None and width % n:
            raise FeatureError(f"{name} = {width} must be a multiple of n_layers = {n} for a cross-layer transcoder")


# ---------------------------------------------------------------------- saving, loading
def _files(folder: Path, layer: int) -> tuple[Path, Path]:
    return folder / f"W_enc_{layer}.safetensors", folder / f"W_dec_{layer}.safetensors"


def save_clt(clt: CrossLayerTranscoder, path: str | Path) -> Path:
    """Write ``clt`` into the folder ``path``: ``cfg.json`` and circuit-tracer's two files per layer (module
    docstring). :func:`~interp.features.save_transcoders` calls it and adds ``transcoders.json``."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DictionaryFormatError(f"{folder} is a file; give a folder to save the cross-layer transcoder in")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(clt.n_layers):
        w_enc, b_enc, threshold = clt.encoder(i)
        enc = {f"W_enc_{i}": w_enc.T, f"b_enc_{i}": b_enc, f"b_dec_{i}": clt.layer_b_dec(i)}
        if clt.saves_threshold:
            enc[f"threshold_{i}"] = threshold
        skip = clt.layer_skip(i)
        if skip is not None:
            enc[f"W_skip_{i}"] = skip
        dec = torch.stack([clt.decoder(i, out) for out in range(i, clt.n_layers)], 1)
        for file, tensors in zip(_files(folder, i), (enc, {f"W_dec_{i}": dec}), strict=True):
            cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
            write_safetensors(file, cpu, clt.file_format)
    atomic_write_json(folder / CFG_FILE, config_record(clt), indent=2)
    return folder


def load_clt(path: str | Path, *, device: torch.device | str | None = None) -> CrossLayerTranscoder:
    """Read a folder :func:`save_clt` wrote, with one-line errors for missing files or tensors of the wrong shape."""
    folder = Path(path)
    file, data = read_cfg_json(folder, CrossLayerTranscoder.kind)
    if data.get("format") != CrossLayerTranscoder.file_format or data.get("format_version") != FORMAT_VERSION:
        raise DictionaryFormatError(
            f'{file}: not a grokscope cross-layer transcoder config ("format" {CrossLayerTranscoder.file_format!r}, '
            f"format_version {FORMAT_VERSION})"
        )
    cfg, meta = config_from_saved(data, TranscoderConfig, file)
    if not getattr(cfg, "cross_layer", False) or cfg.n_layers is None or cfg.d_in is None or cfg.d_sae is None:
        raise DictionaryFormatError(f"{file}: a saved cross-layer transcoder needs cross_layer, n_layers and widths")
    clt = CrossLayerTranscoder(cfg, meta=meta)
    n, f, d, o = clt.n_layers, clt.d_layer_sae, clt.d_layer_in, clt.d_layer_out
    loaded: dict[str, Tensor] = {}
    for i in range(n):
        for part in _files(folder, i):
            if not part.is_file():
                raise DictionaryFormatError(f"{part} is missing; the cross-layer transcoder folder is incomplete")
            loaded.update(read_safetensors(part))
    want = {f"W_enc_{i}": (f, d) for i in range(n)} | {f"W_dec_{i}": (f, n - i, o) for i in range(n)}
    want |= {
        f"{name}_{i}": (f,)
        for i in range(n)
        for name in ("b_enc", "threshold")
        if clt.saves_threshold or name == "b_enc"
    }
    want |= {f"b_dec_{i}": (o,) for i in range(n)}
    want |= {f"W_skip_{i}": (d, o) for i in range(n) if clt.W_skip is not None}
    got = {k: tuple(v.shape) for k, v in loaded.items()}
    if got != want:
        raise DictionaryFormatError(f"{folder}: tensors {got} do not match the config's {want}")
    clt = clt.to(loaded["W_enc_0"].dtype)
    with torch.no_grad():
        for i in range(n):
            w_enc, b_enc, threshold = clt.encoder(i)
            w_enc.copy_(loaded[f"W_enc_{i}"].T)
            b_enc.copy_(loaded[f"b_enc_{i}"])
            clt.layer_b_dec(i).copy_(loaded[f"b_dec_{i}"])
            if clt.saves_threshold:
                threshold.copy_(loaded[f"threshold_{i}"])
            for j, out in enumerate(range(i, n)):
                clt.decoder(i, out).copy_(loaded[f"W_dec_{i}"][:, j])
            skip = clt.layer_skip(i)
            if skip is not None:
                skip.copy_(loaded[f"W_skip_{i}"])
    clt.eval().requires_grad_(False)
    return clt if device is None else clt.to(device)


def save_clt_set(transcoders: Mapping[int, Transcoder], path: str | Path) -> Path:
    """:func:`save_clt` and ``transcoders.json`` (``model_kind`` ``cross_layer_transcoder``); every layer must map to
    the one CLT (what :func:`~interp.features.save_transcoders` does with a CLT)."""
    clt = next(iter(transcoders.values()))
    if not isinstance(clt, CrossLayerTranscoder) or any(tc is not clt for tc in transcoders.values()):
        raise FeatureError("a cross-layer transcoder is saved alone; map every layer to the one CLT")
    folder = save_clt(clt, path)
    index = {
        "format": SET_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": clt.hook_name.split(".", 2)[-1],
        "feature_output_hook": OUTPUT_HOOK,
        "layers": list(range(clt.n_layers)),
        "model_fingerprint": clt.meta.get("model_fingerprint"),
    }
    atomic_write_json(folder / SET_FILE, index, indent=2)
    return folder


def load_clt_set(
    path: str | Path,
    model: HookedModel | None = None,
    *,
    check_weights: bool = True,
    device: torch.device | str | None = None,
) -> dict[int, CrossLayerTranscoder]:
    """:func:`load_clt`, checked against ``model``, as ``layer -> the CLT`` for every layer it covers."""
    from interp.features.replacement import Replacement

    clt = load_clt(path, device=device)
    if model is not None:
        Replacement({0: clt}).check(model, check_weights=check_weights)
    return dict.fromkeys(range(clt.n_layers), clt)


__all__ = [
    "BatchTopKCrossLayerTranscoder",
    "CrossLayerTranscoder",
    "JumpReLUCrossLayerTranscoder",
    "TopKCrossLayerTranscoder",
    "check_cross_layer_config",
    "load_clt",
    "load_clt_set",
    "save_clt",
    "save_clt_set",
]
