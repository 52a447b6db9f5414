"""Every MLP of a model replaced, seen layer by layer: per-layer transcoders or one cross-layer transcoder.

:class:`Replacement` gives the splicing, scoring and attribution-graph code one view of both:
source layer ``L``'s features (encoder, activations from the MLP input of ``L``), the MLP
outputs they write (``L`` alone for a per-layer transcoder, ``L..n-1`` for a CLT) with their
decoder rows, and each MLP output's prediction (decoder rows times activations, ``b_dec``, the
skip term). A CLT is given like per-layer transcoders, as a mapping ``layer -> transcoder``
whose every value is the one CLT (what :func:`~interp.features.load_transcoders` returns)::

    rep = Replacement.of(transcoders)
    acts = {L: rep.encode(L, x[L]) for L in rep.layers}
    y_hat = rep.predict(2, acts, x[2])          # MLP output of layer 2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.features.clt import CrossLayerTranscoder
from interp.features.config import DictionaryMismatchError, FeatureError
from interp.features.io import model_fingerprint, site_width
from interp.features.transcoder import INPUT_HOOK, OUTPUT_HOOK, Transcoder, _split_hook, check_transcoder
from interp.intervene import Intervention, Read, as_bridge
from interp.models.protocol import HookedModel


class Replacement:
    """Per-layer transcoders (``layer -> Transcoder``) or one CLT (every key mapping to it), layer by layer."""

    def __init__(self, transcoders: Mapping[int, Transcoder]) -> None:
        if not transcoders:
            raise FeatureError("no transcoders given; pass a mapping layer -> Transcoder")
        clts = {id(tc): tc for tc in transcoders.values() if isinstance(tc, CrossLayerTranscoder)}
        if clts and (len(clts) > 1 or len({id(tc) for tc in transcoders.values()}) > 1):
            raise FeatureError("a cross-layer transcoder replaces every MLP alone; map each layer to the one CLT")
        self.clt: CrossLayerTranscoder | None = next(iter(clts.values()), None)
        self.transcoders = dict(sorted(transcoders.items()))
        self.layers = list(range(self.clt.n_layers)) if self.clt is not None else list(self.transcoders)

    @classmethod
    def of(cls, transcoders: Mapping[int, Transcoder] | Replacement) -> Replacement:
        """``transcoders`` as a :class:`Replacement` (itself if it already is one)."""
        return transcoders if isinstance(transcoders, Replacement) else cls(transcoders)

    @property
    def modules(self) -> list[Transcoder]:
        """The distinct transcoder modules (one for a CLT)."""
        return [self.clt] if self.clt is not None else list(self.transcoders.values())

    def _inner(self, hook: str, default: str) -> str:
        return (_split_hook(hook) or (0, default))[1]

    def input_hook(self, layer: int) -> str:
        """Where source ``layer``'s features read: the MLP input of ``layer``."""
        if self.clt is None:
            return self.transcoders[layer].hook_name
        return f"blocks.{layer}.{self._inner(self.clt.hook_name, INPUT_HOOK)}"

    def output_hook(self, layer: int) -> str:
        """The MLP output of ``layer``."""
        if self.clt is None:
            return self.transcoders[layer].hook_name_out
        return f"blocks.{layer}.{self._inner(self.clt.hook_name_out, OUTPUT_HOOK)}"

    def d_sae(self, layer: int) -> int:
        """Features of source ``layer``."""
        return self.clt.d_layer_sae if self.clt is not None else self.transcoders[layer].d_sae

    def encoder(self, layer: int) -> tuple[Float[Tensor, "d_in d_sae"], Float[Tensor, " d_sae"]]:
        """``(W_enc, b_enc)`` of source ``layer``'s features."""
        if self.clt is not None:
            return self.clt.encoder(layer)[:2]
        tc = self.transcoders[layer]
        return tc.W_enc, tc.b_enc

    def pre_acts(self, layer: int, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Pre-activations of source ``layer``'s features from the MLP input of ``layer``."""
        return self.clt.layer_pre_acts(layer, x) if self.clt is not None else self.transcoders[layer].pre_acts(x)

    def encode(self, layer: int, x: Float[Tensor, "*row d_in"]) -> Float[Tensor, "*row d_sae"]:
        """Activations of source ``layer``'s features."""
        return self.clt.layer_encode(layer, x) if self.clt is not None else self.transcoders[layer].encode(x)

    def writes(self, layer: int) -> list[int]:
        """The MLP outputs that source ``layer``'s features write into."""
        return [L for L in self.layers if L >= layer] if self.clt is not None else [layer]

    def decoder(self, layer: int, out_layer: int) -> Float[Tensor, "d_sae d_out"]:
        """The rows source ``layer``'s features write into MLP output ``out_layer``."""
        return self.clt.decoder(layer, out_layer) if self.clt is not None else self.transcoders[layer].W_dec

    def b_dec(self, out_layer: int) -> Float[Tensor, " d_out"]:
        """The bias of MLP output ``out_layer``'s prediction."""
        return self.clt.layer_b_dec(out_layer) if self.clt is not None else self.transcoders[out_layer].b_dec

    def skip(self, out_layer: int) -> Float[Tensor, "d_in d_out"] | None:
        """``W_skip`` from MLP input ``out_layer`` to its output (None without one)."""
        return self.clt.layer_skip(out_layer) if self.clt is not None else self.transcoders[out_layer].W_skip

    def predict(
        self, out_layer: int, acts: Mapping[int, Tensor], x: Float[Tensor, "*row d_in"]
    ) -> Float[Tensor, "*row d_out"]:
        """MLP output ``out_layer`` predicted from the activations of the layers writing it and its own input ``x``."""
        y = self.b_dec(out_layer)
        for layer in self.layers:
            if out_layer in self.writes(layer):
                y = y + acts[layer] @ self.decoder(layer, out_layer)
        w = self.skip(out_layer)
        return y if w is None else y + x @ w

    def check(self, model: HookedModel, *, check_weights: bool = True) -> None:
        """Refuse, in one line, transcoders that do not fit ``model`` (hooks, widths, fingerprint)."""
        if self.clt is None:
            for tc in self.transcoders.values():
                check_transcoder(tc, model, check_weights=check_weights)
            return
        bridge = as_bridge(model)
        n = len(bridge.blocks)
        if self.clt.n_layers != n:
            raise DictionaryMismatchError(f"the CLT covers {self.clt.n_layers} layers but the model has {n}")
        here = site_width(bridge, self.input_hook(0))
        if here != self.clt.d_layer_in:
            raise DictionaryMismatchError(
                f"the CLT expects {self.clt.d_layer_in}-wide MLP inputs but this model's are {here} wide; "
                "it was trained on another model"
            )
        stored = self.clt.meta.get("model_fingerprint")
        if check_weights and stored is not None and stored != model_fingerprint(bridge):
            raise DictionaryMismatchError(
                f"the CLT was trained on model {stored}, not on this one; load it for its own model, "
                "or pass check_weights=False"
            )


# ----------------------------------------------------------------------------- splicing
@dataclass(eq=False, repr=False)
class ReplacementSplice(Intervention):
    """At MLP output ``layer``, put the replacement's prediction from the MLP inputs read earlier in this forward.

    Pair it with a ``Read`` of every input hook into ``store`` (:func:`replacement_interventions`);
    ``where`` selects positions (None: all).
    """

    replacement: Replacement | None = None
    layer: int = 0
    store: dict[str, Tensor] = field(default_factory=dict)
    where: Bool[Tensor, "batch pos"] | None = None

    def edit(self, act: Tensor) -> Tensor:
        """The prediction of this MLP output, at ``where`` or everywhere."""
        rep = self.replacement
        assert rep is not None
        dtype = rep.modules[0].W_enc.dtype
        xs = {L: self.store[rep.input_hook(L)].flatten(2).to(dtype) for L in rep.layers if L <= self.layer}
        acts = {L: rep.encode(L, x) for L, x in xs.items() if self.layer in rep.writes(L)}
        new = rep.predict(self.layer, acts, xs[self.layer]).to(act.dtype).reshape(act.shape)
        return new if self.where is None else torch.where(self.where.to(act.device)[..., None], new, act)

    def take(self, rows: Int[Tensor, " row"]) -> ReplacementSplice:
        """The same splice for the batch rows ``rows``."""
        where = self.where if self.where is None or self.where.shape[0] == 1 else self.where[rows.to(self.where.device)]
        return replace(self, where=where)


def replacement_interventions(
    transcoders: Mapping[int, Transcoder] | Replacement, where: Bool[Tensor, "batch pos"] | None = None
) -> list[Intervention]:
    """A ``Read`` of every MLP input and a :class:`ReplacementSplice` at every MLP output (the MLPs replaced)."""
    rep = Replacement.of(transcoders)
    store: dict[str, Tensor] = {}
    out: list[Intervention] = []
    for layer in rep.layers:
        out += [
            Read(rep.input_hook(layer), store=store),
            ReplacementSplice(rep.output_hook(layer), replacement=rep, layer=layer, store=store, where=where),
        ]
    return out


@dataclass(eq=False, repr=False)
class SkipTerm(Intervention):
    """Add ``x @ weight`` (``x`` read earlier in this forward into ``store[key]``) to the activation; with
    ``straight_through`` only its gradient (the value is unchanged), so linear paths through skip terms carry
    the attribution graph's gradients."""

    weight: Tensor | None = None
    store: dict[str, Tensor] = field(default_factory=dict)
    key: str = ""
    straight_through: bool = False

    def edit(self, act: Tensor) -> Tensor:
        """The activation plus the skip term (or plus its gradient alone)."""
        assert self.weight is not None
        x = self.store[self.key]
        s = (x.flatten(2) @ self.weight).reshape(act.shape).to(act.dtype)
        return act + (s - s.detach() if self.straight_through else s)


__all__ = ["Replacement", "ReplacementSplice", "SkipTerm", "replacement_interventions"]
