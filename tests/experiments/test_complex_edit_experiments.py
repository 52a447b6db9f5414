"""The complex and edit-propagation experiments: their plans, per-query-type columns, the per-trial analysis."""

from __future__ import annotations

import csv
import io
import json

from experiments import EXPERIMENTS, plan_experiment
from experiments.analyses import edit_propagation
from experiments.results import ANALYSIS_FILE, format_cell, trial_record, trial_row, write_results
from experiments.runner import run_trial
from interp.data.tasks.complex import LABEL_NAMES

from ..data.test_complex_task import SMALL_RUN


def test_complex_plan_is_the_papers_task_graded_on_hard_queries():
    for scale in ("tiny", "small"):
        plan = plan_experiment("complex", scale)
        seeds = {t.config.data.seed for t in plan.trials}
        assert len(seeds) == len(plan.trials)
        for t in plan.trials:
            data, tc = t.config.data, t.config.train
            assert data.task == "complex"
            assert data.train_id_id_fraction == data.train_id_ood_fraction == 0.03  # the paper's 3%
            assert 3 * data.n_hard_per_label == 150  # the paper's 150 hard queries
            assert set(tc.grok_splits) == {"test_id", "test_ood"}
    ys = EXPERIMENTS["complex"].summary.ys
    assert {f"test_ood/{n}" for n in LABEL_NAMES} <= set(ys)


def test_edit_propagation_compares_the_same_run_with_and_without_shared_blocks():
    exp = EXPERIMENTS["edit-propagation"]
    assert exp.analysis is edit_propagation
    for scale in ("tiny", "small"):
        trials = {t.name: t.config for t in plan_experiment("edit-propagation", scale).trials}
        assert set(trials) == {"standard", "shared", "looped"}
        assert not trials["standard"].model.share_layers and trials["standard"].model.loops == 1
        assert trials["shared"].model.share_layers and trials["looped"].model.loops > 1

        def untied(name, trials=trials):
            d = trials[name].to_dict()
            d.pop("name"), d["model"].pop("share_layers"), d["model"].pop("loops")
            return d

        for name in ("shared", "looped"):
            assert untied(name) == untied("standard")  # only the weight tying differs
            assert trials[name].train.stop_after_grok is False


def test_trial_runs_its_analysis_once_and_the_row_has_query_types(tmp_path):
    plan = plan_experiment("complex", "tiny", SMALL_RUN)
    trial = plan.trials[0]
    calls = []

    def analysis(path):
        calls.append(path)
        return {"probe_value": float(len(calls))}

    run_dir = tmp_path / "trials" / trial.name
    record = run_trial(trial.config.to_dict(), str(run_dir), analysis)
    again = run_trial(trial.config.to_dict(), str(run_dir), analysis)  # finished and analysed: reused
    assert len(calls) == 1 and json.loads((run_dir / ANALYSIS_FILE).read_text()) == {"probe_value": 1.0}
    assert record["analysis"] == again["analysis"] == trial_record(run_dir)["analysis"] == {"probe_value": 1.0}
    row = trial_row(trial.name, trial.values, record)
    last = record["summary"]["metrics"]
    types = [k for k in last if "/" in k]
    assert {f"test_ood/{n}" for n in LABEL_NAMES} <= set(types)
    assert all(row[k] == last[k] for k in types) and row["probe_value"] == 1.0
    paths = write_results(
        tmp_path, [row], {trial.name: record["curve"]}, experiment=plan.experiment, scale="tiny", machine="test"
    )
    table = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert table[0]["test_ood/eq"] == format_cell(last["test_ood/eq"])
    assert paths["summary"].read_bytes().startswith(b"\x89PNG")
