"""The grokscope command line: subcommands, outputs, one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil

import torch
from typer.testing import CliRunner

from experiments.cli import app
from interp.data import load_dataset
from interp.runs import latest_checkpoint, list_checkpoints, load_checkpoint, read_metrics, stored_config
from tests.tiny import QUICK

runner = CliRunner()

# QUICK's data overrides, as `grokscope data` takes them, and its other sections as `--set`s
QUICK_DATA = [o.removeprefix("data.") for o in QUICK if o.startswith("data.")]
QUICK_RUN = [x for o in QUICK if not o.startswith("data.") for x in ("--set", o)]


def _one_line_error(out) -> str:
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.output
    return lines[0]


def test_help_lists_subcommands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("data", "train", "resume", "run", "report", "presets"):
        assert cmd in out.output


def test_data_writes_paper_layout(tmp_path):
    out = runner.invoke(app, ["data", "composition-tiny", "--out", str(tmp_path / "d"), "--set", "seed=3"])
    assert out.exit_code == 0, out.output
    for name in ("train.json", "valid.json", "test.json", "vocab.json", "config.json", "graph.json"):
        assert (tmp_path / "d" / name).is_file()
    assert json.loads((tmp_path / "d" / "config.json").read_text())["config"]["seed"] == 3
    ds = load_dataset(tmp_path / "d")
    assert ds.sizes["train"] > 0 and "wrote composition dataset" in out.output


def test_bad_input_is_one_line_with_exit_code_2(tmp_path):
    cases = [
        ["data", "composition-tiny", "--out", str(tmp_path / "x"), "--set", "phi=1000"],
        ["data", "no-such-task", "--out", str(tmp_path / "y")],
        ["data", "composition-tiny", "--out", str(tmp_path / "z"), "--set", "phi"],
        ["train", "composition-tiny", "--out", str(tmp_path / "r"), "--set", "train.batch_size=0"],
        ["resume", str(tmp_path / "missing")],
        ["report", str(tmp_path / "missing")],
    ]
    for args in cases:
        out = runner.invoke(app, args)
        assert out.exit_code == 2, (args, out.output)
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, out.output)
    assert not (tmp_path / "x").exists() and not (tmp_path / "r").exists()


def test_bad_options_and_paths_are_one_line_with_exit_code_2(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a run\n")
    (tmp_path / "empty").mkdir()
    cases = [  # (arguments, what the one line must name)
        (["train", "composition-tiny", "--out", str(a_file)], "is a file, not a run directory"),
        (["train", "composition-tiny", "--out", str(tmp_path / "r"), "--max-steps", "-3"], "--max-steps = -3"),
        (["train", "composition-tiny", "--out", str(tmp_path / "r"), "--max-steps", "0"], "--max-steps = 0"),
        (["resume", str(tmp_path / "r"), "--max-steps", "0"], "--max-steps = 0"),
        (["report", str(tmp_path / "r"), "--n", "0"], "--n = 0"),
        (
            ["train", "composition-tiny", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")],
            "does not exist",
        ),
        (["train", "composition-tiny", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "empty")], "vocab.json"),
        (["train", "composition-tiny", "--out", str(tmp_path / "r"), "--data", str(a_file)], "a_file"),
    ]
    for args, names in cases:
        line = _one_line_error(runner.invoke(app, args))
        assert names in line, (args, line)
    assert a_file.read_text() == "not a run\n"
    assert not (tmp_path / "r").exists()  # nothing was trained or written


def _paper_files(tmp_path):
    """A dataset as the paper's authors released theirs: train/valid/test/vocab JSON, no config or graph."""
    out = runner.invoke(
        app,
        ["data", "composition-tiny", "--out", str(tmp_path / "paper"), *(x for o in QUICK_DATA for x in ("--set", o))],
    )
    assert out.exit_code == 0, out.output
    (tmp_path / "paper" / "config.json").unlink()
    (tmp_path / "paper" / "graph.json").unlink()
    return tmp_path / "paper"


def _same_dataset(a, b):
    assert a.task == b.task and a.vocab.tokens == b.vocab.tokens and a.sizes == b.sizes
    for split in a.splits:
        assert a.examples(split) == b.examples(split), split


def test_train_on_existing_data_keeps_a_copy_that_resume_and_load_use(tmp_path):
    data_dir = _paper_files(tmp_path)
    original = load_dataset(data_dir)
    assert original.config is None  # the paper's files do not say how they were made
    run_dir = tmp_path / "run"
    out = runner.invoke(
        app,
        ["train", "composition-tiny", "--out", str(run_dir), "--data", str(data_dir), *QUICK_RUN, "--max-steps", "10"],
    )
    assert out.exit_code == 0, out.output
    # the run records where its data came from, and no data section it was not made from
    cfg = stored_config(run_dir)
    assert cfg.data is None and cfg.data_dir == str(data_dir.resolve())
    assert cfg.train.batch_size == 32 and cfg.model.d_model == 32  # the --set overrides still apply
    assert json.loads((latest_checkpoint(run_dir) / "state.json").read_text())["config"]["data_dir"] == str(
        data_dir.resolve()
    )
    # the run's own copy serves resume and load_checkpoint, even once the original is gone
    shutil.rmtree(data_dir)
    out = runner.invoke(app, ["resume", str(run_dir), "--max-steps", "20"])
    assert out.exit_code == 0, out.output
    assert [r["step"] for r in read_metrics(run_dir)] == [10, 20]
    loaded = load_checkpoint(run_dir, device="cpu")
    assert loaded.step == 20 and loaded.config == cfg
    _same_dataset(loaded.dataset, original)
    # and the model trained on it: its vocabulary is the dataset's
    assert loaded.model.get_input_embeddings().weight.shape[0] == len(original.vocab)


def test_train_on_data_with_its_config_records_that_config(tmp_path):
    out = runner.invoke(
        app, ["data", "composition-tiny", "--out", str(tmp_path / "d"), *(x for o in QUICK_DATA for x in ("--set", o))]
    )
    assert out.exit_code == 0, out.output
    dataset = load_dataset(tmp_path / "d")
    out = runner.invoke(
        app,
        [
            "train",
            "comparison-tiny",
            "--out",
            str(tmp_path / "run"),
            "--data",
            str(tmp_path / "d"),
            *QUICK_RUN,
            "--max-steps",
            "10",
        ],
    )
    assert out.exit_code == 0, out.output
    cfg = load_checkpoint(tmp_path / "run", device="cpu").config
    # the dataset's own config replaces the preset's (a comparison preset, composition data)
    assert cfg.data == dataset.config and cfg.data.task == "composition" and cfg.data.n_entities == 40
    # a --set on the data section would make the config disagree with the files: refused
    line = _one_line_error(
        runner.invoke(
            app,
            [
                "train",
                "composition-tiny",
                "--out",
                str(tmp_path / "r2"),
                "--data",
                str(tmp_path / "d"),
                "--set",
                "data.phi=9",
            ],
        )
    )
    assert "data.phi=9" in line and not (tmp_path / "r2").exists()


def test_resume_restarts_a_run_stopped_before_its_first_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    out = runner.invoke(app, ["train", "composition-tiny", "--out", str(run_dir), *QUICK_RUN, "--max-steps", "10"])
    assert out.exit_code == 0, out.output
    reference = read_metrics(run_dir)
    weights = load_checkpoint(run_dir, device="cpu").model.state_dict()
    # what a run killed before its first checkpoint leaves: config.json and data/, no checkpoint
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "latest").unlink()
    assert not list_checkpoints(run_dir)
    out = runner.invoke(app, ["resume", str(run_dir), "--max-steps", "10"])
    assert out.exit_code == 0, out.output
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run_dir)] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in reference
    ]
    again = load_checkpoint(run_dir, device="cpu").model.state_dict()
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_progress_prints_a_row_per_checkpoint_and_the_phases(tmp_path):
    run = tmp_path / "mod"
    sets = [
        "data.modulus=13",
        "data.probe_size=20",
        "train.max_steps=60",
        "train.checkpoint_every=20",
        "train.checkpoint_dense_until=60",
        "train.eval_every=20",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    out = runner.invoke(
        app, ["train", "modular-addition-tiny", "--out", str(run)] + [x for s in sets for x in ("--set", s)]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["progress", str(run)])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [row["step"] for row in lines[:-1]] == [20, 40, 60] and "phases" in lines[-1]
    assert set(lines[0]) >= {"key_frequencies", "restricted_loss", "excluded_loss", "gini_embedding", "weight_norm"}
    saved = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    assert saved == lines[:-1]
    assert "does not exist" in _one_line_error(runner.invoke(app, ["progress", str(tmp_path / "missing")]))
