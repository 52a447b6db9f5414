"""``grokscope features``: train, list, evaluate and dashboard a run's dictionaries; one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from experiments.cli import app
from interp.features import evaluate_dictionary, load_dictionary, load_graph_json
from interp.runs import load_checkpoint

from ..test_cli import QUICK_RUN

runner = CliRunner()
SITE = "blocks.1.hook_resid_post"
NAME = "r1"
TRAIN = [
    "--site",
    SITE,
    "--k",
    "4",
    "--expansion",
    "2",
    "--steps",
    "20",
    "--position",
    "r1",
    "--name",
    NAME,
    "--device",
    "cpu",
]


def _one_line_error(out) -> str:
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.output
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 20-step run of the tiny recipe with one 20-step dictionary trained by the command line."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("features-cli") / "run"
    out = runner.invoke(
        app,
        [
            "train",
            "composition-tiny",
            "--out",
            str(folder),
            *QUICK_RUN,
            "--max-steps",
            "20",
            "--set",
            "train.progress=false",
            "--set",
            "train.tensorboard=false",
        ],
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["features", "train", str(folder), *TRAIN])
    assert out.exit_code == 0, out.output
    assert f"saved: {folder / 'features' / NAME}" in out.output
    return folder


def test_train_saves_a_dictionary_of_the_runs_last_checkpoint(run_dir):
    folder = run_dir / "features" / NAME
    cfg = json.loads((folder / "cfg.json").read_text())
    assert (cfg["hook_name"], cfg["architecture"], cfg["k"], cfg["d_sae"], cfg["positions"], cfg["steps"]) == (
        SITE,
        "batchtopk",
        4,
        64,
        ["r1"],
        20,
    )
    run = load_checkpoint(run_dir, device="cpu")
    sae = load_dictionary(folder, run.model)  # the fingerprint is the last checkpoint's
    assert sae.meta["step"] == run.step == 20


def test_evaluate_prints_the_dictionarys_metrics(run_dir):
    out = runner.invoke(app, ["features", "evaluate", str(run_dir), NAME, "--device", "cpu"])
    assert out.exit_code == 0, out.output
    printed = dict(line.split(": ", 1) for line in out.output.splitlines()[1:])
    run = load_checkpoint(run_dir, device="cpu")
    m = evaluate_dictionary(load_dictionary(run_dir / "features" / NAME, run.model), run.model, run.dataset)
    for key in ("l0", "fvu", "mse", "loss_clean", "loss_spliced", "accuracy_recovered", "loss_recovered"):
        # nan: a 20-step model loses nothing when the site is zeroed, so nothing can be recovered
        assert float(printed[key]) == pytest.approx(getattr(m, key), abs=6e-5, nan_ok=True), key
    assert int(printed["dead_features"]) == m.dead_features


def test_dashboard_and_list(run_dir, tmp_path):
    html = tmp_path / "dash.html"
    out = runner.invoke(
        app,
        [
            "features",
            "dashboard",
            str(run_dir),
            NAME,
            "--out",
            str(html),
            "--n",
            "3",
            "--select",
            "frequency",
            "--device",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count('class="gs-fd-card"') == 3
    out = runner.invoke(
        app,
        [
            "features",
            "dashboard",
            str(run_dir),
            NAME,
            "--out",
            str(html),
            "--feature",
            "5",
            "--feature",
            "9",
            "--device",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    page = html.read_text(encoding="utf-8")
    assert 'id="gs-fd-5"' in page and 'id="gs-fd-9"' in page and page.count('class="gs-fd-card"') == 2
    out = runner.invoke(app, ["features", "list", str(run_dir)])
    assert out.exit_code == 0 and out.output.strip() == f"{NAME}: batchtopk, k 4, 64 features at {SITE}"


def test_bad_input_is_one_line_with_exit_code_2(run_dir, tmp_path):
    base = ["features", "train", str(run_dir)]
    cases = [  # (arguments, what the one line must name)
        ([*base, "--site", "blocks.1.hook_resid_pots", "--name", "x"], "did you mean blocks.1.hook_resid_post"),
        ([*base, "--site", "blocks.7.hook_resid_post", "--name", "x"], "unknown hook"),
        ([*base, "--site", SITE, "--k", "100", "--expansion", "1", "--name", "x"], "k = 100 is larger"),
        ([*base, "--site", SITE, "--arch", "relu", "--name", "x"], "--arch = 'relu'"),
        ([*base, "--site", SITE, "--position", "r7", "--name", "x"], "unknown position 'r7'"),
        ([*base, "--site", SITE, "--name", "../escape"], "--name '../escape'"),
        (["features", "train", str(tmp_path / "nowhere"), "--site", SITE], "does not exist"),
        (
            ["features", "evaluate", str(run_dir), "nope"],
            f"no dictionary named 'nope' in {run_dir / 'features'}; saved: {NAME}",
        ),
        (["features", "dashboard", str(run_dir), NAME, "--out", str(tmp_path / "d.html"), "--n", "0"], "--n = 0"),
        (["features", "dashboard", str(run_dir), NAME, "--out", str(tmp_path / "d.html"), "--select", "x"], "--select"),
        (["features", "dashboard", str(run_dir), NAME, "--out", str(tmp_path / "d.html"), "--feature", "64"], "0..63"),
    ]
    for args, names in cases:
        line = _one_line_error(runner.invoke(app, args))
        assert names in line, (args, line)
    assert "x" not in {p.name for p in (run_dir / "features").iterdir()}  # nothing was written
    assert not (tmp_path / "d.html").exists()


def test_transcoders_graph_probe_and_das(run_dir, tmp_path):
    out = runner.invoke(
        app,
        [
            "features",
            "train",
            str(run_dir),
            "--site",
            "all",
            "--transcoder",
            "--k",
            "4",
            "--expansion",
            "2",
            "--steps",
            "10",
            "--name",
            "tc",
            "--device",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    assert (run_dir / "features" / "tc" / "transcoders.json").is_file()
    prompt = "".join(load_checkpoint(run_dir, device="cpu").dataset.examples("test_id")[0].input_tokens)
    graph_args = ["features", "graph", str(run_dir), "--prompt", prompt, "--device", "cpu"]
    out = runner.invoke(app, [*graph_args, "--out", str(tmp_path / "g.json"), "--html", str(tmp_path / "g.html")])
    assert out.exit_code == 0, out.output
    data = load_graph_json(tmp_path / "g.json")  # the Neuronpedia schema
    assert data["metadata"]["prompt_tokens"] and "<svg" in (tmp_path / "g.html").read_text(encoding="utf-8")
    residual = float(out.output.rsplit("largest residual ", 1)[1].split(":")[0])
    assert residual < 1e-3  # the graph adds up
    replacement = float(out.output.split("replacement score ", 1)[1].split(",")[0])
    assert replacement == pytest.approx(data["metadata"]["replacement_score"], abs=5e-4)
    for args, names in [
        ([*graph_args[:3], "--prompt", "<e_0><nope>", "--out", str(tmp_path / "x.json"), "--name", "tc"], "<nope>"),
        (
            [*graph_args[:3], "--prompt", prompt, "--out", str(tmp_path / "x.json"), "--name", NAME],
            "not a transcoder set",
        ),
        (["features", "das", str(run_dir), "--layer", "1", "--d", "-1"], "--d = -1"),
        (["features", "probe", str(run_dir), "--site", SITE, "--name", "tc"], "transcoder"),
    ]:
        line = _one_line_error(runner.invoke(app, args))
        assert names in line, (args, line)
    assert not (tmp_path / "x.json").exists()
    out = runner.invoke(
        app, ["features", "probe", str(run_dir), "--site", SITE, "--k", "1", "--k", "4", "--device", "cpu"]
    )
    assert out.exit_code == 0, out.output
    assert "bridge at blocks.1.hook_resid_post (raw, width 32)" in out.output and "held_out" in out.output
    out = runner.invoke(
        app,
        ["features", "das", str(run_dir), "--layer", "1", "--d", "4", "--steps", "5", "--n", "20", "--device", "cpu"],
    )
    assert out.exit_code == 0 and "test_id IIA" in out.output, out.output
