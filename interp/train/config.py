"""Training and run configs, and the named presets (``composition-small`` ...)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interp.configs import apply_overrides, check_range, field_name, from_dict, load_config_file, to_dict
from interp.data import ComplexConfig, CompositionConfig, DataConfig, config_from_dict, data_config
from interp.errors import ConfigError
from interp.models.config import ModelConfig


@dataclass
class TrainConfig:
    """Optimisation, evaluation and checkpointing of one training run.

    The defaults are the paper's recipe (AdamW 1e-4, weight decay 0.1 without decay on biases
    and LayerNorm, clip 1.0, 2,000 warm-up steps then constant, batch 512). The fast recipe in
    the ``composition-small`` preset changes only fields of this class and the model's size and
    initialisation scale.
    """

    max_steps: int = 20_000
    max_seconds: float | None = None  # stop at the first evaluation past this wall time
    batch_size: int = 512
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.1
    warmup_steps: int = 2_000
    # After warm-up: "constant" (the paper) or "cosine", decaying to ``min_lr_ratio * lr`` at
    # ``decay_steps`` (default: ``max_steps``) and staying there.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    decay_steps: int | None = None
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    # Batch make-up: None draws each batch from one shuffle of the whole training split (the
    # paper); a fraction f draws round(f * batch_size) rows of every batch from the atomic
    # facts (one-hop prompts) and the rest from the other training prompts, each group in its
    # own per-epoch shuffle. The training set is unchanged; only how often each part is seen.
    atomic_fraction: float | None = None
    # "adamw" for every parameter (the paper), or "muon": Muon (orthogonalised momentum,
    # torch.optim.Muon) for the attention and MLP weight matrices, AdamW for the rest.
    optimizer: Literal["adamw", "muon"] = "adamw"
    muon_momentum: float = 0.95
    muon_ns_steps: int = 5  # Newton-Schulz iterations per orthogonalisation (torch's default 5)
    # The dtype of that iteration: "auto" is bfloat16 on CUDA and, on CPUs with bfloat16 matrix
    # units (AVX512-BF16, AMX), for matrices with both sides >= 256, where it is several times
    # faster; float32 elsewhere (other CPUs emulate bfloat16 products, much slower).
    muon_ns_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # Slow-gradient amplification (Grokfast, Lee et al. 2024): add ``grokfast_lamb`` times a
    # low-pass filtered gradient before each step; "ema" keeps an exponential moving average
    # (``grokfast_alpha``), "window" the mean of the last ``grokfast_window`` gradients.
    grokfast: Literal["none", "ema", "window"] = "none"
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 2.0
    grokfast_window: int = 100
    # Loss on the answer entity only (the target's "</a>" is always predictable); computing the
    # unembedding only at answer positions is exactly the same loss, much cheaper.
    loss_on_eos: bool = True
    answer_only_unembed: bool = False
    # Cross-entropy against (1 - eps) one-hot + eps uniform over the vocabulary, as the looped
    # ("recurrent-depth") transformer studies train (eps 0.1); 0 is the paper's plain loss.
    label_smoothing: float = 0.0
    # Grokking without weight decay (Prieto et al. 2025, interp.train.stability): cross-entropy
    # through StableMax instead of softmax, and/or each gradient orthogonal to its parameter (⊥Grad).
    loss_function: Literal["softmax", "stablemax"] = "softmax"
    orthogonal_grad: bool = False
    # Looped models only: train the atomic facts with the stack applied this many times
    # (e.g. 1) and every other prompt with all of model.loops, so that each fact must be
    # recalled within that many iterations, where a multi-hop prompt's next hop reads it.
    # Evaluation still scores every split with all of model.loops.
    atomic_loops: int | None = None
    eval_every: int = 200
    eval_size: int = 1_000  # examples of the training split scored at each evaluation
    grok_threshold: float = 0.99
    # The splits that must all reach ``grok_threshold`` for the run to count as grokked:
    # test-ID alone is the paper's grokking; add test_ood for a task that also generalises out
    # of distribution (comparison).
    grok_splits: tuple[Literal["train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood"], ...] = ("test_id",)
    memorize_threshold: float = 0.99
    stop_after_grok: bool = True
    # Checkpoints: every ``checkpoint_every`` steps up to ``checkpoint_dense_until``, then every
    # ``checkpoint_sparse_every`` steps (dense early, sparse later, like the paper), plus the
    # steps of memorisation and grokking and the last step.
    checkpoint_every: int = 200
    checkpoint_dense_until: int = 2_000
    checkpoint_sparse_every: int = 1_000
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_every", "eval_size", "checkpoint_every",
                     "checkpoint_sparse_every", "grokfast_window", "muon_ns_steps"):
            check_range(f"train.{name}", getattr(self, name), low=1)
        for name in ("warmup_steps", "checkpoint_dense_until"):
            check_range(f"train.{name}", getattr(self, name), low=0)
        check_range("train.lr", self.lr, low=0.0, low_open=True)
        check_range("train.beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        check_range("train.beta2", self.beta2, low=0.0, high=1.0, high_open=True)
        check_range("train.weight_decay", self.weight_decay, low=0.0)
        check_range("train.grad_clip", self.grad_clip, low=0.0)
        check_range("train.label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        if self.atomic_loops is not None:
            check_range("train.atomic_loops", self.atomic_loops, low=1)
        if self.atomic_fraction is not None:
            check_range("train.atomic_fraction", self.atomic_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_range("train.muon_momentum", self.muon_momentum, low=0.0, high=1.0, high_open=True)
        check_range("train.min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)
        if self.decay_steps is not None:
            check_range("train.decay_steps", self.decay_steps, low=1)
        check_range("train.grokfast_alpha", self.grokfast_alpha, low=0.0, high=1.0, high_open=True)
        check_range("train.grokfast_lamb", self.grokfast_lamb, low=0.0)
        check_range("train.grok_threshold", self.grok_threshold, low=0.0, high=1.0, low_open=True)
        if not self.grok_splits:
            raise ConfigError("train.grok_splits is empty; name at least one split, e.g. test_id")
        check_range("train.memorize_threshold", self.memorize_threshold, low=0.0, high=1.0, low_open=True)
        if self.threads is not None:
            check_range("train.threads", self.threads, low=1)
        if self.max_seconds is not None:
            check_range("train.max_seconds", self.max_seconds, low=0.0, low_open=True)
        if self.answer_only_unembed and self.loss_on_eos:
            raise ConfigError("train.answer_only_unembed = true needs train.loss_on_eos = false "
                              "(the unembedding is then computed at the answer position only)")


@dataclass
class RunConfig:
    """Everything that produced a run: a checkpoint stores it, so it rebuilds model and data.

    ``data_dir`` is set when the run trains on a dataset read from a directory
    (``grokscope train CONFIG --data DIR``, e.g. the paper's released files) instead of one
    generated from ``data``. ``data`` is then that dataset's own config (from its
    ``config.json``), or None when the files do not say how they were made; never the
    preset's data section, which did not produce them. The run keeps its copy of the
    dataset in ``RUN_DIR/data``; ``data_dir`` only records where it came from.
    """

    name: str = "run"
    data: DataConfig | None = field(default_factory=CompositionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.data_dir is None:
            raise ConfigError("the run config has no data section; name one (data: composition-small) or train with --data DIR")
        if isinstance(self.data, CompositionConfig) and self.data.probe_hops > self.data.n_hops:
            need = self.data.probe_hops + 3  # head, relations, answer, </a>
            if self.model.n_ctx is None or self.model.n_ctx < need:
                raise ConfigError(
                    f"data.test_hops = {self.data.test_hops} needs test prompts of {need} tokens; "
                    f"set model.n_ctx >= {need} (now {self.model.n_ctx}: only the training prompts' positions)"
                )
        loops = self.model.n_loops
        if self.train.atomic_loops is not None and not self.train.atomic_loops < loops:
            raise ConfigError(
                f"train.atomic_loops = {self.train.atomic_loops} needs a looped model with more loops "
                f"(model.loops = {loops}); set model.loops > {self.train.atomic_loops} or drop train.atomic_loops"
            )

    def to_dict(self) -> dict[str, Any]:
        out = to_dict(self)
        if self.data_dir is None:  # generated data: the format every earlier run stored
            del out["data_dir"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError("a run config must be a mapping with keys name, data, model, train")
        unknown = sorted(set(data) - {"name", "data", "model", "train", "data_dir"}, key=repr)
        if unknown:
            raise ConfigError(f"unknown field {field_name('', unknown[0])} in run config; known fields: data, data_dir, model, name, train")
        data_cfg = data.get("data", {})
        data_dir = data.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ConfigError(f"data_dir = {data_dir!r} must be a directory path")
        if data_cfg is None:
            data_obj = None
        elif isinstance(data_cfg, str):
            data_obj = data_config(data_cfg)
        elif not isinstance(data_cfg, dict):
            raise ConfigError(f"data must be a preset name or a mapping of data fields; got {data_cfg!r}")
        else:
            data_obj = config_from_dict(dict(data_cfg))
        return cls(
            name=str(data.get("name", "run")),
            data=data_obj,
            model=from_dict(ModelConfig, data.get("model", {}), prefix="model."),
            train=from_dict(TrainConfig, data.get("train", {}), prefix="train."),
            data_dir=data_dir,
        )

    def with_data_from(self, directory: str | Path, dataset_config: DataConfig | None) -> RunConfig:
        """This config for a dataset read from ``directory`` whose own config is ``dataset_config``."""
        return dataclasses.replace(self, data=dataset_config, data_dir=str(Path(directory).resolve()))

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> RunConfig:
        """Apply ``section.key=value`` overrides (``train.lr=1e-3``, ``data.phi=9``, ``model.n_layers=4``)."""
        changes: dict[str, Any] = {}
        per_section: dict[str, list[str]] = {"data": [], "model": [], "train": []}
        for item in overrides:
            key = item.split("=", 1)[0].strip()
            section = key.split(".", 1)[0]
            if key == "name" and "=" in item:
                changes["name"] = item.split("=", 1)[1]
            elif section in per_section and "." in key:
                per_section[section].append(item.split(".", 1)[1])
            else:
                raise ConfigError(f"override {item!r} must start with data., model. or train. (for example train.lr=1e-3)")
        if per_section["data"] and self.data_dir is not None:
            raise ConfigError(f"override 'data.{per_section['data'][0]}' cannot change the dataset read from {self.data_dir}")
        # each section's overrides apply together, so the result is validated once, as a whole
        for section, items in per_section.items():
            if items:
                changes[section] = apply_overrides(getattr(self, section), items, prefix=f"{section}.")
        return dataclasses.replace(self, **changes)


def _preset(name: str, data: str | DataConfig, model: dict[str, Any], train: dict[str, Any]) -> RunConfig:
    return RunConfig(
        name=name,
        data=data_config(data) if isinstance(data, str) else data,
        model=from_dict(ModelConfig, model, prefix="model."),
        train=from_dict(TrainConfig, train, prefix="train."),
    )


# Fast laptop recipes, found by measurement (see BENCHMARKS.md): a small model, a higher
# learning rate, the unembedding only at the answer position.
_FAST_MODEL = {"n_layers": 4, "d_model": 128, "n_heads": 4}
_FAST_TRAIN = {
    "batch_size": 256,
    "lr": 3e-3,
    "beta2": 0.98,
    "weight_decay": 1.0,
    "warmup_steps": 100,
    # cosine decay to zero at max_steps: the annealing turns ~93% test-ID into >= 99%
    "lr_schedule": "cosine",
    "loss_on_eos": False,
    "answer_only_unembed": True,
    "max_steps": 20_000,
    "eval_every": 100,
    "checkpoint_every": 200,
    "checkpoint_dense_until": 2_000,
    "checkpoint_sparse_every": 1_000,
    "threads": None,
}


# Nanda et al. 2023's modular-addition model and optimiser: 1 layer, d_model 128, 4 heads,
# d_mlp 512, ReLU, no LayerNorm, untied embeddings, TransformerLens's init scale 0.8/sqrt(128);
# full batch, AdamW 1e-3, weight decay 1, betas 0.9/0.98, 10 warm-up steps, no clipping. Training
# goes on after grokking: the clean-up phase comes after it.
_NANDA_MODEL = {"n_layers": 1, "d_model": 128, "n_heads": 4, "d_mlp": 512, "activation": "relu",
                "normalization": "none", "tie_embeddings": False, "init_range": 0.0707}
_NANDA_TRAIN = {
    "batch_size": 1_000_000, "lr": 1e-3, "beta2": 0.98, "weight_decay": 1.0, "warmup_steps": 10, "grad_clip": 0.0,
    "loss_on_eos": False, "answer_only_unembed": True, "max_steps": 25_000, "stop_after_grok": False,
    "eval_every": 100, "eval_size": 100_000, "checkpoint_every": 100, "checkpoint_dense_until": 1_000,
    "checkpoint_sparse_every": 500, "threads": None,
}


def presets() -> dict[str, RunConfig]:
    """The named run configs; ``grokscope train NAME`` accepts each key."""
    return {
        "modular-addition": _preset("modular-addition", "modular-addition", _NANDA_MODEL, _NANDA_TRAIN),
        # The same model on a + b mod 53 with half the pairs trained and 3x the learning rate:
        # memorises at once and groks near step 1,800 (BENCHMARKS.md), with the three phases.
        "modular-addition-fast": _preset(
            "modular-addition-fast", data_config("modular-addition", ["modulus=53", "train_fraction=0.5", "probe_size=500"]),
            _NANDA_MODEL, {**_NANDA_TRAIN, "lr": 3e-3, "max_steps": 2_400, "checkpoint_dense_until": 2_400},
        ),
        # 10x Nanda's learning rate: groks in a few hundred steps; the tests' modular-addition run.
        "modular-addition-tiny": _preset(
            "modular-addition-tiny", data_config("modular-addition", ["modulus=53", "train_fraction=0.5", "probe_size=500"]),
            _NANDA_MODEL, {**_NANDA_TRAIN, "lr": 1e-2, "max_steps": 500, "eval_every": 50, "checkpoint_every": 50,
                           "checkpoint_dense_until": 500},
        ),
        # The default: Muon for the hidden matrices, init scale 0.04, weight decay 0.7, cosine
        # decay over 2,500 steps, on 3 layers with d_mlp 256 (half GPT-2's 4 x d_model). How it
        # was found and how fast it groks: BENCHMARKS.md.
        "composition-small": _preset(
            "composition-small", "composition-small",
            {**_FAST_MODEL, "n_layers": 3, "d_mlp": 256, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "weight_decay": 0.7, "max_steps": 2_500},
        ),
        # The same graph with AdamW for every parameter on 4 layers: the reference that
        # benchmarks/time_to_grok.py measures the default against.
        "composition-small-adamw": _preset(
            "composition-small-adamw", "composition-small", _FAST_MODEL,
            {**_FAST_TRAIN, "weight_decay": 0.7, "max_steps": 6_000},
        ),
        "composition-tiny": _preset(
            "composition-tiny", "composition-tiny", _FAST_MODEL,
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 3_000},
        ),
        "comparison-small": _preset("comparison-small", "comparison-small", _FAST_MODEL, _FAST_TRAIN),
        # The comparison default, trained until it groks in and out of distribution: Muon, init
        # scale 0.04, cosine over 20,000 steps; grokked = test-ID and test-OOD both >= 0.99, and
        # the run stops at the first evaluation where both pass. OOD comparisons settle only as
        # the learning rate falls, hence the long schedule (BENCHMARKS.md).
        "comparison-tiny": _preset(
            "comparison-tiny", "comparison-tiny", {**_FAST_MODEL, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "max_steps": 20_000, "eval_every": 200,
             "grok_splits": ("test_id", "test_ood")},
        ),
        # The comparison graph with AdamW over 6,000 steps: groks in-distribution only, in a
        # fraction of comparison-tiny's time; the tests' comparison fixture.
        "comparison-tiny-adamw": _preset(
            "comparison-tiny-adamw", "comparison-tiny", _FAST_MODEL,
            {**_FAST_TRAIN, "max_steps": 6_000, "eval_every": 200},
        ),
        # Complex reasoning (appendix F): OOD atomic facts untrained, 3% of ID-ID and ID-OOD
        # comparisons trained, 150 hard OOD-OOD queries as the OOD test; grokked = test-ID and
        # the hard queries both >= 0.99. complex-tiny: 200 entities, 10 attributes, 10 values; cosine
        # over 20,000 steps (it memorises late and groks as the learning rate falls, near 15,000).
        "complex-tiny": _preset(
            "complex-tiny",
            ComplexConfig(n_entities=200, n_attributes=10, n_values=10, n_hard_per_label=50, probe_size=1000),
            {**_FAST_MODEL, "n_layers": 3, "d_mlp": 256, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "max_steps": 20_000, "eval_every": 500,
             "grok_splits": ("test_id", "test_ood")},
        ),
        "complex-small": _preset(
            "complex-small", "complex-small", {**_FAST_MODEL, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "max_steps": 40_000, "eval_every": 500,
             "grok_splits": ("test_id", "test_ood")},
        ),
        # Looped (recurrent-depth) composition-tiny: one block applied 4 times, the compute of
        # composition-tiny's 4 layers with a quarter of its block parameters (interp.models.looped).
        "composition-tiny-looped": _preset(
            "composition-tiny-looped", "composition-tiny", {**_FAST_MODEL, "loops": 4},
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 3_000},
        ),
        # OOD composition at laptop scale (the looped experiment, RESULTS.md "Looped transformers
        # and depth"): composition-tiny with 10% OOD facts, cosine over 15,000 steps, and either
        # the paper's cross-layer sharing (2 blocks applied twice) or one block looped 4 times.
        "composition-tiny-shared-ood": _preset(
            "composition-tiny-shared-ood", data_config("composition-tiny", ["ood_fraction=0.1", "phi=6.5"]),
            {**_FAST_MODEL, "share_layers": True},
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 15_000, "eval_every": 500,
             "grok_splits": ("test_id", "test_ood")},
        ),
        "composition-tiny-looped-ood": _preset(
            "composition-tiny-looped-ood", data_config("composition-tiny", ["ood_fraction=0.1", "phi=6.5"]),
            {**_FAST_MODEL, "loops": 4},
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 15_000, "eval_every": 500,
             "grok_splits": ("test_id", "test_ood")},
        ),
        # Depth extrapolation: trained on 2- and 3-hop chains, test-ID / test-OOD on 4-hop chains;
        # positions for prompts of up to 7 hops (n_ctx 10), so more hops can be tried at inference.
        "khop-depth-tiny": _preset(
            "khop-depth-tiny", "khop-depth-tiny", {**_FAST_MODEL, "n_ctx": 10},
            {**_FAST_TRAIN, "max_steps": 4_000, "eval_every": 200},
        ),
        "khop-depth-tiny-looped": _preset(
            "khop-depth-tiny-looped", "khop-depth-tiny", {**_FAST_MODEL, "loops": 4, "n_ctx": 10},
            {**_FAST_TRAIN, "max_steps": 4_000, "eval_every": 200},
        ),
        # The paper's full composition graph (2,000 entities, 200 relations, out-degree 20, 5%
        # OOD) at phi 18, on a laptop CPU: d_model 256, bf16 autocast, 30% of every batch atomic
        # facts (train.atomic_fraction), weight decay 0.3 (0.7 keeps the 40,000 facts from being
        # memorised at this size), cosine over 12,000 steps. Progress: BENCHMARKS.md "Time to grok".
        "composition-paper-fast": _preset(
            "composition-paper-fast", data_config("composition", ["phi=18"]),
            {"n_layers": 4, "d_model": 256, "n_heads": 8, "d_mlp": 1024, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "weight_decay": 0.3, "batch_size": 512, "atomic_fraction": 0.3,
             "precision": "bf16", "max_steps": 12_000, "eval_every": 250, "checkpoint_every": 1_000,
             "checkpoint_dense_until": 0},
        ),
        # The paper's hyper-parameters (model and optimiser) on the small graph: the reference
        # the fast recipe is measured against.
        "composition-small-paper": _preset("composition-small-paper", "composition-small", {}, {}),
        # The paper's full setting (days of GPU time).
        "composition-paper": _preset("composition-paper", "composition", {}, {"max_steps": 1_500_000}),
        "comparison-paper": _preset("comparison-paper", "comparison", {}, {"max_steps": 1_500_000}),
    }


def load_run_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """A preset name or a YAML/JSON file, with ``section.key=value`` overrides applied."""
    table = presets()
    key = str(name_or_path)
    if key in table:
        cfg = table[key]
    elif Path(key).suffix.lower() in (".yaml", ".yml", ".json") or Path(key).is_file():
        try:
            cfg = RunConfig.from_dict(load_config_file(key))
        except ConfigError as err:  # name the file to fix (load_config_file's own errors already do)
            raise err if str(err).startswith(key) else ConfigError(f"{key}: {err}") from None
    else:
        raise ConfigError(f"unknown config {key!r}; give a YAML file or one of: {', '.join(sorted(table))}")
    return cfg.with_overrides(list(overrides))
