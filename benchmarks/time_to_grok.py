"""Steps and wall time to grok: the fast default recipe against slower references, in one run.

Recipes, all on the same small knowledge graph (the ``composition-small`` data preset):

* ``default``            the ``composition-small`` preset as shipped (Muon);
* ``default, AdamW``     the ``composition-small-adamw`` preset: the same model and schedule
                         shape with AdamW everywhere and GPT-2's init scale, the previous
                         default (it needs a longer schedule: 6,000 steps);
* ``default, no accel``  the default's model, data and schedule with the acceleration options
                         off (AdamW, GPT-2's init scale, full unembedding at every position,
                         loss on ``</a>`` too, no Grokfast);
* ``paper recipe``       the paper's hyper-parameters (8 layers, d_model 768, AdamW 1e-4,
                         batch 512, 2,000 warm-up steps, constant lr);
* ``comparison default`` the ``comparison-tiny`` preset (another task: no speed-up column),
                         trained until test-ID *and* test-OOD reach the threshold;
* ``paper graph``        the ``composition-paper-fast`` preset: the paper's full composition
                         graph (2,000 entities, 200 relations, out-degree 20, 5% OOD, phi 18)
                         on its own schedule of up to an hour (``--only "paper graph"``).

The defaults run their own schedule (``max_steps``, cosine decay); the references are stopped
at ``--budget`` seconds each.

Grokking = the first evaluation with test-ID accuracy >= the threshold (99%; for the
comparison default, test-ID and test-OOD both: its ``train.grok_splits``). A recipe that
does not grok within its budget is reported with where it got to, and the speed-up over it
is a lower bound (">=").

    python benchmarks/time_to_grok.py [--budget 900] [--seed 0] [--only "paper graph"] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _machine import describe

from interp.models import default_device
from interp.runs import read_metrics
from interp.train import load_run_config, train

# name: (preset, overrides, whether it runs its own schedule to the end; the others are
# references stopped at --budget)
RECIPES = {
    "default": ("composition-small", [], True),
    "default, AdamW": ("composition-small-adamw", [], True),
    "default, no accel": (
        "composition-small",
        [
            "train.optimizer=adamw",
            "model.init_range=0.02",
            "train.answer_only_unembed=false",
            "train.loss_on_eos=true",
            "train.grokfast=none",
        ],
        False,
    ),
    # evaluations (where the budget is checked) every 25 steps: a step takes seconds here
    "paper recipe": ("composition-small-paper", ["train.eval_every=25"], False),
    # the comparison default (the speed-up column does not apply): groks ID and OOD
    "comparison default": ("comparison-tiny", [], True),
    # the paper's own graph (2,000 entities, 40,000 atomic facts, phi 18): an hour's budget;
    # run it alone with --only "paper graph"
    "paper graph": ("composition-paper-fast", [], True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=900.0, help="wall-time budget of each reference recipe (seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=None, help="run only these recipes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's own)")
    ap.add_argument(
        "--keep",
        default=None,
        metavar="DIR",
        help="keep each run (config, metrics, final checkpoint) in DIR/<recipe> instead of a temporary folder",
    )
    args = ap.parse_args()
    rows = []
    histories: dict[str, list[dict]] = {}
    for name, (preset, overrides, own_schedule) in RECIPES.items():
        if args.only and name not in args.only:
            continue
        cfg = load_run_config(
            preset,
            overrides
            + [
                f"train.seed={args.seed}",
                # the defaults run their own schedule to the end; references get the budget
                *([] if own_schedule else [f"train.max_seconds={args.budget}", "train.max_steps=1000000"]),
                "train.progress=false",
                "train.tensorboard=false",
                f"train.device={args.device}",
                *([f"train.threads={args.threads}"] if args.threads else []),
                # checkpoints are not what is measured here
                "train.checkpoint_every=1000000",
                "train.checkpoint_sparse_every=1000000",
                "train.checkpoint_dense_until=0",
            ],
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.keep) / name.replace(" ", "-").replace(",", "") if args.keep else Path(tmp)
            result = train(cfg, out)
            history = read_metrics(out)
            seconds = next((r["seconds"] for r in history if r["step"] == result.grokked_step), None)
        rows.append((name, cfg, result, seconds))
        histories[name] = history
        status = f"grokked at step {result.grokked_step} in {seconds:.0f}s" if result.grokked else "did not grok"
        print(f"[{name}] {status}; last: step {result.step}, test_id {result.metrics.get('test_id'):.3f}", flush=True)

    print(
        f"\nmachine: {describe(default_device() if args.device == 'auto' else args.device)}; budget {args.budget:.0f}s per recipe, "
        f"seed {args.seed}, threads {args.threads or 'torch default'}\n"
    )
    ref = next((r for r in rows if r[0] == "default"), None)
    print(
        "| recipe | model | steps to memorize | steps to grok | seconds to grok | final test_id | final test_ood | default's speed-up (steps, seconds) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, cfg, result, seconds in rows:
        m = cfg.model
        steps = result.grokked_step
        if name == "paper graph":
            speed = "n/a (the paper's graph, 20x the facts)"
        elif name.startswith("comparison"):
            id_step = next((r["step"] for r in histories[name] if r["test_id"] >= cfg.train.grok_threshold), None)
            speed = f"n/a (other task); test-ID alone passed at step {id_step or 'never'}"
        elif ref is not None and ref[2].grokked and name != "default":
            ref_steps, ref_secs = ref[2].grokked_step, ref[3]
            if result.grokked:
                speed = f"{steps / ref_steps:.1f}x, {seconds / ref_secs:.1f}x"
            else:  # no ratio to give: compare where both runs stood at the same step
                same = next((r for r in histories["default"] if r["step"] >= result.step), None)
                if same is not None:
                    speed = (
                        f"not grokked; the default at step {same['step']}: test_id {same['test_id']:.3f} "
                        f"({same['seconds']:.0f}s)"
                    )
                else:  # this run went past the default's last step: where it stood when the default grokked
                    there = next((r for r in histories[name] if r["step"] >= ref_steps), None)
                    speed = (
                        f"> {result.step / ref_steps:.1f}x, > {result.seconds / ref_secs:.1f}x; at step {there['step']} "
                        f"(the default grokked at {ref_steps}): test_id {there['test_id']:.3f}"
                    )
        else:
            speed = "1x" if name == "default" else "n/a"
        print(
            f"| {name} | {m.n_layers}L d{m.d_model} mlp{m.d_mlp or 4 * m.d_model} | {result.memorized_step or 'not within budget'} | "
            f"{steps or f'not within {result.step}'} | {f'{seconds:.0f}' if seconds else f'> {result.seconds:.0f}'} | "
            f"{result.metrics.get('test_id'):.3f} | {result.metrics.get('test_ood'):.3f} | {speed} |"
        )


if __name__ == "__main__":
    main()
