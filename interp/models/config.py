"""The model config: the paper's GPT-2 shape by default, every size a field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interp.configs import check_range
from interp.errors import ConfigError


@dataclass
class ModelConfig:
    """GPT-2 architecture hyper-parameters (defaults: the paper's 8-layer, 768-wide model).

    ``n_layers`` counts *applied* blocks. With ``share_layers`` the first ``n_layers // 2``
    blocks are applied twice (block ``i + n_layers // 2`` shares all parameters with block
    ``i``), as in the paper's cross-layer sharing experiment.
    """

    n_layers: int = 8
    d_model: int = 768
    n_heads: int = 12
    d_mlp: int | None = None  # None: 4 * d_model, as GPT-2
    activation: Literal["gelu_new", "gelu", "relu"] = "gelu_new"
    share_layers: bool = False
    dropout: float = 0.0
    init_range: float = 0.02
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        check_range("model.n_layers", self.n_layers, low=1)
        check_range("model.d_model", self.d_model, low=1)
        check_range("model.n_heads", self.n_heads, low=1)
        if self.d_mlp is not None:
            check_range("model.d_mlp", self.d_mlp, low=1)
        check_range("model.dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_range("model.init_range", self.init_range, low=0.0, low_open=True)
        check_range("model.layer_norm_eps", self.layer_norm_eps, low=0.0, low_open=True)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model.d_model = {self.d_model} must be a multiple of model.n_heads = {self.n_heads}"
            )
        if self.share_layers and self.n_layers % 2:
            raise ConfigError(
                f"model.n_layers = {self.n_layers} must be even with model.share_layers = true "
                "(the first half of the blocks is applied twice)"
            )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model
