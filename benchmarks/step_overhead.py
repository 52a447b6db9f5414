"""The trainer's step time against a minimal plain-PyTorch loop on the same model and batches.

All loops do the same work per step: forward of the answer-only loss, backward, gradient
clipping, the config's optimiser (AdamW, or Muon for the hidden matrices and AdamW for the
rest). The ratio (trainer / plain) shows the trainer's own overhead. Reference rows, each a
plain loop in the same run:

* the same GPT-2 built with Hugging Face's defaults (SDPA attention, the composed "gelu_new"
  activation, foreach AdamW): what ``build_model`` and fused AdamW gain per step;
* with Muon configs, AdamW for every parameter (what Muon's orthogonalisation costs), the
  Newton-Schulz iteration in the other dtype than ``train.muon_ns_dtype = "auto"`` picks here
  (float32 or bfloat16), and ``torch.optim.Muon`` itself, which orthogonalises in bfloat16
  (slow on CPUs without bfloat16 matrix units; timed on a tenth of the steps).

    python benchmarks/step_overhead.py [--config composition-small] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _machine import describe

from interp.models.gpt2 import with_hf_default_kernels
from interp.train import Trainer, load_run_config
from interp.train.muon import Muon
from interp.train.objective import answer_logits
from interp.train.optim import build_optimizers


def plain_loop(model, batches, tc, *, fused=True, muon_cls=Muon):
    """``tc``: the TrainConfig; the optimizers are the trainer's (``build_optimizers``)."""
    opts = list(build_optimizers(model, tc, fused=fused, muon_cls=muon_cls).values())
    params = list(model.parameters())
    t0 = time.perf_counter()
    for batch in batches:
        logits = answer_logits(model, batch.tokens, batch.answer_pos)
        loss = F.cross_entropy(logits, batch.answer)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip, foreach=True)
        for opt in opts:
            opt.step()
    if batches[0].tokens.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def trainer_loop(trainer, n):
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.train_step(trainer.train_batch[trainer.batch_indices(trainer.step)])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="composition-small")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_run_config(
        args.config, [f"train.device={args.device}", "train.progress=false", "train.tensorboard=false"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp)
        model0 = copy.deepcopy(trainer.model)
        batches = [trainer.train_batch[trainer.batch_indices(s)] for s in range(args.steps)]
        tc = cfg.train
        muon = tc.optimizer == "muon"
        # the trainer's iteration dtype for its largest hidden matrix, and the other one
        hidden = [p for g in trainer.muon.param_groups for p in g["params"]] if muon else []
        auto = trainer.muon.dtype_for(max(hidden, key=lambda p: min(p.shape))) if hidden else torch.float32
        other = "float32" if auto == torch.bfloat16 else "bfloat16"
        loops = {
            "plain": lambda bs: plain_loop(copy.deepcopy(model0), bs, tc),
            "hf": lambda bs: plain_loop(with_hf_default_kernels(model0), bs, tc, fused=False),
        }
        if muon:
            loops["adamw"] = lambda bs: plain_loop(
                copy.deepcopy(model0), bs, dataclasses.replace(tc, optimizer="adamw")
            )
            loops["other_ns"] = lambda bs: plain_loop(
                copy.deepcopy(model0), bs, dataclasses.replace(tc, muon_ns_dtype=other)
            )
            loops["torch_muon"] = lambda bs: plain_loop(
                copy.deepcopy(model0), bs[: max(1, len(bs) // 10)], tc, muon_cls=torch.optim.Muon
            )
        n_steps = {key: (max(1, args.steps // 10) if key == "torch_muon" else args.steps) for key in loops}
        # warm up every path once
        trainer_loop(trainer, 5)
        for loop in loops.values():
            loop(batches[:5])
        times: dict[str, list[float]] = {"trainer": [], **{key: [] for key in loops}}
        for _ in range(args.repeats):
            trainer.step = 0
            times["trainer"].append(trainer_loop(trainer, args.steps))
            for key, loop in loops.items():
                times[key].append(loop(batches))
    ms = {key: 1000 * statistics.median(t) / n_steps.get(key, args.steps) for key, t in times.items()}
    print(f"machine: {describe(trainer.device)}")
    print(
        f"config: {args.config} (d_model {cfg.model.d_model}, {cfg.model.n_layers} layers, batch {trainer.batch_size}, "
        f"optimizer {tc.optimizer}), {args.steps} steps x {args.repeats} repeats, median\n"
    )
    opt_name = f"Muon ({str(auto).removeprefix('torch.')} Newton-Schulz) + AdamW" if muon else "AdamW"
    rows = [
        (f"plain PyTorch ({opt_name})", "plain"),
        ("grokscope Trainer.train_step", "trainer"),
        ("plain PyTorch, Hugging Face defaults (SDPA, gelu_new, foreach AdamW)", "hf"),
    ]
    if muon:
        rows += [
            ("plain PyTorch, AdamW for every parameter", "adamw"),
            (f"plain PyTorch, Muon with {other} Newton-Schulz", "other_ns"),
            ("plain PyTorch, torch.optim.Muon (bfloat16 Newton-Schulz)", "torch_muon"),
        ]
    print("| loop | ms / step | ratio |")
    print("|---|---|---|")
    for label, key in rows:
        print(f"| {label} | {ms[key]:.2f} | {ms[key] / ms['plain']:.3f} |")


if __name__ == "__main__":
    main()
