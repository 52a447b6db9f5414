"""Real Ray sweeps of micro trials: one table from all trials, failures kept apart, reuse on re-run."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from experiments import EXPERIMENTS, plan_experiment, run_experiment
from experiments.cli import app
from experiments.runner import run_trial
from interp.runs import read_metrics

from .conftest import micro_experiment

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _markdown_rows(text: str) -> list[dict[str, str]]:
    table = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip().replace("\\|", "|") for c in ln.strip().strip("|").split(" | ")]  # noqa: E731
    header = split(table[0])
    assert set(table[1].strip("|").split("|")) == {"---"}
    return [dict(zip(header, split(ln), strict=True)) for ln in table[2:]]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _check_outputs(out: Path, names: list[str]) -> dict[str, dict[str, str]]:
    """The CSV and Markdown tables agree, have one row per trial, and the figures are PNGs."""
    rows = _csv_rows(out / "results.csv")
    md = (out / "results.md").read_text(encoding="utf-8")
    assert _markdown_rows(md) == rows
    assert [r["trial"] for r in rows] == names
    assert "Paper finding tested" in md and "Machine:" in md
    for fig in ("micro-curves.png", "micro-summary.png"):
        data = (out / "figures" / fig).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    return {r["trial"]: r for r in rows}


def crash_dying_trial(config: dict, run_dir: str) -> dict:
    """A task body whose worker dies (no exception, no clean-up) on the ``dying`` trial."""
    if config["name"].endswith("-dying"):
        os._exit(1)
    return run_trial(config, run_dir)


@pytest.mark.slow  # Ray workers in real processes
def test_local_sweep_keeps_good_trials_reports_failed_ones_and_reuses(tmp_path, micro, one_line):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get crash_dying_trial by value
    out = tmp_path / "micro"
    lines: list[str] = []
    first = run_experiment(
        plan_experiment(micro), out, cpus=2, progress=False, log=lines.append, trial_fn=crash_dying_trial
    )
    assert first.failed == ["broken", "dying"] and first.reused == []
    rows = _check_outputs(out, ["wd-0.1", "wd-1.0", "broken", "dying"])
    assert len(lines) == 4  # one progress line per finished trial

    for name, wd in (("wd-0.1", "0.1"), ("wd-1.0", "1.0")):
        row = rows[name]
        assert row["status"] == "ok" and row["error"] == "" and row["weight_decay"] == wd
        metrics = read_metrics(out / "trials" / name)
        last = metrics[-1]
        assert last["step"] == 40 and row["steps"] == "40"
        for split in ("train", "id_atomic", "ood_atomic", "train_inferred", "test_id", "test_ood"):
            assert float(row[split]) == pytest.approx(last[split], abs=5e-4)
        assert float(row["best_test_ood"]) == pytest.approx(max(m["test_ood"] for m in metrics), abs=5e-4)
        assert row["grokked"] == ("true" if row["grokked_step"] else "false")
        assert json.loads((out / "trials" / name / "config.json").read_text())["train"]["weight_decay"] == float(wd)
        # its progress line carries its numbers
        assert any(f"] {name}: " in ln and f"test_id {last['test_id']:.3f}" in ln for ln in lines), lines
    broken, dying = rows["broken"], rows["dying"]
    assert broken["status"] == "failed" and broken["weight_decay"] == "0.5"
    assert "cuda" in broken["error"].lower() and one_line(ValueError(broken["error"]))
    assert broken["test_id"] == "" and broken["steps"] == ""
    assert (
        dying["status"] == "failed" and "WorkerCrashedError" in dying["error"] and one_line(ValueError(dying["error"]))
    )
    assert any("broken: FAILED" in ln for ln in lines) and any("dying: FAILED" in ln for ln in lines)

    # the same command again: finished trials are reused, not retrained; failed ones run again
    # (dying now trains with the normal task body; broken fails again, so the exit code is 1)
    stamps = {n: (out / "trials" / n / "metrics.jsonl").stat().st_mtime_ns for n in ("wd-0.1", "wd-1.0")}
    res = runner.invoke(app, ["experiment", "micro", "--out", str(out), "--cpus", "2"])
    assert res.exit_code == 1, res.output
    assert "1 of 4 trials failed: broken" in res.output
    assert "wd-0.1: " in res.output and "(reused)" in res.output and "broken: FAILED" in res.output
    assert {n: (out / "trials" / n / "metrics.jsonl").stat().st_mtime_ns for n in stamps} == stamps
    again = _check_outputs(out, ["wd-0.1", "wd-1.0", "broken", "dying"])
    assert {n: again[n] for n in ("wd-0.1", "wd-1.0", "broken")} == {n: rows[n] for n in ("wd-0.1", "wd-1.0", "broken")}
    assert again["dying"]["status"] == "ok" and again["dying"]["steps"] == "40"


def test_folder_of_another_config_is_refused_before_running(tmp_path, micro, one_line):
    run_dir = tmp_path / "out" / "trials" / "wd-0.1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"name": "something else"}))
    with pytest.raises(Exception) as err:
        run_experiment(plan_experiment(micro), tmp_path / "out", cpus=1, progress=False)
    assert "different config" in one_line(err.value)
    assert not (tmp_path / "out" / "results.csv").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """An existing one-CPU Ray cluster, started the way a user would (``ray start --head``)."""
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    # this Ray's `ray start` turns token authentication on, and its clients (`ray status`, the sweep) leave
    # it off unless told: the cluster runs without it, as the clients expect
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    # --block keeps the head in this process's care: terminating it stops this cluster only
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            "--num-cpus=1",
            f"--port={port}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            status = subprocess.run([str(ray_bin), "status", f"--address={address}"], capture_output=True, env=env)
            if status.returncode == 0:
                break
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(1)
        yield address
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()


def test_unreachable_cluster_is_one_line_with_exit_code_2(tmp_path, micro):
    port = _free_port()  # nothing listens there
    res = runner.invoke(app, ["experiment", "micro", "--out", str(tmp_path / "o"), "--address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    error = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert (
        len(error) == 1 and f"no Ray cluster answers at 127.0.0.1:{port}" in error[0] and "ray start --head" in error[0]
    )
    assert not (tmp_path / "o" / "results.csv").exists()


@pytest.mark.slow  # a real `ray start` cluster
def test_sweep_on_an_existing_cluster(tmp_path, monkeypatch, ray_cluster):
    monkeypatch.setitem(EXPERIMENTS, "micro", micro_experiment(failing=False))
    out = tmp_path / "micro"
    res = runner.invoke(app, ["experiment", "micro", "--out", str(out), "--address", ray_cluster])
    assert res.exit_code == 0, res.output
    rows = _check_outputs(out, ["wd-0.1", "wd-1.0"])
    assert all(r["status"] == "ok" and r["steps"] == "40" for r in rows.values())
    assert f"Ray cluster at {ray_cluster}" in (out / "results.md").read_text()
