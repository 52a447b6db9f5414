"""The report's depth section: hop iterations per depth, kept per checkpoint, and accuracy by depth."""

from __future__ import annotations

import pytest

from circuits.views.depth_report import depth_figures, depth_section, depth_sets, has_depth_section, hop_rows
from interp.runs import load_checkpoint, read_metrics
from interp.train import load_run_config
from interp.train.start import train


@pytest.fixture(scope="module")
def looped_run(tmp_path_factory):
    """The looped depth preset, shrunk and trained a few steps (the section's mechanics, not its result)."""
    config = load_run_config(
        "khop-depth8-looped",
        [
            "model.n_layers=4",
            "model.loops=4",
            "model.d_model=32",
            "model.n_heads=2",
            "data.probe_size=40",
            "train.batch_size=64",
            "train.max_steps=2",
            "train.eval_every=2",
            "train.checkpoint_every=2",
            "train.checkpoint_dense_until=100",
            "train.progress=false",
            "train.tensorboard=false",
            "train.threads=1",
        ],
    )
    run_dir = tmp_path_factory.mktemp("depth-report") / "run"
    train(config, run_dir)
    return load_checkpoint(run_dir, device="cpu")


def test_the_section_reads_every_trained_and_deeper_depth_once_per_checkpoint(looped_run):
    assert has_depth_section(looped_run)
    assert sorted(depth_sets(looped_run, 40)) == [2, 3, 4, 6, 8]  # held-out 2..4, test depth 6, eval depth 8
    rows = hop_rows(looped_run, n=40)
    assert {(r["depth"], r["hop"]) for r in rows} == {(d, k) for d in (2, 3, 4, 6, 8) for k in range(1, d + 1)}
    assert all(r["loops read"] == 8 and r["prompts"] == 40 for r in rows)
    kept = list((looped_run.checkpoint.parent.parent / "analyses").rglob("hop_iterations-*.json"))
    assert len(kept) == 1
    kept[0].write_text(kept[0].read_text().replace('"prompts": 40', '"prompts": 41'))
    assert hop_rows(looped_run, n=40)[0]["prompts"] == 41  # read back, not computed again


def test_the_section_shows_the_hop_chart_the_table_and_accuracy_by_depth(looped_run):
    metrics = read_metrics(looped_run.checkpoint.parent.parent)
    section = depth_section(looped_run, metrics)
    html = "".join(f.html for f in section.figures)
    assert 'class="gs-chart"' in html and "one hop per iteration" in html and "6-hop chains" in html
    assert html.count('class="gs-table"') == 2
    for name in ("held_d2", "held_d4", "test_id", "id_d8"):
        assert f"<td>{name}</td>" in html
    assert "nothing to show" in depth_figures([], {})[0].html  # no rows, no metrics: a note, no error


def test_a_run_that_is_not_looped_k_hop_has_no_depth_section(grokked_composition):
    assert not has_depth_section(grokked_composition)
