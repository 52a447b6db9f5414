"""Does hop ``k`` happen at iteration ``k``? The logit lens per loop iteration of a looped model.

A ``D``-hop prompt ``(head, r_1, .., r_D)`` names ``D - 1`` bridge entities and the answer:
hop ``k`` lands the ``k``-th of them (the answer for ``k = D``), and the model can hold it at
the position of ``r_k``, the first token that determines it. :func:`hop_iterations` reads that
position through the final normalisation and unembedding at the end of every iteration
(:func:`~interp.models.iteration_logits`) and records, per prompt and hop, the first
iteration at which the hop's entity is top-1 (``first``) and the iteration from which it stays
top-1 to the last one (``settled``); 0 where it never is. A model that runs one hop per
iteration settles hop ``k`` at iteration ``k``::

    from interp.loop_lens import hop_iterations
    hops = hop_iterations(run.model, heldout_chains(ds, 4), ds.vocab, loops=8)
    hops.table()   # per hop: prompts, reached, mean / median settled iteration, mean first iteration
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data import Example, Vocab, make_batch
from interp.errors import ConfigError
from interp.models import CausalLM, iteration_logits, n_loops


@dataclass
class HopIterations:
    """Per prompt and hop (1-based): the first iteration the hop's entity is top-1 at ``r_k``, and the
    iteration from which it stays top-1 (0: never)."""

    depth: int
    loops: int
    first: Int[Tensor, "prompt hop"]
    settled: Int[Tensor, "prompt hop"]

    def table(self) -> list[dict[str, Any]]:
        """One row per hop: prompts, the share that settle, the mean and median settled iteration (of
        those), and the mean first iteration."""
        rows = []
        for k in range(1, self.depth + 1):
            settled, first = self.settled[:, k - 1], self.first[:, k - 1]
            done = settled > 0
            rows.append(
                {
                    "hop": k,
                    "prompts": int(len(settled)),
                    "reached": float(done.float().mean()),
                    "settled_mean": float(settled[done].float().mean()) if bool(done.any()) else None,
                    "settled_median": int(settled[done].median()) if bool(done.any()) else None,
                    "first_mean": float(first[first > 0].float().mean()) if bool((first > 0).any()) else None,
                }
            )
        return rows


def hop_iterations(
    model: CausalLM, examples: Sequence[Example], vocab: Vocab, *, loops: int | None = None
) -> HopIterations:
    """The lens per iteration at each hop's position of ``examples`` (all of one depth), over ``loops``
    iterations (default: the model's own)."""
    if not examples:
        raise ConfigError("no examples to read; give chains of one depth")
    depths = {len(ex.input_tokens) - 1 for ex in examples}
    if len(depths) != 1:
        raise ConfigError(f"the examples mix depths {sorted(depths)}; give chains of one depth")
    depth = depths.pop()
    if any(not (ex.provenance or {}).get("bridges") and depth > 1 for ex in examples):
        raise ConfigError("the examples carry no bridge entities (provenance['bridges']); give composition chains")
    loops = n_loops(model) if loops is None else loops
    device = next(model.parameters()).device
    batch = make_batch(list(examples), vocab, device)
    targets = torch.tensor(
        [vocab.encode(list(ex.provenance.get("bridges", [])) + [ex.answer]) for ex in examples], device=device
    )  # (prompt, hop): the entity hop k lands
    positions = torch.arange(1, depth + 1, device=device).expand(len(examples), depth)  # r_k sits at position k
    logits = iteration_logits(model, batch.tokens, positions, loops)  # (iteration, prompt, hop, d_vocab)
    hit = logits.argmax(-1) == targets  # (iteration, prompt, hop)
    iteration = torch.arange(1, loops + 1, device=device).view(-1, 1, 1)
    first = torch.where(hit.any(0), (hit.float().argmax(0) + 1), 0)
    # settled: hit at every iteration from t on; the last miss + 1, if the last iteration is a hit
    last_miss = torch.where(~hit, iteration, 0).amax(0)
    settled = torch.where(hit[-1], last_miss + 1, 0)
    return HopIterations(depth=depth, loops=loops, first=first.cpu(), settled=settled.cpu())


__all__ = ["HopIterations", "hop_iterations"]
