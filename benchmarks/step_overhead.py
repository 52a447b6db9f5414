"""The trainer's step time against a minimal plain-PyTorch loop on the same model and batches.

All loops do the same work per step: forward of the answer-only loss, backward, gradient
clipping, AdamW. The ratio (trainer / plain) shows the trainer's own overhead. A third row
runs the plain loop on the same GPT-2 built with Hugging Face's defaults (SDPA attention,
the composed "gelu_new" activation, foreach AdamW): what ``build_model`` and the trainer's
fused AdamW gain per step.

    python benchmarks/step_overhead.py [--config composition-small] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _machine import describe

from interp.models.gpt2 import with_hf_default_kernels
from interp.train import Trainer, answer_logits, load_run_config


def plain_loop(model, batches, lr, wd, betas, clip, *, fused=True):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    impl = {"fused": True} if fused else {"foreach": True}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=betas, **impl)
    params = list(model.parameters())
    t0 = time.perf_counter()
    for batch in batches:
        logits = answer_logits(model, batch.tokens, batch.answer_pos)
        loss = F.cross_entropy(logits, batch.answer)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
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
    cfg = load_run_config(args.config, [f"train.device={args.device}", "train.progress=false", "train.tensorboard=false"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp)
        model0 = copy.deepcopy(trainer.model)
        batches = [trainer.train_batch[trainer.batch_indices(s)] for s in range(args.steps)]
        tc = cfg.train
        hyper = (tc.lr, tc.weight_decay, (tc.beta1, tc.beta2), tc.grad_clip)
        # warm up every path once
        trainer_loop(trainer, 5)
        plain_loop(copy.deepcopy(model0), batches[:5], *hyper)
        plain_loop(with_hf_default_kernels(model0), batches[:5], *hyper, fused=False)
        t_trainer, t_plain, t_hf = [], [], []
        for _ in range(args.repeats):
            trainer.step = 0
            t_trainer.append(trainer_loop(trainer, args.steps))
            t_plain.append(plain_loop(copy.deepcopy(model0), batches, *hyper))
            t_hf.append(plain_loop(with_hf_default_kernels(model0), batches, *hyper, fused=False))
    ms_tr = 1000 * statistics.median(t_trainer) / args.steps
    ms_pl = 1000 * statistics.median(t_plain) / args.steps
    ms_hf = 1000 * statistics.median(t_hf) / args.steps
    print(f"machine: {describe(trainer.device)}")
    print(f"config: {args.config} (d_model {cfg.model.d_model}, {cfg.model.n_layers} layers, batch {trainer.batch_size}),"
          f" {args.steps} steps x {args.repeats} repeats, median\n")
    print("| loop | ms / step | ratio |")
    print("|---|---|---|")
    print(f"| plain PyTorch | {ms_pl:.2f} | 1.00 |")
    print(f"| grokscope Trainer.train_step | {ms_tr:.2f} | {ms_tr / ms_pl:.3f} |")
    print(f"| plain PyTorch, Hugging Face defaults (SDPA, gelu_new, foreach AdamW) | {ms_hf:.2f} | {ms_hf / ms_pl:.3f} |")


if __name__ == "__main__":
    main()
