"""Per-checkpoint analyses: computed once, read back, recomputed when the checkpoint, parameters or code change."""

from __future__ import annotations

import json

import pytest
import torch

import interp.checkpoint_analyses as ca
from circuits.edges import EdgeScores, edge_attribution
from circuits.formation import circuit_formation, state_strengths
from circuits.tasks import dataset_task
from interp.checkpoint_analyses import analysis_path, cached_analysis, checkpoint_grids, state_grids
from interp.models import to_bridge
from interp.runs import list_checkpoints, load_checkpoint
from interp.train import train

from ..tiny import quick_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("analyses") / "run"
    train(quick_config("train.max_steps=40", "train.checkpoint_every=20", "train.checkpoint_dense_until=40"), run_dir)
    return run_dir


def test_an_analysis_is_computed_once_and_kept_beside_its_checkpoint(run_dir):
    ckpt = list_checkpoints(run_dir)[-1]
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    first = cached_analysis(ckpt, "probe", {"n": 3}, compute, code=("interp.lens",))
    again = cached_analysis(ckpt, "probe", {"n": 3}, compute, code=("interp.lens",))
    assert first == again == {"value": 1} and len(calls) == 1
    path = analysis_path(ckpt, "probe", {"n": 3}, ("interp.lens",))
    assert path.parent == run_dir / "analyses" / ckpt.name and path.is_file()
    # other parameters, another checkpoint or other code: computed again
    assert cached_analysis(ckpt, "probe", {"n": 4}, compute, code=("interp.lens",)) == {"value": 2}
    other = list_checkpoints(run_dir)[0]
    assert cached_analysis(other, "probe", {"n": 3}, compute, code=("interp.lens",)) == {"value": 3}
    assert analysis_path(ckpt, "probe", {"n": 3}, ("interp.tracing",)) != path
    # a damaged file is computed again and replaced
    path.write_text("{not json")
    assert cached_analysis(ckpt, "probe", {"n": 3}, compute, code=("interp.lens",)) == {"value": 4}
    assert json.loads(path.read_text())["value"] == {"value": 4}


def test_the_key_follows_the_checkpoint_and_the_code(run_dir, monkeypatch):
    ckpt = list_checkpoints(run_dir)[-1]
    before = analysis_path(ckpt, "grids", {"n": 5}, ca.GRID_CODE)
    monkeypatch.setattr(ca, "_code", lambda modules: "another version of the code")
    assert analysis_path(ckpt, "grids", {"n": 5}, ca.GRID_CODE) != before
    monkeypatch.undo()
    assert analysis_path(ckpt, "grids", {"n": 5}, ca.GRID_CODE) == before
    monkeypatch.setattr(ca, "checkpoint_hash", lambda checkpoint: "0" * 16)  # as if the weights changed
    assert analysis_path(ckpt, "grids", {"n": 5}, ca.GRID_CODE) != before


def test_a_run_folder_that_cannot_be_written_still_gets_its_analysis(run_dir, monkeypatch):
    ckpt = list_checkpoints(run_dir)[0]

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(ca, "atomic_write_json", refuse)
    assert cached_analysis(ckpt, "readonly", {}, lambda: [1, 2], code=()) == [1, 2]
    assert not analysis_path(ckpt, "readonly", {}, ()).exists()


def test_cached_grids_are_the_analysis_and_formation_reads_its_key_states_off_them(run_dir, monkeypatch):
    run = load_checkpoint(run_dir, device="cpu")
    direct = state_grids(run.model, run.dataset, n=20)
    assert set(direct["lens"]) >= {"bridge", "r2", "answer"} and set(direct["tracing"]) == {"h", "r1", "r2"}
    assert checkpoint_grids(run.checkpoint, run.model, run.dataset, n=20) == direct
    calls = []
    monkeypatch.setattr(ca, "state_grids", lambda *a, **k: calls.append(1) or direct)
    assert checkpoint_grids(run.checkpoint, run.model, run.dataset, n=20) == direct and not calls  # read back
    monkeypatch.undo()
    df = circuit_formation(run_dir, layer=1, n=20, device="cpu")
    last = df[df["step"] == run.step]
    for row in state_strengths(run.model, run.dataset, 1, n=20):
        got = last[last["state"] == row["state"]].iloc[0]
        for k in ("causal", "mrr", "top1"):
            assert got[k] == pytest.approx(row[k], abs=1e-9), (row["state"], k)


def test_edge_scores_survive_their_json(run_dir):
    """The explorer keeps each checkpoint's edge scores as JSON: read back, they are the same scores."""
    run = load_checkpoint(run_dir, device="cpu")
    bridge = to_bridge(run.model)
    task = dataset_task(run.dataset, n=8)
    scores = edge_attribution(bridge, task.clean, task.corrupt, task.metric(), answer_pos=task.answer_pos,
                              positions=task.positions)  # fmt: skip
    back = EdgeScores.from_data(json.loads(json.dumps(scores.to_data())))
    assert back.space == scores.space and back.positions == scores.positions and back.meta == scores.meta
    assert torch.equal(back.scores, scores.scores) and back.top(10) == scores.top(10)
