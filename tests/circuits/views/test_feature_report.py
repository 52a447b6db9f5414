"""The report's features section: one section per saved dictionary or transcoder set, errors kept to their section."""

from __future__ import annotations

import shutil

import pytest
import torch

from circuits.views.feature_report import dictionary_path, features_section, saved_dictionaries
from circuits.views.figures import page
from interp.features import (
    DictionaryConfig,
    FeatureError,
    TranscoderConfig,
    save_dictionary,
    save_transcoders,
    train_on_model,
    train_transcoders_on_model,
)
from interp.runs import load_checkpoint

SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def run(tiny_run_dir):
    return load_checkpoint(tiny_run_dir, device="cpu")


@pytest.fixture(scope="module")
def features_run(run, tmp_path_factory):
    """A folder laid out as a run's ``features/``: a dictionary, a transcoder set, and a dictionary of another model."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("features-run")
    cfg = DictionaryConfig(SITE, k=4, expansion_factor=2, steps=30, batch_size=256)
    result, _ = train_on_model(run.model, run.dataset, cfg)
    save_dictionary(result.dictionary, root / "features" / "resid")
    tcs = train_transcoders_on_model(
        run.model, run.dataset, TranscoderConfig.for_layer(0, k=4, expansion_factor=2, steps=30, batch_size=256)
    )
    save_transcoders({layer: r.dictionary for layer, r in tcs.items()}, root / "features" / "tc")
    other = result.dictionary
    other.meta["model_fingerprint"] = "0123456789abcdef"
    save_dictionary(other, root / "features" / "stale")
    (root / "features" / "notes").mkdir()  # neither: ignored
    return root


def test_a_run_without_features_gets_no_section(run, tmp_path):
    assert features_section(tmp_path, run.model, run.dataset) == []
    assert saved_dictionaries(tmp_path) == {}


def test_one_section_per_dictionary(run, features_run):
    assert list(saved_dictionaries(features_run)) == ["resid", "stale", "tc"]
    sections = {s.title: s for s in features_section(features_run, run.model, run.dataset, n_features=3)}
    assert list(sections) == ["Features: resid", "Features: stale", "Features: tc"]
    resid = "".join(f.html for f in sections["Features: resid"].figures)
    assert resid.count('class="gs-fd-card"') == 3 and "gs-table" in resid and '<p class="gs-error">' not in resid
    # a dictionary of another model is refused in one line, inside its own section only
    stale = "".join(f.html for f in sections["Features: stale"].figures)
    assert '<p class="gs-error">' in stale and "0123456789abcdef" in stale
    # the transcoder set: the replacement model's scores and the attribution graph of a held-out prompt
    tc = "".join(f.html for f in sections["Features: tc"].figures)
    assert '<p class="gs-error">' not in tc and "attribution graph of" in tc and "<svg" in tc
    html = page("features", list(sections.values()))
    assert "&lt;e_" in html and "<e_" not in html.replace("&lt;e_", "")  # token names escaped everywhere


def test_dictionary_path_names_what_is_saved(features_run, one_line):
    assert dictionary_path(features_run, "resid") == features_run / "features" / "resid"
    with pytest.raises(FeatureError) as err:
        dictionary_path(features_run, "nope")
    assert one_line(err.value).endswith("saved: resid, stale, tc")


def test_the_report_gains_the_section_only_with_features(tiny_run_dir, tiny_report, features_run, tmp_path):
    """The full report of a run with a ``features/`` folder has the section; the shared report (no folder) does not."""
    from circuits.views.report import write_report

    assert "Features: " not in tiny_report.read_text(encoding="utf-8")
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    shutil.copytree(features_run / "features" / "resid", run_dir / "features" / "resid")
    html = write_report(run_dir, n=20, formation=False).read_text(encoding="utf-8")
    assert "<h2>Features: resid</h2>" in html and html.count('class="gs-fd-card"') == 6
