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

Which rows a step trains, with how many loops of a looped model and at which positions, is
:class:`~interp.train.depth.StepSchedule`'s (random loop counts, the depth curriculum); the
depth scores (held-out chains per trained depth, deeper chains, other loop counts, adaptive
halting) are :mod:`interp.train.depth_eval`'s.

Exact resume: a checkpoint holds weights, optimizer moments (and Muon's momentum), the filter
state, the RNG state, the curriculum stage and the metrics history; the loop's only other
state is the step number.
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
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import SPLITS, KGDataset, TokenBatch, generate, load_dataset
from interp.errors import CheckpointError, ConfigError
from interp.io import atomic_write_json, atomic_write_text
from interp.lock import holding_run_lock
from interp.models import CausalLM, build_model
from interp.train.checkpoint import (
    checkpoint_name,
    list_checkpoints,
    load_model_state,
    load_tensors,
    read_state,
    save_checkpoint,
)
from interp.train.config import RunConfig
from interp.train.depth import StepSchedule
from interp.train.depth_eval import depth_batches, depth_scores
from interp.train.grokfast import GradientFilter
from interp.train.monitor import open_progress, open_tensorboard, show
from interp.train.objective import accuracy, batch_loss, grouped_loops_loss, query_type_batches
from interp.train.optim import (
    autocast_for,
    build_optimizers,
    learning_rate,
    resolve_device,
    restore_trainer_tensors,
    trainer_tensors,
)
from interp.train.order import eval_rows
from interp.train.stability import orthogonalize_gradients_


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
        """Did the run reach ``grok_threshold`` on every ``grok_splits`` split."""
        return self.grokked_step is not None


class Trainer:
    """Train ``config`` into ``run_dir``; pass ``dataset`` / ``model`` to reuse built parts."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        dataset: KGDataset | None = None,
        model: CausalLM | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        tc = config.train
        if tc.threads is not None:
            torch.set_num_threads(tc.threads)
        self.device = resolve_device(tc.device)
        self.autocast, needs_scaler = autocast_for(tc.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

        if dataset is None:  # a config with data_dir reads that directory, else generates its data section
            dataset = load_dataset(config.data_dir) if config.data_dir is not None else generate(config.data)
        if config.data_dir is not None and dataset.config != config.data:
            raise ConfigError(
                f"the config's data section is not that of the dataset from {config.data_dir}; see RunConfig.with_data_from"
            )
        self.dataset = dataset
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
            GradientFilter(
                self.model, tc.grokfast, alpha=tc.grokfast_alpha, lamb=tc.grokfast_lamb, window=tc.grokfast_window
            )
            if tc.grokfast != "none"
            else None
        )
        self.eval_batches = self._eval_batches()
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.memorized_step: int | None = None
        self.grokked_step: int | None = None
        self.schedule = StepSchedule(config, self.dataset, self.n_ctx, self.device)

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
        """Rows per batch: ``train.batch_size``, or the whole training split where that is smaller."""
        return self.schedule.batch_size

    def batch_indices(self, step: int) -> Int[Tensor, " batch"]:
        """Indices of the batch for 0-based ``step`` (:class:`~interp.train.order.BatchOrder`): epoch ``e``
        uses the permutation seeded by (seed, e); with ``train.atomic_fraction`` the batch joins two such
        streams, the atomic rows and the others; a depth curriculum draws from its stage's rows."""
        return self.schedule.indices(step)

    def batch_for(self, step: int) -> tuple[TokenBatch, Tensor | None, int]:
        """The batch of 0-based ``step``, its loops per row (None: all of ``model.loops``) and its
        position shift: the arguments of :meth:`train_step`."""
        rows = self.batch_indices(step)
        return self.train_batch[rows], self.schedule.loops(step, rows), self.schedule.shift(step)

    def _eval_batches(self) -> dict[str, TokenBatch]:
        out = {}
        for key in SPLITS:
            if key == "train":
                tc = self.config.train
                out[key] = self.train_batch[eval_rows(len(self.train_batch), tc.eval_size, tc.seed, self.device)]
            else:
                out[key] = self.dataset.batch(key, self.device)
        return {**out, **query_type_batches(self.dataset, out), **depth_batches(self.config, self.dataset, self.device)}

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``: linear warm-up, then constant or cosine decay."""
        return learning_rate(self.config.train, step)

    # -- one step --------------------------------------------------------------------------
    def train_step(self, batch: TokenBatch, loops: Tensor | None = None, shift: int = 0) -> Tensor:
        """One optimisation step on ``batch``; returns the (detached) loss.

        ``loops`` (a looped model's loop count per row, from :meth:`batch_for`) runs each row
        with its own number of iterations, the loss the mean over all rows; ``shift`` starts
        the position ids there."""
        tc = self.config.train
        lr = self.lr_at(self.step)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        with self.autocast if self.autocast is not None else contextlib.nullcontext():
            loss = self._loss(batch, loops, shift)
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
        if tc.orthogonal_grad:
            orthogonalize_gradients_(self.params)
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

    def _loss(self, batch: TokenBatch, loops: Tensor | None, shift: int = 0) -> Tensor:
        tc = self.config.train
        options = {
            "answer_only": tc.answer_only_unembed,
            "loss_on_eos": tc.loss_on_eos,
            "label_smoothing": tc.label_smoothing,
            "stablemax": tc.loss_function == "stablemax",
            "shift": shift,
        }
        if loops is None:
            if tc.atomic_loops is not None or tc.loop_sampling != "fixed":
                raise ValueError("this run sets loops per row: pass loops= (from Trainer.batch_for)")
            return batch_loss(self.model, batch, **options)
        return grouped_loops_loss(self.model, batch, loops, **options)

    # -- evaluation and checkpoints --------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Exact-match accuracy on every evaluation split and query type, and the depth scores."""
        scores = {key: accuracy(self.model, batch, autocast=self.autocast) for key, batch in self.eval_batches.items()}
        return {**scores, **depth_scores(self.model, self.config, self.eval_batches)}

    def is_checkpoint_step(self, step: int) -> bool:
        """Is a checkpoint written after ``step`` steps: every ``checkpoint_every`` up to
        ``checkpoint_dense_until``, then every ``checkpoint_sparse_every``."""
        tc = self.config.train
        if step <= tc.checkpoint_dense_until:
            return step % tc.checkpoint_every == 0
        return step % tc.checkpoint_sparse_every == 0

    def save(self) -> Path:
        """Checkpoint the current step (weights, optimisers, filter, RNG, metrics, config); returns its folder."""
        state = {
            "config": self.config.to_dict(),
            "elapsed": self.elapsed,
            "memorized_step": self.memorized_step,
            "grokked_step": self.grokked_step,
            "metrics": self.history,
            "n_ctx": self.n_ctx,
            "d_vocab": len(self.dataset.vocab),
            **self.schedule.state(),
        }
        model_state = {k: v for k, v in self.model.state_dict().items()}
        return save_checkpoint(
            self.run_dir,
            self.step,
            model_state,
            trainer_tensors(self.optimizers, self.filter, self.scaler, self.device),
            state,
        )

    def load(self, path: str | Path) -> None:
        """Restore weights, optimizer, filter, RNG and history from checkpoint ``path``."""
        path = Path(path)
        state = read_state(path)
        try:  # parsed, so a run saved before a setting existed (its default) still resumes
            stored = RunConfig.from_dict(state["config"])
        except ConfigError as err:
            raise CheckpointError(f"{path}: unreadable config in the checkpoint ({err})") from None
        if stored != self.config:
            raise CheckpointError(f"{path}: the checkpoint's config differs from this run's config")
        load_model_state(self.model, load_tensors(path, "model.safetensors", state), path)
        tensors = load_tensors(path, "trainer.safetensors", state)
        restore_trainer_tensors(tensors, self.optimizers, self.filter, self.scaler, self.device)
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.memorized_step = state["memorized_step"]
        self.grokked_step = state["grokked_step"]
        self.history = list(state["metrics"])
        self.schedule.load_state(state, str(path))
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
    @holding_run_lock(lambda self, **_: self.run_dir)
    def run(self, *, max_steps: int | None = None) -> TrainResult:
        """Train until ``max_steps`` (default: the config's), or until grokking if configured."""
        tc = self.config.train
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"max_steps = {max_steps} is out of range; allowed: [1, inf)")
        limit = max_steps if max_steps is not None else tc.max_steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # the dataset first: a run folder with a config.json always has its data/
        if (
            not (self.run_dir / "data" / "config.json").is_file()
            and not (self.run_dir / "data" / "train.json").is_file()
        ):
            self.dataset.save(self.run_dir / "data")
        atomic_write_json(self.run_dir / "config.json", self.config.to_dict(), indent=1)
        writer = open_tensorboard(self.run_dir, self.step) if tc.tensorboard else None
        bar = open_progress(limit, self.step, self.config.name) if tc.progress else None
        last_ckpt: Path | None = None
        loss_sum = torch.zeros((), device=self.device)
        loss_n = 0
        start = time.perf_counter() - self.elapsed
        done = self.grokked_step is not None and tc.stop_after_grok
        try:
            while self.step < limit and not done:
                loss_sum += self.train_step(*self.batch_for(self.step))
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
        self.schedule.after_evaluation(self.step, acc)
        if self.schedule.stage is not None:  # the depth the next steps train on
            row["curriculum_depth"] = self.schedule.stage.depth
        self.history.append(row)
        self._write_metrics()
        show(writer, bar, self.step, loss, acc)
        return row
