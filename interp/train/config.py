"""Training and run configs: ``TrainConfig`` (optimisation, evaluation, checkpoints) and ``RunConfig``.

A ``RunConfig`` nests the data, model and training sections and is everything that produced a
run; the named presets built from them are :mod:`interp.train.presets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interp.configs import apply_overrides, check_range, field_name, from_dict, to_dict
from interp.data import CompositionConfig, DataConfig, config_from_dict, data_config
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
    # Depth training of looped models (interp.train.depth). "poisson" draws one loop count per
    # batch, clip(Poisson(loop_mean), loop_min, model.loops), raised for each row to its number
    # of hops (the atomic facts keep train.atomic_loops where it is set); "fixed" applies all of
    # model.loops.
    loop_sampling: Literal["fixed", "poisson"] = "fixed"
    loop_mean: float = 4.0
    loop_min: int = 1
    # k-hop data with data.min_hops: train on the depths up to a stage depth, which starts at
    # data.min_hops and rises by one when the held-out chains of that depth (held_d{D}) reach
    # curriculum_threshold at an evaluation.
    curriculum: bool = False
    curriculum_threshold: float = 0.95
    # Shift each batch's position ids by a random offset in 0 .. position_shift, so that every
    # position up to model.n_ctx is trained (learned positions).
    position_shift: int = 0
    # Extra scores at every evaluation: test_id / test_ood with the stack applied T times
    # (test_id_T{T}); all-ID chains of deeper depths (id_d{D}); with eval_halting, the test
    # splits and deeper chains under adaptive halting (..._halt, and the mean halting
    # iteration ..._halt_iter), which stops a prompt's loop when its answer distribution moves
    # by less than halt_kl (KL) in one iteration, at halt_max_loops at most.
    eval_loops: tuple[int, ...] = ()
    eval_depths: tuple[int, ...] = ()
    eval_halting: bool = False
    halt_kl: float = 1e-3
    halt_max_loops: int = 16
    eval_every: int = 200
    eval_size: int = 1_000  # examples of the training split scored at each evaluation
    grok_threshold: float = 0.99
    # The splits that must all reach ``grok_threshold`` for the run to count as grokked:
    # test-ID alone is the paper's grokking; add test_ood for a task that also generalises out
    # of distribution (comparison).
    grok_splits: tuple[Literal["train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood"], ...] = (
        "test_id",
    )
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
        for name in (
            "max_steps",
            "batch_size",
            "eval_every",
            "eval_size",
            "checkpoint_every",
            "checkpoint_sparse_every",
            "grokfast_window",
            "muon_ns_steps",
        ):
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
        check_range("train.loop_mean", self.loop_mean, low=0.0)
        check_range("train.loop_min", self.loop_min, low=1)
        check_range("train.curriculum_threshold", self.curriculum_threshold, low=0.0, high=1.0, low_open=True)
        check_range("train.position_shift", self.position_shift, low=0)
        check_range("train.halt_kl", self.halt_kl, low=0.0, low_open=True)
        check_range("train.halt_max_loops", self.halt_max_loops, low=1)
        for loops in self.eval_loops:
            check_range("train.eval_loops", loops, low=1)
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
            raise ConfigError(
                "train.answer_only_unembed = true needs train.loss_on_eos = false "
                "(the unembedding is then computed at the answer position only)"
            )


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
            raise ConfigError(
                "the run config has no data section; name one (data: composition-small) or train with --data DIR"
            )
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
        self._check_depth_training()

    def _check_depth_training(self) -> None:
        """One-line errors for depth-training settings the data or the model cannot carry."""
        tc, loops = self.train, self.model.n_loops
        composition = isinstance(self.data, CompositionConfig)
        if tc.loop_sampling != "fixed":
            if loops < 2:
                raise ConfigError("train.loop_sampling = poisson needs a looped model; set model.loops >= 2")
            if tc.loop_min > loops:
                raise ConfigError(f"train.loop_min = {tc.loop_min} is more than model.loops = {loops}; lower it")
            if composition and self.data.n_hops > loops:
                raise ConfigError(
                    f"train.loop_sampling = poisson runs each row for at least its {self.data.n_hops} hops; "
                    f"set model.loops >= {self.data.n_hops} (now {loops})"
                )
        if tc.curriculum and not (composition and self.data.min_hops is not None):
            raise ConfigError("train.curriculum needs k-hop composition data with data.min_hops (depths to climb)")
        if tc.eval_depths:
            if not composition:
                raise ConfigError("train.eval_depths needs composition data (chains of a given depth)")
            for depth in tc.eval_depths:
                check_range("train.eval_depths", depth, low=self.data.n_hops + 1)
                if self.model.n_ctx is None or self.model.n_ctx < depth + 3:
                    raise ConfigError(
                        f"train.eval_depths has {depth} hops, which needs model.n_ctx >= {depth + 3} "
                        f"(now {self.model.n_ctx}); raise model.n_ctx"
                    )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (``config.json``); ``data_dir`` only when set, as earlier runs stored it."""
        out = to_dict(self)
        if self.data_dir is None:  # generated data: the format every earlier run stored
            del out["data_dir"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The config a mapping (``config.json``, a YAML file) describes; one-line errors name the field."""
        if not isinstance(data, dict):
            raise ConfigError("a run config must be a mapping with keys name, data, model, train")
        unknown = sorted(set(data) - {"name", "data", "model", "train", "data_dir"}, key=repr)
        if unknown:
            raise ConfigError(
                f"unknown field {field_name('', unknown[0])} in run config; known fields: data, data_dir, model, name, train"
            )
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
                raise ConfigError(
                    f"override {item!r} must start with data., model. or train. (for example train.lr=1e-3)"
                )
        if per_section["data"] and self.data_dir is not None:
            raise ConfigError(
                f"override 'data.{per_section['data'][0]}' cannot change the dataset read from {self.data_dir}"
            )
        # each section's overrides apply together, so the result is validated once, as a whole
        for section, items in per_section.items():
            if items:
                changes[section] = apply_overrides(getattr(self, section), items, prefix=f"{section}.")
        return dataclasses.replace(self, **changes)
