"""The named run presets (``composition-small`` ...) and :func:`load_run_config`, which reads a preset or a file.

Each preset is a :class:`~interp.train.config.RunConfig`: a data preset, a model and a training
recipe. The fast recipes were found by measurement (BENCHMARKS.md); the ``*-paper`` presets are
the paper's hyper-parameters. ``section.key=value`` overrides apply on top of either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.configs import from_dict, load_config_file
from interp.data import ComplexConfig, data_config
from interp.errors import ConfigError
from interp.models.config import ModelConfig
from interp.train.config import DataConfig, RunConfig, TrainConfig


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

# The llama family (interp.models.llama): rotary positions, RMSNorm, a SwiGLU MLP.
_LLAMA = {"family": "llama", "positions": "rotary", "activation": "silu"}

# Depth training: every trained depth from the start (train.curriculum=true climbs them instead),
# 8-hop chains scored at every evaluation.
_DEPTH_TRAIN = {
    **_FAST_TRAIN,
    "max_steps": 8_000,
    "eval_every": 250,
    "eval_depths": (8,),
    "checkpoint_dense_until": 0,
    "checkpoint_sparse_every": 2_000,
}


# Nanda et al. 2023's modular-addition model and optimiser: 1 layer, d_model 128, 4 heads,
# d_mlp 512, ReLU, no LayerNorm, untied embeddings, TransformerLens's init scale 0.8/sqrt(128);
# full batch, AdamW 1e-3, weight decay 1, betas 0.9/0.98, 10 warm-up steps, no clipping. Training
# goes on after grokking: the clean-up phase comes after it.
_NANDA_MODEL = {
    "n_layers": 1, "d_model": 128, "n_heads": 4, "d_mlp": 512, "activation": "relu", "normalization": "none",
    "tie_embeddings": False, "init_range": 0.0707,
}  # fmt: skip
_NANDA_TRAIN = {
    "batch_size": 1_000_000, "lr": 1e-3, "beta2": 0.98, "weight_decay": 1.0, "warmup_steps": 10, "grad_clip": 0.0,
    "loss_on_eos": False, "answer_only_unembed": True, "max_steps": 25_000, "stop_after_grok": False,
    "eval_every": 100, "eval_size": 100_000, "checkpoint_every": 100, "checkpoint_dense_until": 1_000,
    "checkpoint_sparse_every": 500, "threads": None,
}  # fmt: skip


def presets() -> dict[str, RunConfig]:
    """The named run configs; ``grokscope train NAME`` accepts each key."""
    mod53 = ["modulus=53", "train_fraction=0.5", "probe_size=500"]
    return {
        "modular-addition": _preset("modular-addition", "modular-addition", _NANDA_MODEL, _NANDA_TRAIN),
        # The same model on a + b mod 53 with half the pairs trained and 3x the learning rate:
        # memorises at once and groks near step 1,800 (BENCHMARKS.md), with the three phases.
        "modular-addition-fast": _preset(
            "modular-addition-fast",
            data_config("modular-addition", mod53),
            _NANDA_MODEL,
            {**_NANDA_TRAIN, "lr": 3e-3, "max_steps": 2_400, "checkpoint_dense_until": 2_400},
        ),
        # Grokfast's algorithmic task (Lee et al. 2024, after Power et al. 2022): a * b mod 97, half the
        # pairs trained, 2 layers of width 128 with 4 heads, batch 512, Adam 1e-3, betas 0.9/0.98, no weight
        # decay; grokked at 95% held-out accuracy, as Grokfast counts it. Grokfast's own recipe adds
        # train.grokfast=ema (alpha 0.98, lambda 2) and train.weight_decay=0.005. Init scale 0.1 (GPT-2's
        # 0.02 generalises within 300 steps: no grokking to speed up; PyTorch's default init, which
        # Grokfast's model has, is larger still).
        "modular-multiplication": _preset(
            "modular-multiplication",
            "modular-multiplication",
            {"n_layers": 2, "d_model": 128, "n_heads": 4, "tie_embeddings": False, "init_range": 0.1},
            {
                **_NANDA_TRAIN,
                "batch_size": 512,
                "weight_decay": 0.0,
                "max_steps": 40_000,
                "stop_after_grok": True,
                "grok_threshold": 0.95,
                "eval_size": 1_000,
                "checkpoint_every": 1_000,
                "checkpoint_dense_until": 0,
                "checkpoint_sparse_every": 5_000,
            },
        ),
        # 10x Nanda's learning rate: groks in a few hundred steps; the tests' modular-addition run.
        "modular-addition-tiny": _preset(
            "modular-addition-tiny",
            data_config("modular-addition", mod53),
            _NANDA_MODEL,
            {
                **_NANDA_TRAIN,
                "lr": 1e-2,
                "max_steps": 500,
                "eval_every": 50,
                "checkpoint_every": 50,
                "checkpoint_dense_until": 500,
            },
        ),
        # The default: Muon for the hidden matrices, init scale 0.04, weight decay 0.7, cosine
        # decay over 2,500 steps, on 3 layers with d_mlp 256 (half GPT-2's 4 x d_model). How it
        # was found and how fast it groks: BENCHMARKS.md.
        "composition-small": _preset(
            "composition-small",
            "composition-small",
            {**_FAST_MODEL, "n_layers": 3, "d_mlp": 256, "init_range": 0.04},
            {**_FAST_TRAIN, "optimizer": "muon", "weight_decay": 0.7, "max_steps": 2_500},
        ),
        # The same graph with AdamW for every parameter on 4 layers: the reference that
        # benchmarks/time_to_grok.py measures the default against.
        "composition-small-adamw": _preset(
            "composition-small-adamw",
            "composition-small",
            _FAST_MODEL,
            {**_FAST_TRAIN, "weight_decay": 0.7, "max_steps": 6_000},
        ),
        "composition-tiny": _preset(
            "composition-tiny",
            "composition-tiny",
            _FAST_MODEL,
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 3_000},
        ),
        # composition-tiny's recipe on the llama family: memorises at step 1,600, groks (test-ID >= 0.99)
        # at 2,500, as composition-tiny does; 365 s on one CPU thread.
        "composition-tiny-llama": _preset(
            "composition-tiny-llama",
            "composition-tiny",
            {**_FAST_MODEL, **_LLAMA},
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 3_000},
        ),
        "comparison-small": _preset("comparison-small", "comparison-small", _FAST_MODEL, _FAST_TRAIN),
        # The comparison default, trained until it groks in and out of distribution: Muon, init
        # scale 0.04, cosine over 20,000 steps; grokked = test-ID and test-OOD both >= 0.99, and
        # the run stops at the first evaluation where both pass. OOD comparisons settle only as
        # the learning rate falls, hence the long schedule (BENCHMARKS.md).
        "comparison-tiny": _preset(
            "comparison-tiny",
            "comparison-tiny",
            {**_FAST_MODEL, "init_range": 0.04},
            {
                **_FAST_TRAIN,
                "optimizer": "muon",
                "max_steps": 20_000,
                "eval_every": 200,
                "grok_splits": ("test_id", "test_ood"),
            },
        ),
        # The comparison graph with AdamW over 6,000 steps: groks in-distribution only, in a
        # fraction of comparison-tiny's time; the tests' comparison fixture.
        "comparison-tiny-adamw": _preset(
            "comparison-tiny-adamw",
            "comparison-tiny",
            _FAST_MODEL,
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
            {
                **_FAST_TRAIN,
                "optimizer": "muon",
                "max_steps": 20_000,
                "eval_every": 500,
                "grok_splits": ("test_id", "test_ood"),
            },
        ),
        "complex-small": _preset(
            "complex-small",
            "complex-small",
            {**_FAST_MODEL, "init_range": 0.04},
            {
                **_FAST_TRAIN,
                "optimizer": "muon",
                "max_steps": 40_000,
                "eval_every": 500,
                "grok_splits": ("test_id", "test_ood"),
            },
        ),
        # Looped (recurrent-depth) composition-tiny: one block applied 4 times, the compute of
        # composition-tiny's 4 layers with a quarter of its block parameters (interp.models.looped).
        "composition-tiny-looped": _preset(
            "composition-tiny-looped",
            "composition-tiny",
            {**_FAST_MODEL, "loops": 4},
            {**_FAST_TRAIN, "weight_decay": 1.0, "max_steps": 3_000},
        ),
        # OOD composition at laptop scale (the looped experiment, RESULTS.md "Looped transformers
        # and depth"): composition-tiny with 10% OOD facts, cosine over 15,000 steps, and either
        # the paper's cross-layer sharing (2 blocks applied twice) or one block looped 4 times.
        "composition-tiny-shared-ood": _preset(
            "composition-tiny-shared-ood",
            data_config("composition-tiny", ["ood_fraction=0.1", "phi=6.5"]),
            {**_FAST_MODEL, "share_layers": True},
            {
                **_FAST_TRAIN,
                "weight_decay": 1.0,
                "max_steps": 15_000,
                "eval_every": 500,
                "grok_splits": ("test_id", "test_ood"),
            },
        ),
        "composition-tiny-looped-ood": _preset(
            "composition-tiny-looped-ood",
            data_config("composition-tiny", ["ood_fraction=0.1", "phi=6.5"]),
            {**_FAST_MODEL, "loops": 4},
            {
                **_FAST_TRAIN,
                "weight_decay": 1.0,
                "max_steps": 15_000,
                "eval_every": 500,
                "grok_splits": ("test_id", "test_ood"),
            },
        ),
        # Depth extrapolation: trained on 2- and 3-hop chains, test-ID / test-OOD on 4-hop chains;
        # positions for prompts of up to 7 hops (n_ctx 10), so more hops can be tried at inference.
        "khop-depth-tiny": _preset(
            "khop-depth-tiny",
            "khop-depth-tiny",
            {**_FAST_MODEL, "n_ctx": 10},
            {**_FAST_TRAIN, "max_steps": 4_000, "eval_every": 200},
        ),
        "khop-depth-tiny-looped": _preset(
            "khop-depth-tiny-looped",
            "khop-depth-tiny",
            {**_FAST_MODEL, "loops": 4, "n_ctx": 10},
            {**_FAST_TRAIN, "max_steps": 4_000, "eval_every": 200},
        ),
        # Depth extrapolation (RESULTS.md "Depth extrapolation"): trained on 2- to 4-hop chains,
        # scored on 6- and 8-hop chains. The looped model is one llama block (rotary positions:
        # "attend to the previous token" at any length) built for 8 loops, its residual writes
        # zero-initialised, each batch run for clip(Poisson(4), 2, 8) loops and at least its rows'
        # hops, the atomic facts at one loop (one lookup per iteration); the standard model is 4
        # llama blocks.
        "khop-depth8-looped": _preset(
            "khop-depth8-looped",
            "khop-depth8",
            {**_FAST_MODEL, **_LLAMA, "n_layers": 8, "loops": 8, "n_ctx": 11, "zero_init_residual": True},
            {**_DEPTH_TRAIN, "loop_sampling": "poisson", "loop_min": 2, "atomic_loops": 1, "eval_halting": True},
        ),
        "khop-depth8-standard": _preset(
            "khop-depth8-standard",
            "khop-depth8",
            {**_FAST_MODEL, **_LLAMA, "n_ctx": 11, "zero_init_residual": True},
            _DEPTH_TRAIN,
        ),
        # The paper's full composition graph (2,000 entities, 200 relations, out-degree 20, 5%
        # OOD) at phi 18, on a laptop CPU: d_model 256, bf16 autocast, 30% of every batch atomic
        # facts (train.atomic_fraction), weight decay 0.3 (0.7 keeps the 40,000 facts from being
        # memorised at this size), cosine over 12,000 steps. Progress: BENCHMARKS.md "Time to grok".
        "composition-paper-fast": _preset(
            "composition-paper-fast",
            data_config("composition", ["phi=18"]),
            {"n_layers": 4, "d_model": 256, "n_heads": 8, "d_mlp": 1024, "init_range": 0.04},
            {
                **_FAST_TRAIN,
                "optimizer": "muon",
                "weight_decay": 0.3,
                "batch_size": 512,
                "atomic_fraction": 0.3,
                "precision": "bf16",
                "max_steps": 12_000,
                "eval_every": 250,
                "checkpoint_every": 1_000,
                "checkpoint_dense_until": 0,
            },
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


__all__ = ["load_run_config", "presets"]
