"""The trainer: next-token loss on answer tokens only, evaluation, checkpoints, exact resume.

One step: take a batch (a fixed permutation per epoch, derived from the seed, so the order
depends only on the step number), compute the loss on target tokens, back-propagate,
optionally amplify the slow gradient component (Grokfast), clip, then an AdamW step (with
``train.optimizer = "muon"``: Muon for the attention and MLP matrices, AdamW for embeddings,
biases and LayerNorm). The learning rate is a function of the step (linear warm-up, then
constant or cosine), so no scheduler state exists.

Every ``eval_every`` steps the model is scored by exact match of the answer token on each
split (``train`` through a fixed subset of ``eval_size`` examples), and a row goes to
``RUN_DIR/metrics.jsonl``. The first evaluation at which ``train`` reaches
``memorize_threshold`` is the memorisation step, and the first at which every split of
``grok_splits`` (default: ``test_id`` alone) reaches ``grok_threshold`` the grokking step.

Exact resume: a checkpoint holds weights, optimizer moments (and Muon's momentum), the filter
state, the RNG state and the metrics history; the loop's only other state is the step number.
A run killed and resumed from its last checkpoint ends with the same metrics, bit for bit on
the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.data import SPLITS, KGDataset, TokenBatch, generate, load_dataset
from interp.errors import CheckpointError, ConfigError
from interp.io import atomic_write_json, atomic_write_text
from interp.models import build_model, default_device
from interp.train.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_model_state,
    load_tensors,
    read_state,
    save_checkpoint,
)
from interp.train.config import RunConfig, TrainConfig
from interp.train.grokfast import GradientFilter
from interp.train.muon import Muon

EVAL_CHUNK = 4096


# ----------------------------------------------------------------------------------------
# forward passes
# ----------------------------------------------------------------------------------------
def answer_logits(model: nn.Module, tokens: Int[Tensor, "batch pos"], answer_pos: Int[Tensor, "batch"]) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the answer position only: the residual stream everywhere, the unembedding once."""
    width = int(answer_pos.max()) + 1
    hidden = model.transformer(input_ids=tokens[:, :width]).last_hidden_state  # (batch, pos, d_model)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    return model.lm_head(hidden[rows, answer_pos])  # (batch, d_vocab)


def batch_loss(model: nn.Module, batch: TokenBatch, *, answer_only: bool, loss_on_eos: bool) -> Tensor:
    """Mean cross-entropy over the target tokens of ``batch`` (the paper's loss)."""
    if answer_only:
        return F.cross_entropy(answer_logits(model, batch.tokens, batch.answer_pos), batch.answer)
    logits = model(input_ids=batch.tokens).logits[:, :-1]  # (batch, pos-1, d_vocab)
    targets = batch.tokens[:, 1:]
    mask = batch.loss_mask[:, :-1]
    if not loss_on_eos:
        pos = torch.arange(mask.shape[1], device=mask.device)[None, :]
        mask = pos == batch.answer_pos[:, None]
    return F.cross_entropy(logits[mask], targets[mask])


@torch.no_grad()
def accuracy(model: nn.Module, batch: TokenBatch, *, autocast: contextlib.AbstractContextManager | None = None) -> float:
    """Exact match of the answer token (greedy prediction at the answer position)."""
    if len(batch) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(batch), EVAL_CHUNK):
        part = batch[start : start + EVAL_CHUNK]
        with autocast if autocast is not None else contextlib.nullcontext():
            pred = answer_logits(model, part.tokens, part.answer_pos).argmax(-1)
        correct += int((pred == part.answer).sum())
    model.train(was_training)
    return correct / len(batch)


# ----------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a finished (or stopped) run reached."""

    run_dir: Path
    step: int
    seconds: float
    memorized_step: int | None
    grokked_step: int | None
    metrics: dict[str, Any]
    checkpoint: Path | None

    @property
    def grokked(self) -> bool:
        return self.grokked_step is not None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``RUN_DIR/metrics.jsonl`` (one per evaluation)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; is {run_dir} a training run directory?")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


# ----------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------
def build_optimizers(model: nn.Module, tc: TrainConfig, *, fused: bool = True, muon_cls: type = Muon) -> dict[str, torch.optim.Optimizer]:
    """The optimizers of a run, by name: ``"optimizer"`` (AdamW) and, with ``train.optimizer = "muon"``, ``"muon"``.

    AdamW decays the weight matrices but not biases and LayerNorm. With Muon, the hidden
    weight matrices (attention and MLP) take Muon steps and AdamW keeps the embeddings (tied
    to the unembedding), biases and LayerNorm. ``fused=False`` gives foreach AdamW;
    ``muon_cls`` another Muon class (``torch.optim.Muon``, for the benchmarks).
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases and LayerNorm
    muon = tc.optimizer == "muon"
    hidden = [p for p in matrices if id(p) not in embeddings] if muon else []
    decay = [p for p in matrices if id(p) in embeddings] if muon else matrices
    out: dict[str, torch.optim.Optimizer] = {
        "optimizer": torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=(tc.beta1, tc.beta2),
            # one fused kernel for all parameters (CPU and CUDA): several times faster than foreach
            **({"fused": True} if fused else {"foreach": True}),
        )
    }
    if hidden:
        out["muon"] = muon_cls(
            hidden, lr=tc.lr, weight_decay=tc.weight_decay, momentum=tc.muon_momentum, ns_steps=tc.muon_ns_steps,
            # the update's RMS matches AdamW's, so train.lr means the same for both
            adjust_lr_fn="match_rms_adamw",
        )
    return out


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available here; use auto or cpu")
    return device


def _autocast(precision: str, device: torch.device) -> tuple[contextlib.AbstractContextManager | None, bool]:
    """(autocast context or None, whether a GradScaler is needed)."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return None, False
    if device.type != "cuda":
        raise ConfigError(f"train.precision = {precision} needs a CUDA device; use fp32 or auto on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype), precision == "fp16"


class Trainer:
    """Train ``config`` into ``run_dir``; pass ``dataset`` / ``model`` to reuse built parts."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        dataset: KGDataset | None = None,
        model: nn.Module | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        tc = config.train
        if tc.threads is not None:
            torch.set_num_threads(tc.threads)
        self.device = _resolve_device(tc.device)
        self.autocast, needs_scaler = _autocast(tc.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

        self.dataset = dataset if dataset is not None else generate(config.data)
        self.train_batch = self.dataset.batch("train", self.device)
        if len(self.train_batch) == 0:
            raise ConfigError("the training split is empty; check the data config")
        self.n_ctx = int(self.train_batch.tokens.shape[1])
        self.model = (
            model
            if model is not None
            else build_model(config.model, len(self.dataset.vocab), self.n_ctx, seed=tc.seed, device=self.device)
        ).to(self.device)
        self.model.train()

        # the order clipping sums the gradient norms in: matrices, then biases and LayerNorm
        params = list(self.model.parameters())
        self.params = [p for p in params if p.ndim >= 2] + [p for p in params if p.ndim < 2]
        # by key prefix in trainer.safetensors: "optimizer" (AdamW) and, with Muon, "muon"
        self.optimizers = build_optimizers(self.model, tc)
        self.filter = (
            GradientFilter(self.model, tc.grokfast, alpha=tc.grokfast_alpha, lamb=tc.grokfast_lamb, window=tc.grokfast_window)
            if tc.grokfast != "none"
            else None
        )
        self.eval_batches = self._eval_batches()
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.memorized_step: int | None = None
        self.grokked_step: int | None = None
        self._epoch = -1
        self._perm: Tensor | None = None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The AdamW optimizer (every parameter, or with Muon the embeddings, biases and LayerNorm)."""
        return self.optimizers["optimizer"]

    @property
    def muon(self) -> torch.optim.Optimizer | None:
        """The Muon optimizer of the hidden matrices, or None without ``train.optimizer = "muon"``."""
        return self.optimizers.get("muon")

    # -- data order ------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return min(self.config.train.batch_size, len(self.train_batch))

    def batch_indices(self, step: int) -> Int[Tensor, "batch"]:
        """Indices of the batch for 0-based ``step``: epoch ``e`` uses permutation seeded by (seed, e)."""
        per_epoch = len(self.train_batch) // self.batch_size
        epoch, i = divmod(step, per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.train_batch), generator=gen).to(self.device)
            self._epoch = epoch
        assert self._perm is not None
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]

    def _eval_batches(self) -> dict[str, TokenBatch]:
        out = {}
        for key in SPLITS:
            if key == "train":
                n = len(self.train_batch)
                gen = torch.Generator().manual_seed(self.config.train.seed + 7)
                idx = torch.randperm(n, generator=gen)[: min(n, self.config.train.eval_size)].to(self.device)
                out[key] = self.train_batch[idx]
            else:
                out[key] = self.dataset.batch(key, self.device)
        return out

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``: linear warm-up, then constant or cosine decay."""
        tc = self.config.train
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        if tc.lr_schedule == "constant":
            return tc.lr
        end = tc.decay_steps if tc.decay_steps is not None else tc.max_steps
        progress = min(1.0, (step - tc.warmup_steps) / max(1, end - tc.warmup_steps))
        floor = tc.min_lr_ratio * tc.lr
        return floor + (tc.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    # -- one step --------------------------------------------------------------------------
    def train_step(self, batch: TokenBatch) -> Tensor:
        """One optimisation step on ``batch``; returns the (detached) loss."""
        tc = self.config.train
        lr = self.lr_at(self.step)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        with self.autocast if self.autocast is not None else contextlib.nullcontext():
            loss = batch_loss(self.model, batch, answer_only=tc.answer_only_unembed, loss_on_eos=tc.loss_on_eos)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for opt in self.optimizers.values():
                self.scaler.unscale_(opt)
        else:
            loss.backward()
        if self.filter is not None:
            self.filter.apply()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, tc.grad_clip, foreach=True)
        if self.scaler is not None:
            for opt in self.optimizers.values():
                self.scaler.step(opt)
            self.scaler.update()
        else:
            for opt in self.optimizers.values():
                opt.step()
        self.step += 1
        return loss.detach()

    # -- evaluation and checkpoints --------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        return {key: accuracy(self.model, batch, autocast=self.autocast) for key, batch in self.eval_batches.items()}

    def is_checkpoint_step(self, step: int) -> bool:
        tc = self.config.train
        if step <= tc.checkpoint_dense_until:
            return step % tc.checkpoint_every == 0
        return step % tc.checkpoint_sparse_every == 0

    def _trainer_tensors(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {"rng.cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            out["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        for prefix, opt in self.optimizers.items():
            for i, st in opt.state_dict()["state"].items():
                for key, value in st.items():
                    out[f"{prefix}.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        if self.filter is not None:
            out.update(self.filter.state_tensors())
        if self.scaler is not None:
            out["scaler.scale"] = torch.tensor(self.scaler.get_scale())
        return out

    def save(self) -> Path:
        state = {
            "config": self.config.to_dict(),
            "elapsed": self.elapsed,
            "memorized_step": self.memorized_step,
            "grokked_step": self.grokked_step,
            "metrics": self.history,
            "n_ctx": self.n_ctx,
            "d_vocab": len(self.dataset.vocab),
        }
        model_state = {k: v for k, v in self.model.state_dict().items()}
        return save_checkpoint(self.run_dir, self.step, model_state, self._trainer_tensors(), state)

    def load(self, path: str | Path) -> None:
        """Restore weights, optimizer, filter, RNG and history from checkpoint ``path``."""
        path = Path(path)
        state = read_state(path)
        if state["config"] != self.config.to_dict():
            raise CheckpointError(f"{path}: the checkpoint's config differs from this run's config")
        load_model_state(self.model, load_tensors(path, "model.safetensors", state), path)
        tensors = load_tensors(path, "trainer.safetensors", state)
        for prefix, opt in self.optimizers.items():
            opt_state: dict[int, dict[str, Any]] = {}
            for key, value in tensors.items():
                if key.startswith(prefix + "."):
                    _, i, name = key.split(".", 2)
                    opt_state.setdefault(int(i), {})[name] = value.to(self.device) if name != "step" else value
            opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
        if self.filter is not None:
            self.filter.load_state_tensors(tensors)
        if self.scaler is not None and "scaler.scale" in tensors:
            self.scaler.update(float(tensors["scaler.scale"]))
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.memorized_step = state["memorized_step"]
        self.grokked_step = state["grokked_step"]
        self.history = list(state["metrics"])
        self._write_metrics()

    def _write_metrics(self) -> None:
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in self.history)
        atomic_write_text(self.run_dir / "metrics.jsonl", text)

    def _summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {
            "name": self.config.name,
            "step": self.step,
            "seconds": round(self.elapsed, 3),
            "memorized_step": self.memorized_step,
            "grokked_step": self.grokked_step,
            "metrics": last,
        }

    # -- the loop --------------------------------------------------------------------------
    def run(self, *, max_steps: int | None = None) -> TrainResult:
        """Train until ``max_steps`` (default: the config's), or until grokking if configured."""
        tc = self.config.train
        limit = max_steps if max_steps is not None else tc.max_steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", self.config.to_dict(), indent=1)
        if not (self.run_dir / "data" / "config.json").is_file() and not (self.run_dir / "data" / "train.json").is_file():
            self.dataset.save(self.run_dir / "data")
        writer = self._tensorboard()
        bar = self._progress(limit)
        last_ckpt: Path | None = None
        loss_sum = torch.zeros((), device=self.device)
        loss_n = 0
        start = time.perf_counter() - self.elapsed
        done = self.grokked_step is not None and tc.stop_after_grok
        try:
            while self.step < limit and not done:
                batch = self.train_batch[self.batch_indices(self.step)]
                loss_sum += self.train_step(batch)
                loss_n += 1
                if bar is not None:
                    bar.update(1)
                checkpoint_now = self.is_checkpoint_step(self.step) or self.step == limit
                if self.step % tc.eval_every == 0 or checkpoint_now:
                    self.elapsed = time.perf_counter() - start
                    row = self._record(float(loss_sum) / loss_n, writer, bar)
                    loss_sum.zero_()
                    loss_n = 0
                    grokked_now = row["step"] == self.grokked_step
                    done = grokked_now and tc.stop_after_grok
                    if tc.max_seconds is not None and self.elapsed >= tc.max_seconds:
                        done = True
                    if checkpoint_now or grokked_now or row["step"] == self.memorized_step or done:
                        self.elapsed = time.perf_counter() - start
                        last_ckpt = self.save()
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        self.elapsed = time.perf_counter() - start
        if last_ckpt is None and self.step > 0:
            # nothing was trained (the run had already finished): its newest checkpoint stands
            found = list_checkpoints(self.run_dir)
            last_ckpt = found[-1] if found and found[-1].name == checkpoint_name(self.step) else self.save()
        atomic_write_json(self.run_dir / "summary.json", self._summary(), indent=1)
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            seconds=self.elapsed,
            memorized_step=self.memorized_step,
            grokked_step=self.grokked_step,
            metrics=self.history[-1] if self.history else {},
            checkpoint=last_ckpt,
        )

    def _record(self, loss: float, writer: Any, bar: Any) -> dict[str, Any]:
        tc = self.config.train
        acc = self.evaluate()
        row: dict[str, Any] = {"step": self.step, "seconds": round(self.elapsed, 3), "loss": loss}
        row.update({k: (None if math.isnan(v) else v) for k, v in acc.items()})
        if self.memorized_step is None and acc["train"] >= tc.memorize_threshold:
            self.memorized_step = self.step
        if self.grokked_step is None and all(acc[k] >= tc.grok_threshold for k in tc.grok_splits):
            self.grokked_step = self.step  # (an empty split scores NaN, which never passes)
        self.history.append(row)
        self._write_metrics()
        if writer is not None:
            writer.add_scalar("loss/train", loss, self.step)
            for k, v in acc.items():
                if not math.isnan(v):
                    writer.add_scalar(f"accuracy/{k}", v, self.step)
            writer.flush()
        if bar is not None:
            bar.set_postfix(
                {"loss": f"{loss:.3f}", **{k: f"{v:.2f}" for k, v in acc.items() if k in ("train", "test_id", "test_ood")}},
                refresh=False,
            )
        return row

    def _tensorboard(self) -> Any:
        if not self.config.train.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.step + 1)

    def _progress(self, limit: int) -> Any:
        if not self.config.train.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=limit, initial=self.step, desc=self.config.name, unit="step", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------
def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    dataset: KGDataset | None = None,
    model: nn.Module | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train ``config`` from scratch into ``run_dir`` (which must not hold a run already)."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise ConfigError(f"{run_dir} already holds a run; resume it with `grokscope resume {run_dir}` or pick a new --out")
    return Trainer(config, run_dir, dataset=dataset, model=model).run(max_steps=max_steps)


def resume(run_dir: str | Path, *, max_steps: int | None = None, overrides: dict[str, Any] | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its last complete checkpoint."""
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    state = read_state(ckpt)
    config = RunConfig.from_dict(state["config"])
    dataset = _run_dataset(run_dir, config)
    trainer = Trainer(config, run_dir, dataset=dataset)
    trainer.load(ckpt)
    return trainer.run(max_steps=max_steps)


def stored_config(run_dir: str | Path) -> RunConfig | None:
    """The config of the run in ``run_dir`` (its ``config.json``, written when the run starts); None if there is none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    return RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))


def train_or_resume(config: RunConfig, run_dir: str | Path) -> TrainResult:
    """Train ``config`` into ``run_dir``; if it already holds a run of the same config, resume that.

    A finished run returns at once, so notebooks and the main job can call this every time.
    A run of another config in ``run_dir`` is refused (one line), never silently continued.
    """
    run_dir = Path(run_dir)
    if not list_checkpoints(run_dir):
        return train(config, run_dir)
    stored = stored_config(run_dir)
    if stored != config:
        raise ConfigError(
            f"{run_dir} holds a run of another config ({stored.name}); pick another run directory or resume it as it is"
        )
    return resume(run_dir)


def _run_dataset(run_dir: Path, config: RunConfig) -> KGDataset:
    data_dir = run_dir / "data"
    if (data_dir / "train.json").is_file():
        return load_dataset(data_dir)
    return generate(config.data)


@dataclass
class LoadedRun:
    """A model restored from a checkpoint, with the config and dataset that produced it."""

    config: RunConfig
    model: nn.Module
    dataset: KGDataset
    step: int
    checkpoint: Path
    state: dict[str, Any]


def load_checkpoint(path: str | Path, *, device: torch.device | str | None = None, dataset: KGDataset | None = None) -> LoadedRun:
    """Rebuild the model (and dataset) of a checkpoint folder or of a run's latest checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory or a checkpoint folder")
    ckpt = path if (path / "state.json").is_file() else latest_checkpoint(path)
    state = read_state(ckpt)
    config = RunConfig.from_dict(state["config"])
    run_dir = ckpt.parent.parent
    if dataset is None:
        dataset = _run_dataset(run_dir, config)
    if len(dataset.vocab) != state["d_vocab"]:
        raise CheckpointError(
            f"{ckpt}: the model's vocabulary has {state['d_vocab']} tokens, the dataset's {len(dataset.vocab)}"
        )
    device = torch.device(device) if device is not None else default_device()
    model = build_model(config.model, state["d_vocab"], state["n_ctx"], device=device)
    load_model_state(model, {k: v.to(device) for k, v in load_tensors(ckpt, "model.safetensors", state).items()}, ckpt)
    model.eval()
    return LoadedRun(config=config, model=model, dataset=dataset, step=int(state["step"]), checkpoint=ckpt, state=state)


def iter_checkpoints(run_dir: str | Path, *, device: torch.device | str | None = None) -> Iterator[LoadedRun]:
    """Every checkpoint of a run, oldest first (for analyses of circuit formation)."""
    run_dir = Path(run_dir)
    dataset = None
    for ckpt in list_checkpoints(run_dir):
        loaded = load_checkpoint(ckpt, device=device, dataset=dataset)
        dataset = loaded.dataset
        yield loaded
