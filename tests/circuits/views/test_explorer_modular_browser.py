"""The explorer in a real headless Chromium on the grokked modular-addition run: a model without LayerNorm.

A module of its own: Playwright's sync API runs one browser per thread at a time, and the other
explorer module keeps its browser open for all of its tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuits.views.explorer import rounded_model

from .browser import Watched, launch
from .explorer_pages import TOLERANCE, torch_logits, write_explorer_page


@pytest.fixture
def modular_explorer(chromium, grokked_modular_run_dir, grokked_modular, tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer-modular") / "explorer.html"
    write_explorer_page(grokked_modular_run_dir, grokked_modular, path, max_checkpoints=2)
    with launch(chromium) as browser, Watched(browser, width=1400, height=1000) as w:
        w.open(path)
        w.page.wait_for_selector("#gsx-root[data-ready='1']", timeout=30_000)
        yield w


def test_a_model_without_layer_norm_runs_in_the_page_with_its_fourier_view(modular_explorer, grokked_modular):
    """Nanda's model has no LayerNorm: the page's forward pass skips it and still equals torch's; each
    checkpoint of the slider shows the weights' Fourier norms, the final one peaked at its key frequencies."""
    w = modular_explorer
    assert w.problems == []
    known = w.page.evaluate("Object.keys(gsExplorer.data.queries.known).slice(0, 6)")
    prompts = [[int(t) for t in k.split(",")] for k in known]
    page_logits = np.array(w.page.evaluate("ps => ps.map(p => gsExplorer.model.logitsAll(p))", prompts))
    reference = torch_logits(rounded_model(grokked_modular.model, torch.float64), prompts)
    assert np.abs(page_logits - reference).max() < TOLERANCE
    fourier = w.page.evaluate("gsExplorer.data.timeline.checkpoints.map(c => c.fourier)")
    assert len(fourier) == 2 and all(f["rows"] == ["W_E", "W_U W_out"] for f in fourier)
    last = fourier[-1]
    assert last["key"] and all(max(row) == 1.0 for row in last["norms"])
    key_mean = np.mean([last["norms"][0][k - 1] for k in last["key"]])
    assert key_mean > 2 * np.mean(last["norms"][0])  # the embedding's norm sits in the key frequencies
    titles = w.page.evaluate("Array.from(document.querySelectorAll('#gsx-heat svg text')).map(t => t.textContent)")
    assert "Fourier norm per frequency (* key frequency)" in titles
