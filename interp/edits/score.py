"""Scoring a knowledge edit: does the fact change, does the change propagate, does the rest stay.

For an edited copy of a model (see :mod:`interp.edits.methods`):

* **edit accuracy**: the edited prompt ``(h, r)`` answers the new target;
* **propagation**: of the two-hop facts whose answer the edit changes by the graph
  (:func:`~interp.edits.facts.dependent_facts`), among those the original model answered
  correctly, the fraction that now answer the new value; reported together and per hop
  (the edited fact as first hop, as second hop);
* **locality**: of atomic and two-hop facts that do not use the edited fact (the ID atomic
  and ID test probes), the fraction whose prediction is the original model's;
* **spurious second hop** (the control for second-hop propagation): of the ID two-hop facts
  that end in the edited relation through another bridge
  (:func:`~interp.edits.facts.control_facts`) and that the original model answered
  correctly, the fraction that now answer the new target. Second-hop propagation well above
  it is the edit travelling through the bridge, not a general pull towards the new target.

:func:`edit_suite` draws several ID facts to edit, applies each method to each, and
averages the scores per method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from interp.configs import check_range
from interp.data import KGDataset
from interp.edits.facts import (
    EditError,
    FactEdit,
    composition_graph,
    control_facts,
    dependent_facts,
    independent_facts,
    make_edit,
)
from interp.edits.methods import finetune_edit, key_covariance, prompt_batch, rome_edit
from interp.models import CausalLM
from interp.train.objective import answer_logits

EditMethod = Callable[[CausalLM, KGDataset, FactEdit], CausalLM]


@dataclass(frozen=True)
class EditScore:
    """The scores of one edit (NaN where there was nothing to score)."""

    edit_accuracy: float
    propagation: float
    propagation_first: float
    propagation_second: float
    locality_atomic: float
    locality_inferred: float
    spurious_second: float
    n_dependent: int
    n_control: int


@torch.no_grad()
def predictions(model: CausalLM, dataset: KGDataset, prompts: Sequence[tuple[str, ...]]) -> list[str]:
    """The model's greedy answer token for each prompt."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    batch = prompt_batch(dataset, [(p, "</a>") for p in prompts], device)
    was = model.training
    model.eval()
    ids = answer_logits(model, batch.tokens, batch.answer_pos).argmax(-1).tolist()
    model.train(was)
    return dataset.vocab.decode(ids)


def _mean(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if len(flags) else math.nan


def _before_after(
    original: CausalLM, edited: CausalLM, dataset: KGDataset, prompts: Sequence[tuple[str, ...]]
) -> list[tuple[str, str]]:
    """The original's and the edited model's answer to each prompt."""
    return list(zip(predictions(original, dataset, prompts), predictions(edited, dataset, prompts)))


def score_edit(original: CausalLM, edited: CausalLM, dataset: KGDataset, edit: FactEdit) -> EditScore:
    """Edit accuracy, propagation (all, first hop, second hop), locality and the second-hop control of ``edited``."""
    deps = [d for d in dependent_facts(dataset, edit) if d.changes and d.in_distribution]
    answers = _before_after(original, edited, dataset, [d.prompt for d in deps])
    known = [(d, a) for d, (b, a) in zip(deps, answers) if b == d.old]  # the original got it right
    hit = {
        hop: [a == d.new for d, a in known if d.hop in hops]
        for hop, hops in (
            ("all", ("first", "second", "both")),
            ("first", ("first", "both")),
            ("second", ("second", "both")),
        )
    }
    local = {}
    for split in ("id_atomic", "test_id"):
        prompts = [p for p, _ in independent_facts(dataset, edit, split)]
        local[split] = _mean([b == a for b, a in _before_after(original, edited, dataset, prompts)])
    controls = control_facts(dataset, edit)
    answers = _before_after(original, edited, dataset, [p for p, _ in controls])
    ctrl_known = [a for (_, t), (b, a) in zip(controls, answers) if b == t]
    return EditScore(
        edit_accuracy=float(predictions(edited, dataset, [edit.prompt])[0] == edit.new),
        propagation=_mean(hit["all"]),
        propagation_first=_mean(hit["first"]),
        propagation_second=_mean(hit["second"]),
        locality_atomic=local["id_atomic"],
        locality_inferred=local["test_id"],
        spurious_second=_mean([a == edit.new for a in ctrl_known]),
        n_dependent=len(known),
        n_control=len(ctrl_known),
    )


def sample_edits(model: CausalLM, dataset: KGDataset, n: int, seed: int = 0) -> list[FactEdit]:
    """``n`` edits of ID facts the model answers correctly and that both hops of two-hop facts use.

    Each new target is a random other entity that has at least one relation in common with the
    old one (so that some first-hop facts get a defined new answer).
    """
    check_range("n_edits", n, low=1)
    kg = composition_graph(dataset)
    rng = np.random.default_rng(seed)
    facts = kg.id_facts
    tails = sorted({t for _, _, t in facts})
    order = rng.permutation(len(facts)).tolist()
    out: list[FactEdit] = []
    for i in order:
        h, r, t = facts[i]
        rels = set(kg.relations_of(t))
        options = [e for e in tails if e != t and rels & set(kg.relations_of(e))]
        if not options:
            continue
        edit = make_edit(dataset, h, r, options[int(rng.integers(len(options)))])
        deps = [d for d in dependent_facts(dataset, edit) if d.changes and d.in_distribution]
        if {d.hop for d in deps} >= {"first", "second"} and predictions(model, dataset, [edit.prompt])[0] == t:
            out.append(edit)
        if len(out) == n:
            return out
    raise EditError(f"only {len(out)} facts of this graph qualify for editing; ask for at most {len(out)} edits")


def default_methods(rome_layer: int = 0) -> dict[str, EditMethod]:
    """Fine-tuning without and with the retain term, and ROME at ``rome_layer`` (its key covariance computed once)."""
    cache: dict[int, Tensor] = {}

    def rome(m: CausalLM, d: KGDataset, e: FactEdit) -> CausalLM:
        key = id(m)
        if key not in cache:
            cache[key] = key_covariance(m, d, rome_layer)
        return rome_edit(m, d, e, layer=rome_layer, covariance=cache[key])

    return {
        "finetune": lambda m, d, e: finetune_edit(m, d, e),
        "finetune_retain": lambda m, d, e: finetune_edit(m, d, e, retain_weight=1.0),
        "rome": rome,
    }


def edit_suite(
    model: CausalLM,
    dataset: KGDataset,
    *,
    n_edits: int = 10,
    methods: dict[str, EditMethod] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Mean scores per method over ``n_edits`` sampled edits: keys ``METHOD_edit_accuracy`` ..."""
    methods = methods if methods is not None else default_methods()
    edits = sample_edits(model, dataset, n_edits, seed)
    out: dict[str, float] = {"n_edits": float(len(edits))}
    for name, method in methods.items():
        scores = [asdict(score_edit(model, method(model, dataset, e), dataset, e)) for e in edits]
        for key in scores[0]:
            values = [s[key] for s in scores if not math.isnan(s[key])]
            out[f"{name}_{key}"] = float(np.mean(values)) if values else math.nan
    return out


__all__ = ["EditMethod", "EditScore", "default_methods", "edit_suite", "predictions", "sample_edits", "score_edit"]
