"""The model config: the paper's GPT-2 shape by default, every size a field, two model families."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from interp.configs import check_range
from interp.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture hyper-parameters (defaults: the paper's 8-layer, 768-wide GPT-2).

    ``family`` picks the Hugging Face module the model is: ``"gpt2"`` (``GPT2LMHeadModel``:
    LayerNorm, GELU MLP, learned or no positions) or ``"llama"`` (``LlamaForCausalLM``:
    RMSNorm, a gated MLP (SwiGLU with ``activation = "silu"``), rotary or no positions, no
    biases). ``positions`` is how the model knows where a token is: ``"learned"`` (GPT-2's
    position table), ``"rotary"`` (RoPE, llama only) or ``"none"`` (no positional signal: the
    causal mask alone orders the tokens). The family is named, never inferred from
    ``positions``, and a combination a family has not got is a one-line ConfigError.
    ``zero_init_residual`` starts every block's writes to the residual stream (attention
    output and MLP down projections) at zero, so the initial model's residual stream is its
    embedding at every layer.

    ``n_layers`` counts *applied* blocks. With ``share_layers`` the first ``n_layers // 2``
    blocks are applied twice (block ``i + n_layers // 2`` shares all parameters with block
    ``i``), as in the paper's cross-layer sharing experiment. ``loops = T`` generalises it:
    a stack of ``n_layers // T`` blocks applied ``T`` times (block ``i`` shares the parameters
    of block ``i % stack``), a looped (recurrent-depth) transformer; ``share_layers`` is
    ``loops = 2``. ``n_ctx`` (None: the longest training example) gives the model positions
    for longer prompts than it trains on (depth extrapolation).
    """

    n_layers: int = 8
    d_model: int = 768
    n_heads: int = 12
    d_mlp: int | None = None  # None: 4 * d_model, as GPT-2
    # llama gates its MLP with it: "silu" is SwiGLU (GPT-2's default "gelu_new" is not offered there)
    activation: Literal["gelu_new", "gelu", "relu", "silu"] = "gelu_new"
    share_layers: bool = False
    loops: int = 1
    n_ctx: int | None = None
    dropout: float = 0.0
    init_range: float = 0.02
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = True
    # "none": no LayerNorm anywhere (Nanda et al.'s modular-addition model); the residual
    # stream is then read by the unembedding as it is
    # (llama: "layernorm" is its RMSNorm)
    normalization: Literal["layernorm", "none"] = "layernorm"
    family: Literal["gpt2", "llama"] = "gpt2"
    positions: Literal["learned", "none", "rotary"] = "learned"
    zero_init_residual: bool = False

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
            raise ConfigError(f"model.d_model = {self.d_model} must be a multiple of model.n_heads = {self.n_heads}")
        check_range("model.loops", self.loops, low=1)
        if self.n_ctx is not None:
            check_range("model.n_ctx", self.n_ctx, low=1)
        if self.share_layers and self.loops > 1:
            raise ConfigError(
                f"model.share_layers = true and model.loops = {self.loops} both tie blocks; "
                "use model.loops alone (share_layers is loops = 2)"
            )
        if self.n_layers % self.loops:
            raise ConfigError(
                f"model.n_layers = {self.n_layers} must be a multiple of model.loops = {self.loops} "
                "(n_layers counts applied blocks: a stack of n_layers / loops blocks, applied loops times)"
            )
        if self.share_layers and self.n_layers % 2:
            raise ConfigError(
                f"model.n_layers = {self.n_layers} must be even with model.share_layers = true "
                "(the first half of the blocks is applied twice)"
            )
        self._check_family()

    def _check_family(self) -> None:
        """One-line errors for the options the chosen family has not got."""
        if self.family == "gpt2":
            if self.positions == "rotary":
                raise ConfigError(
                    "model.positions = rotary needs model.family = llama (GPT-2 has learned or no positions)"
                )
            return
        if self.positions == "learned":
            raise ConfigError(
                "model.family = llama has no learned positions; set model.positions = rotary (RoPE) or none"
            )
        if self.activation == "gelu_new":
            raise ConfigError(
                "model.family = llama gates its MLP with model.activation; set silu (SwiGLU), gelu or relu"
            )
        if self.normalization != "layernorm":
            raise ConfigError("model.normalization = none is for model.family = gpt2; llama keeps its RMSNorm")
        if self.dropout:
            raise ConfigError(f"model.dropout = {self.dropout} is for model.family = gpt2; llama has no dropout")

    @property
    def n_loops(self) -> int:
        """How many times the block stack is applied (2 with ``share_layers``)."""
        return 2 if self.share_layers else self.loops

    @property
    def n_stack(self) -> int:
        """Distinct blocks (parameter sets): ``n_layers // n_loops``."""
        return self.n_layers // self.n_loops

    def with_loops(self, loops: int) -> ModelConfig:
        """This architecture with its block stack applied ``loops`` times (same parameters)."""
        if isinstance(loops, bool) or not isinstance(loops, int) or loops < 1:
            raise ConfigError(f"loops = {loops!r} is out of range; allowed: an integer >= 1")
        return dataclasses.replace(self, n_layers=self.n_stack * loops, loops=loops, share_layers=False)

    @property
    def d_head(self) -> int:
        """Per-head width: ``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """The MLP's hidden width: ``d_mlp``, or ``4 * d_model`` when unset."""
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model
