"""The per-trial analysis of the looped and k-hop-depth experiments: more loops, deeper chains.

For a trained trial it scores, on the final checkpoint:

* ``test_id_T{t}`` / ``test_ood_T{t}``: the test splits with the block stack applied ``t``
  times, ``t`` = twice the training loops (looped models only): does thinking longer help?
* ``id_d{D}`` / ``ood_d{D}``: chains of ``D`` hops deeper than the test split, up to the
  deepest prompt the model has positions for (``model.n_ctx``), at the training loops, and
  ``id_d{D}_T{t}`` with more loops (looped models only): depth extrapolation.
* ``held_d{D}`` (and ``held_d{D}_T{t}``): held-out all-ID chains of each trained depth ``D``
  when the test split is deeper than training (k-hop): does the model generalise at the
  depths it trains on, the baseline for the deeper ones?
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loop_depth(run_dir: str | Path) -> dict[str, Any]:
    """More loops and deeper chains on the trial's final model (keys above; empty OOD sets give None)."""
    import torch

    from interp.data import CompositionConfig, depth_test, heldout_chains
    from interp.models import context_size, loop_accuracy
    from interp.runs import load_checkpoint

    torch.manual_seed(0)
    run = load_checkpoint(run_dir, device="cpu")
    cfg, ds = run.config, run.dataset
    trained = cfg.model.n_loops
    loops = [trained, 2 * trained] if trained > 1 else [trained]
    out: dict[str, Any] = {}

    def score(name: str, examples: list, more_only: bool = False) -> None:
        scores = loop_accuracy(run.model, examples, ds.vocab, loops[1:] if more_only else loops) if examples else {}
        for t in loops[1:] if more_only else loops:
            key = name if t == trained else f"{name}_T{t}"
            out[key] = scores.get(t)

    for split in ("test_id", "test_ood"):
        score(split, ds.examples(split), more_only=True)
    if isinstance(cfg.data, CompositionConfig) and cfg.data.probe_hops > cfg.data.n_hops:
        for depth in range(cfg.data.min_hops or cfg.data.n_hops, cfg.data.n_hops + 1):
            score(f"held_d{depth}", heldout_chains(ds, depth, seed=cfg.data.seed))
    if isinstance(cfg.data, CompositionConfig):
        deepest = context_size(run.model) - 3  # head, relations, answer, </a>
        for depth in range(cfg.data.probe_hops + 1, deepest + 1):
            sets = depth_test(ds, depth, seed=cfg.data.seed)
            score(f"id_d{depth}", sets["id"])
            score(f"ood_d{depth}", sets["ood"])
    return out


__all__ = ["loop_depth"]
