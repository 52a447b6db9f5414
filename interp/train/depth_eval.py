"""Depth scores at every evaluation: held-out chains of the trained depths, deeper chains,
other loop counts and adaptive halting.

* ``held_d{D}``: held-out all-ID chains of each trained depth ``D`` (k-hop data with
  ``data.min_hops``; :func:`~interp.data.heldout_chains`): does the model generalise at the
  depths it trains on? The depth curriculum reads them.
* ``id_d{D}``: all-ID chains of each depth in ``train.eval_depths``, deeper than training
  (:func:`~interp.data.depth_test`).
* ``{split}_T{T}``: ``test_id``, ``test_ood``, the ``held_d{D}`` and the ``id_d{D}`` chains with
  the block stack applied ``T`` times, for each ``T`` in ``train.eval_loops``.
* ``{split}_halt`` and ``{split}_halt_iter``: the same prompts under adaptive halting
  (:func:`~interp.models.halting_predictions`), and the mean iteration they stopped at.
"""

from __future__ import annotations

import torch

from interp.data import CompositionConfig, KGDataset, TokenBatch, depth_test, heldout_chains, make_batch
from interp.models import CausalLM, halt, iteration_logits
from interp.train.config import RunConfig

DEEP_SPLITS = ("test_id", "test_ood")


def depth_batches(config: RunConfig, dataset: KGDataset, device: torch.device) -> dict[str, TokenBatch]:
    """The ``held_d{D}`` and ``id_d{D}`` batches a run scores (empty for other data)."""
    data = config.data
    if not isinstance(data, CompositionConfig) or dataset.config != data:
        return {}
    out = {}
    if data.min_hops is not None:
        for depth in range(data.min_hops, data.n_hops + 1):
            out[f"held_d{depth}"] = make_batch(heldout_chains(dataset, depth, seed=data.seed), dataset.vocab, device)
    for depth in config.train.eval_depths:
        out[f"id_d{depth}"] = make_batch(depth_test(dataset, depth, seed=data.seed)["id"], dataset.vocab, device)
    return out


@torch.no_grad()
def depth_scores(model: CausalLM, config: RunConfig, batches: dict[str, TokenBatch]) -> dict[str, float]:
    """The loop-count and halting scores of the test splits and deeper chains in ``batches``."""
    tc = config.train
    if not tc.eval_loops and not tc.eval_halting:
        return {}
    out: dict[str, float] = {}
    for name, batch in batches.items():
        if not (name in DEEP_SPLITS or name.startswith(("id_d", "held_d"))) or len(batch) == 0:
            continue
        # one read of every iteration serves both: the loop counts asked for, and halting's
        most = max([*tc.eval_loops, tc.halt_max_loops if tc.eval_halting else 1])
        logits = iteration_logits(model, batch.tokens, batch.answer_pos, most)
        for loops in tc.eval_loops:
            out[f"{name}_T{loops}"] = float((logits[loops - 1].argmax(-1) == batch.answer).float().mean())
        if tc.eval_halting:
            halted = halt(logits[: tc.halt_max_loops], kl=tc.halt_kl)
            out[f"{name}_halt"] = float((halted.prediction == batch.answer).float().mean())
            out[f"{name}_halt_iter"] = float(halted.iteration.float().mean())
    return out


__all__ = ["DEEP_SPLITS", "depth_batches", "depth_scores"]
