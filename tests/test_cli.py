"""The grokscope command line: subcommands, outputs, one-line errors with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from interp.cli import app
from interp.data import load_dataset

runner = CliRunner()


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
