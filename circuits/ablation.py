"""Running a circuit alone: ablate every edge outside it, then measure faithfulness and completeness.

A circuit ``C`` is a set of edges. To run it, every edge ``u -> v`` *outside* ``C`` is
ablated: reader ``v`` sees, instead of ``u``'s output in this run, ``u``'s *reference*
output. Every reader input is rebuilt as

    input_v  -  sum over ablated edges u -> v of (out_u(run) - out_u(reference))

during the forward (the writers' outputs are read as the run produces them, so ablations
upstream propagate). The reference is the ablation:

* ``mean``      the writer's mean output over reference prompts (the task's own clean
                prompts by default), per position: :func:`interp.intervene.mean_ablation`;
* ``resample``  the writer's output on another, randomly drawn, reference prompt:
                :func:`interp.intervene.resample_ablation`;
* ``corrupt``   the writer's output on the paired corrupt prompt (EAP's setting);
* ``zero``      nothing.

With every edge kept nothing changes: the run is the model. With no edge kept every
reader sees the reference: under ``corrupt`` ablation the run *is* the corrupt run, under
``resample`` it is the run on the drawn prompt. The behaviour a circuit keeps is
normalised between these two ends,

    faithfulness(C) = (m(C) - m(empty)) / (m(model) - m(empty)),

1 for the whole model and 0 for the empty circuit by construction; ``m`` is the task's
metric averaged over its prompts (:func:`interp.metrics.run_metric`). :class:`Faithfulness`
is the one routine that computes it: :func:`evaluate_circuit`, :func:`faithfulness_curve`
and :func:`circuits.discover.find_circuit` all score circuits through it. *Completeness*
asks the converse: how much of the behaviour disappears when only the circuit's edges are
ablated, ``completeness(C) = 1 - faithfulness(complement of C)``. A good circuit has both
near 1.

Every forward goes through :func:`interp.intervene.run_with_interventions`: the writer
outputs are engine :class:`~interp.intervene.Read` s and each ablated reader is one
:class:`EdgeAblation` intervention, so ablations compose with any other intervention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.edges import edge_hooks, reader_hook, writer_hooks, writer_outputs
from circuits.graph import CircuitError, CircuitGraph, ModelGraph
from circuits.tasks import Task
from interp.intervene import (
    Intervention,
    Read,
    answer_positions,
    as_bridge,
    check_same_shape,
    check_tokens,
    mean_ablation,
    resample_ablation,
    run_with_interventions,
)
from interp.metrics import Metric, run_metric
from interp.models.protocol import HookedModel

Ablation = Literal["mean", "resample", "corrupt", "zero"]
ABLATIONS: tuple[str, ...] = ("mean", "resample", "corrupt", "zero")


# ------------------------------------------------------------------------- references
def ablation_reference(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    ablation: Ablation,
    *,
    corrupt: Int[Tensor, "batch pos"] | None = None,
    reference: Int[Tensor, "ref pos"] | None = None,
    seed: int | torch.Generator | None = 0,
) -> Float[Tensor, "#batch pos writer d_model"]:
    """The reference output of every writer for each prompt of ``tokens`` (a batch-1 tensor broadcasts).

    ``reference`` prompts (default: ``tokens``) are averaged (``mean``) or drawn from
    (``resample``; it must then hold one prompt per row of ``tokens``); ``corrupt`` prompts
    are paired with ``tokens`` row by row.
    """
    bridge = as_bridge(model)
    tokens = check_tokens(bridge, tokens)
    if ablation not in ABLATIONS:
        raise CircuitError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    if ablation == "corrupt":
        if corrupt is None:
            raise CircuitError("corrupt ablation needs the corrupt prompts paired with the clean ones")
        check_same_shape(tokens, check_tokens(bridge, corrupt, "corrupt"), "tokens", "corrupt")
        return writer_outputs(bridge, corrupt)
    if ablation == "zero":
        space = ModelGraph.of(bridge, tokens.shape[1])
        return torch.zeros(
            1, tokens.shape[1], space.n_writers, int(bridge.cfg.d_model), dtype=bridge.W_E.dtype, device=tokens.device
        )
    ref = tokens if reference is None else check_tokens(bridge, reference, "reference")
    if ref.shape[1] != tokens.shape[1]:
        raise CircuitError(f"reference prompts have {ref.shape[1]} positions but the prompts have {tokens.shape[1]}")
    acts = writer_outputs(bridge, ref)
    if ablation == "mean":
        return mean_ablation("writers", acts).value
    if ref.shape[0] != tokens.shape[0]:
        raise CircuitError(
            f"resample ablation draws one reference prompt per prompt: give {tokens.shape[0]} reference prompts, "
            f"not {ref.shape[0]}"
        )
    return resample_ablation("writers", acts, seed=seed).value


# ------------------------------------------------------------------ the interventions
@dataclass(eq=False, repr=False)
class EdgeAblation(Intervention):
    """At one reader hook: replace the contributions of ablated writers by their reference outputs.

    ``store`` holds the writer outputs of the current run (filled by :class:`Read` s that
    fire before this hook); ``writers`` lists the hooks of the writers upstream of this
    reader in writer order, ``reference`` their reference outputs (``batch pos writer
    d_model``, writer axis restricted likewise) and ``ablate`` which of their edges into
    this reader are ablated (``pos writer``, or ``pos writer head_index`` for per-head q/k/v
    inputs).
    """

    store: dict[str, Tensor] = field(default_factory=dict)
    writers: list[str] = field(default_factory=list)
    reference: Tensor = field(default_factory=lambda: torch.zeros(()))
    ablate: Tensor = field(default_factory=lambda: torch.zeros(()))

    def edit(self, act: Tensor) -> Tensor:
        """The reader's input ``act`` (``batch pos [head_index] d_model``) less each ablated writer's output
        minus its reference."""
        parts = [self.store[h] if self.store[h].ndim == 4 else self.store[h][:, :, None] for h in self.writers]
        current = torch.cat(parts, dim=2)  # batch pos writer d_model
        diff = current - self.reference.to(current)
        mask = self.ablate.to(diff)
        if act.ndim == 4:
            fix = einops.einsum(
                diff, mask, "batch pos writer d_model, pos writer head_index -> batch pos head_index d_model"
            )
        else:
            fix = einops.einsum(diff, mask, "batch pos writer d_model, pos writer -> batch pos d_model")
        return act - fix.to(act)

    def take(self, rows: Int[Tensor, " row"]) -> EdgeAblation:
        """The same ablation for the batch rows ``rows`` (a per-prompt reference is indexed too)."""
        ref = self.reference if self.reference.shape[0] == 1 else self.reference[rows]
        return replace(self, reference=ref)


def _upstream(space: ModelGraph, hook: str) -> tuple[list[str], int]:
    """The writer hooks feeding a reader hook, and how many writers they hold (a writer-axis prefix)."""
    hooks = writer_hooks(space.n_layers)
    layer, H = int(hook.split(".")[1]), space.n_heads
    if ".attn.hook_" in hook:  # q/k/v inputs of layer L: the embedding and layers < L
        return hooks[: 1 + 2 * layer], 1 + layer * (H + 1)
    if hook.endswith("hook_mlp_in"):  # also the heads of its own layer
        return hooks[: 2 + 2 * layer], 1 + layer * (H + 1) + H
    return hooks, space.n_writers  # the final residual: every writer


def circuit_interventions(
    space: ModelGraph,
    keep: Bool[Tensor, "pos writer reader"],
    reference: Float[Tensor, "#batch pos writer d_model"],
) -> list[Intervention]:
    """The interventions that run only the edges of ``keep``, the others ablated to ``reference``."""
    ablate = space.allowed & ~keep.to(space.allowed.device)
    if not bool(ablate.any()):
        return []
    store: dict[str, Tensor] = {}
    out: list[Intervention] = [Read(h, store=store) for h in writer_hooks(space.n_layers)]
    by_hook: dict[str, list[int]] = {}
    for r in range(space.n_readers):
        by_hook.setdefault(reader_hook(space, r)[0], []).append(r)
    for hook, readers in by_hook.items():
        writers, n_w = _upstream(space, hook)
        mask = ablate[:, :n_w, readers]  # pos writer head_index (q/k/v) or pos writer 1
        if not bool(mask.any()):
            continue
        if len(readers) == 1:
            mask = mask[..., 0]
        out.append(EdgeAblation(hook, store=store, writers=writers, reference=reference[:, :, :n_w], ablate=mask))
    return out


def _check_fits(space: ModelGraph, circuit: CircuitGraph) -> None:
    if (space.n_layers, space.n_heads, space.n_pos) != (circuit.n_layers, circuit.n_heads, len(circuit.positions)):
        raise CircuitError(
            f"the circuit is for {circuit.n_layers} layers x {circuit.n_heads} heads at {len(circuit.positions)} "
            f"positions; the model and prompts give {space.n_layers} x {space.n_heads} at {space.n_pos}"
        )
    if tuple(circuit.logit_positions) != space.logit_positions:
        raise CircuitError(
            f"the circuit reads logits at {circuit.logit_positions}, the prompts at {list(space.logit_positions)}"
        )


def circuit_logits(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    circuit: CircuitGraph | Bool[Tensor, "pos writer reader"],
    reference: Float[Tensor, "#batch pos writer d_model"],
    *,
    answer_pos: Int[Tensor, " batch"] | None = None,
    interventions: Sequence[Intervention] = (),
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the answer position (default: the last) of the circuit alone, the rest ablated to ``reference``."""
    bridge = as_bridge(model)
    tokens = check_tokens(bridge, tokens)
    space = ModelGraph.of(bridge, tokens.shape[1])
    if isinstance(circuit, CircuitGraph):
        _check_fits(space, circuit)
        keep = circuit.mask()
    else:
        keep = circuit
        if tuple(keep.shape) != (space.n_pos, space.n_writers, space.n_readers):
            raise CircuitError(f"an edge mask must have shape {(space.n_pos, space.n_writers, space.n_readers)}")
    pos = answer_positions(tokens, answer_pos)
    with torch.no_grad(), edge_hooks(bridge):
        ivs = circuit_interventions(space, keep, reference)
        return run_with_interventions(bridge, tokens, [*interventions, *ivs], answer_pos=pos)


# --------------------------------------------------------------------------- evaluation
@dataclass
class CircuitEval:
    """How much of a task's behaviour a circuit keeps (faithfulness) and carries (completeness)."""

    ablation: str
    faithfulness: float
    completeness: float
    model_metric: float
    circuit_metric: float
    empty_metric: float
    complement_metric: float
    model_accuracy: float
    circuit_accuracy: float
    n_edges: int
    total_edges: int

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as a plain JSON-ready dict."""
        return asdict(self)


@dataclass
class CircuitRun:
    """One circuit run: logits at the answer position and the task's metric averaged over the prompts."""

    logits: Float[Tensor, "batch d_vocab"]
    metric: float


class Faithfulness:
    """The faithfulness of circuits of one model on one task, under one ablation: the one routine.

    Built once per (model, task, ablation, reference, seed): it draws the ablation reference;
    the two ends (the whole model and the empty circuit) are run once, when first needed.
    ``faith(circuit)`` (a :class:`CircuitGraph` or a ``pos writer reader`` mask) runs the
    circuit and returns ``(m(C) - m(empty)) / (m(model) - m(empty))``; :meth:`run` gives the
    run itself and :meth:`normalise` places any metric between the ends.
    :func:`evaluate_circuit`, :func:`faithfulness_curve` and :func:`circuits.discover.find_circuit`
    all score circuits through it.
    """

    def __init__(
        self,
        model: HookedModel,
        task: Task,
        ablation: Ablation = "mean",
        *,
        metric: Metric | None = None,
        reference: Int[Tensor, "ref pos"] | None = None,
        seed: int = 0,
    ) -> None:
        self.bridge = as_bridge(model)
        self.task = task
        self.ablation = ablation
        self.metric = task.metric() if metric is None else metric
        self.reference = ablation_reference(
            self.bridge, task.clean, ablation, corrupt=task.corrupt, reference=reference, seed=seed
        )
        self.space = ModelGraph.of(self.bridge, task.n_pos)

    def run(self, circuit: CircuitGraph | Bool[Tensor, "pos writer reader"]) -> CircuitRun:
        """The circuit alone on the task's clean prompts, every other edge ablated."""
        logits = circuit_logits(self.bridge, self.task.clean, circuit, self.reference, answer_pos=self.task.answer_pos)
        return CircuitRun(logits, float(run_metric(self.metric, logits).double().mean()))

    @cached_property
    def model_run(self) -> CircuitRun:
        """The whole model, every edge kept (computed once)."""
        return self.run(self.space.allowed)

    @cached_property
    def empty_run(self) -> CircuitRun:
        """The empty circuit, every edge ablated (computed once)."""
        return self.run(torch.zeros_like(self.space.allowed))

    def span(self) -> float:
        """``m(model) - m(empty)``; a one-line error where it is 0 (faithfulness is then undefined)."""
        span = self.model_run.metric - self.empty_run.metric
        if span == 0.0:
            raise CircuitError(
                "the model and the empty circuit give the same metric; faithfulness is undefined for this task"
            )
        return span

    def normalise(self, value: float) -> float:
        """``value`` (a mean metric) between the empty circuit (0) and the model (1)."""
        return (value - self.empty_run.metric) / self.span()

    def __call__(self, circuit: CircuitGraph | Bool[Tensor, "pos writer reader"]) -> float:
        """The faithfulness of ``circuit`` (a circuit or a ``pos writer reader`` edge mask): 0 empty, 1 model."""
        return self.normalise(self.run(circuit).metric)


def evaluate_circuit(
    model: HookedModel,
    task: Task,
    circuit: CircuitGraph,
    ablation: Ablation = "mean",
    *,
    metric: Metric | None = None,
    reference: Int[Tensor, "ref pos"] | None = None,
    seed: int = 0,
) -> CircuitEval:
    """Faithfulness and completeness of ``circuit`` on ``task`` under ``ablation`` (see the module docstring).

    ``metric`` defaults to the task's logit difference; accuracy is the clean answer's top-1 rate.
    """
    faith = Faithfulness(model, task, ablation, metric=metric, reference=reference, seed=seed)
    _check_fits(faith.space, circuit)
    keep = circuit.mask()
    runs = {
        "model": faith.model_run,
        "circuit": faith.run(keep),
        "empty": faith.empty_run,
        "complement": faith.run(faith.space.allowed & ~keep),
    }
    answer = task.clean_answer.to(runs["model"].logits.device)
    acc = {name: float((r.logits.argmax(-1) == answer).double().mean()) for name, r in runs.items()}
    return CircuitEval(
        ablation=ablation,
        faithfulness=faith.normalise(runs["circuit"].metric),
        completeness=1.0 - faith.normalise(runs["complement"].metric),
        model_metric=runs["model"].metric,
        circuit_metric=runs["circuit"].metric,
        empty_metric=runs["empty"].metric,
        complement_metric=runs["complement"].metric,
        model_accuracy=acc["model"],
        circuit_accuracy=acc["circuit"],
        n_edges=len(circuit),
        total_edges=faith.space.n_edges,
    )


def faithfulness_curve(
    model: HookedModel,
    task: Task,
    order: Sequence[Sequence[int]] | Int[Tensor, "edge 3"],
    sizes: Sequence[int],
    ablation: Ablation = "mean",
    *,
    metric: Metric | None = None,
    seed: int = 0,
) -> list[float]:
    """Faithfulness of the circuits made of the first ``k`` edges of ``order`` (``pos writer reader`` index
    triples, strongest first), for each ``k`` in ``sizes``: one ablated forward per size."""
    faith = Faithfulness(model, task, ablation, metric=metric, seed=seed)
    idx = torch.as_tensor(order, dtype=torch.long).reshape(-1, 3)
    out = []
    for k in sizes:
        mask = torch.zeros_like(faith.space.allowed)
        sel = idx[:k]
        mask[sel[:, 0], sel[:, 1], sel[:, 2]] = True
        out.append(faith(mask))
    return out
