"""Saving and loading dictionaries in SAELens's layout: ``cfg.json`` + ``sae_weights.safetensors``.

A dictionary folder holds

* ``cfg.json``                 the :class:`~interp.features.DictionaryConfig` fields (SAELens
                               names: ``architecture``, ``d_in``, ``d_sae``, ``k``, ``hook_name``,
                               ...), ``format`` / ``format_version``, and ``metadata``: where the
                               dictionary comes from (``model_fingerprint``, ``run_dir``, ``step``);
* ``sae_weights.safetensors``  ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec`` (and ``threshold`` for
                               ``batchtopk`` / ``jumprelu``).

Both are written atomically (temporary file, then rename) and read without pickle. A model
fingerprint is a hash of the model's architecture and of its (analysis-view) weights, so a
dictionary used on another checkpoint or another model is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp.errors import ConfigError
from interp.features.config import DictionaryConfig, DictionaryFormatError, DictionaryMismatchError
from interp.features.dictionary import SparseDictionary
from interp.intervene import as_bridge
from interp.io import atomic_write_json, read_json
from interp.models.protocol import HookedModel

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
FORMAT_VERSION = 1
ARCH_FIELDS = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx")
C = TypeVar("C", bound=DictionaryConfig)
D = TypeVar("D", bound=SparseDictionary)


# -------------------------------------------------------------------------- fingerprint
def model_fingerprint(model: HookedModel) -> str:
    """A short hash of the model's architecture and weights, as the analysis view (the bridge) sees them.

    Weights are hashed in float32, so a float64 copy of a model has its fingerprint.
    """
    bridge = as_bridge(model)
    h = hashlib.sha256()
    arch = {f: getattr(bridge.cfg, f, None) for f in ARCH_FIELDS}
    h.update(json.dumps(arch, sort_keys=True, default=str).encode())
    for name, p in sorted(bridge.named_parameters(), key=lambda item: item[0]):
        h.update(name.encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -------------------------------------------------------------------------------- saving
def write_safetensors(path: Path, tensors: dict[str, Tensor], fmt: str) -> None:
    """Write ``tensors`` to ``path`` atomically (temporary file, fsync, rename), ``fmt`` in the header's metadata."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": fmt})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_dictionary(sae: SparseDictionary, path: str | Path) -> Path:
    """Write ``sae`` (any member of the family) into the folder ``path`` (created if needed): ``cfg.json`` and the
    weights."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DictionaryFormatError(f"{folder} is a file; give a folder to save the {sae.kind} in")
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / WEIGHTS_FILE, {k: v.to("cpu") for k, v in sae.tensors().items()}, sae.file_format)
    atomic_write_json(folder / CFG_FILE, config_record(sae), indent=2)
    return folder


def config_record(sae: Any) -> dict[str, Any]:
    """The ``cfg.json`` of a saved dictionary: format, version, config, dtype and metadata."""
    return {
        "format": sae.file_format,
        "format_version": FORMAT_VERSION,
        **sae.cfg.to_dict(),
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "metadata": dict(sae.meta),
    }


# ------------------------------------------------------------------------------- loading
def read_cfg_json(folder: Path, kind: str) -> tuple[Path, Any]:
    """``folder/cfg.json`` and its parsed JSON; a one-line error when it is missing or not JSON (``kind``: what the
    folder holds)."""
    file = folder / CFG_FILE
    if not file.is_file():
        raise DictionaryFormatError(f"{file} is missing; is {folder} a {kind} folder (cfg.json + {WEIGHTS_FILE})?")
    return file, read_json(file, DictionaryFormatError, what=f"{kind} config", expect=dict)


def config_from_saved(data: dict[str, Any], config_cls: type[C], file: Path) -> tuple[C, Any]:
    """The config and ``metadata`` (not checked) of a saved ``cfg.json`` whose format was checked; a one-line error
    naming ``file`` for fields ``config_cls`` refuses."""
    meta = data.pop("metadata", {})
    for key in ("format", "format_version", "dtype"):
        data.pop(key, None)
    try:
        return config_cls.from_dict(data), meta
    except ConfigError as err:
        raise DictionaryFormatError(f"{file}: {err}") from None


def read_safetensors(file: Path) -> dict[str, Tensor]:
    """The tensors of ``file``, without pickle; a one-line error when it cannot be read."""
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise DictionaryFormatError(f"{file} cannot be read as safetensors ({err})") from None


def fill_weights(module: D, tensors: dict[str, Tensor], device: torch.device | str | None) -> D:
    """``module`` in the dtype of ``tensors["W_enc"]``, with ``tensors`` copied in, in eval mode, frozen, on ``device``."""
    module = module.to(tensors["W_enc"].dtype)
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(value)
    module.eval().requires_grad_(False)
    return module if device is None else module.to(device)


def _read_cfg(folder: Path, family: type[SparseDictionary]) -> tuple[DictionaryConfig, dict[str, Any]]:
    file, data = read_cfg_json(folder, family.kind)
    if data.get("format") != family.file_format:
        raise DictionaryFormatError(
            f'{file}: not a grokscope {family.kind} config ("format" must be {family.file_format!r})'
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise DictionaryFormatError(
            f"{file}: format_version {data.get('format_version')!r}; this grokscope reads {FORMAT_VERSION}"
        )
    cfg, meta = config_from_saved(data, family.config_class, file)
    if not isinstance(meta, dict):
        raise DictionaryFormatError(f'{file}: "metadata" must be a mapping')
    if cfg.d_in is None or cfg.d_sae is None or family.output_width(cfg) is None:
        raise DictionaryFormatError(f"{file}: {family.width_names} must be set in a saved {family.kind}")
    return cfg, meta


def load_folder(path: str | Path, family: type[D] = SparseDictionary, *, device: torch.device | str | None = None) -> D:
    """Read a folder :func:`save_dictionary` wrote of a member of ``family`` (dictionaries, or transcoders), with
    one-line errors for anything not in the schema; its weights are checked against its config before it is built."""
    folder = Path(path)
    if not folder.is_dir():
        raise DictionaryFormatError(f"{folder} is not a folder; give the folder save_{family.kind} wrote")
    cfg, meta = _read_cfg(folder, family)
    file = folder / WEIGHTS_FILE
    if not file.is_file():
        raise DictionaryFormatError(f"{file} is missing; the {family.kind} folder is incomplete")
    tensors = read_safetensors(file)
    expected = family.class_for(cfg.architecture).tensor_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        raise DictionaryFormatError(f"{file}: tensors {got} do not match the config's {expected}")
    dtype = tensors["W_enc"].dtype
    if not dtype.is_floating_point or any(v.dtype != dtype for v in tensors.values()):
        raise DictionaryFormatError(
            f"{file}: tensors must share one floating-point dtype; got {sorted({str(v.dtype) for v in tensors.values()})}"
        )
    return fill_weights(family(cfg, meta=meta), tensors, device)  # type: ignore[arg-type]


def load_dictionary(
    path: str | Path,
    model: HookedModel | None = None,
    *,
    check_weights: bool = True,
    device: torch.device | str | None = None,
) -> SparseDictionary:
    """Read a dictionary folder; with ``model``, check that it fits that model (one-line errors otherwise).

    Checks: the hook exists, the activation there has width ``d_in``, and (``check_weights``)
    the model's fingerprint is the one the dictionary was trained on.
    """
    sae = load_folder(path, SparseDictionary, device=device)
    if model is not None:
        check_compatible(sae, model, check_weights=check_weights)
    return sae


def site_width(model: HookedModel, hook_name: str) -> int:
    """The width of the (flattened) activation at ``hook_name``, from a one-token forward."""
    from interp.features.activations import check_site, flat, read_activation

    bridge = as_bridge(model)
    check_site(bridge, hook_name)
    device = next(iter(bridge.parameters())).device
    act = read_activation(bridge, torch.zeros(1, 1, dtype=torch.long, device=device), hook_name)
    return flat(act).shape[-1]


def check_compatible(sae: SparseDictionary, model: HookedModel, *, check_weights: bool = True) -> None:
    """Refuse, in one line, a dictionary trained for another hook, width or model."""
    bridge = as_bridge(model)
    width = site_width(bridge, sae.hook_name)
    if width != sae.d_in:
        raise DictionaryMismatchError(
            f"the dictionary reads {sae.d_in}-wide activations but {sae.hook_name} of this model is {width} wide; "
            "it was trained on another model or site"
        )
    stored = sae.meta.get("model_fingerprint")
    if check_weights and stored is not None:
        here = model_fingerprint(bridge)
        if here != stored:
            origin = f" ({sae.meta['run_dir']}, step {sae.meta.get('step')})" if sae.meta.get("run_dir") else ""
            raise DictionaryMismatchError(
                f"the dictionary was trained on model {stored}{origin}, not on this one ({here}); "
                "load it for its own model, or pass check_weights=False"
            )


__all__ = [
    "CFG_FILE",
    "WEIGHTS_FILE",
    "check_compatible",
    "config_from_saved",
    "config_record",
    "fill_weights",
    "load_dictionary",
    "load_folder",
    "model_fingerprint",
    "read_cfg_json",
    "read_safetensors",
    "save_dictionary",
    "site_width",
    "write_safetensors",
]
