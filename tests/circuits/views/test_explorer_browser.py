"""The explorer in a real headless Chromium (Playwright), on the grokked composition run.

The page runs the model itself: its logits must equal torch's on the same float16-rounded
weights (the page computes in double precision: tolerance 1e-9 against a float64 torch run).
The sliders, the query selectors, a node click and a patch are driven as a user would, and
what the page then shows is checked against torch.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from circuits.views.explorer import rounded_model

from .browser import Watched, launch
from .explorer_pages import TOLERANCE, torch_logits, write_explorer_page

pytestmark = pytest.mark.xdist_group("explorer-browser")  # one worker builds the module's fixtures


@pytest.fixture(scope="module")
def explorer_html(grokked_run_dir, grokked_composition, tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "explorer.html"
    return write_explorer_page(grokked_run_dir, grokked_composition, path, max_checkpoints=3)


@pytest.fixture(scope="module")
def explorer(chromium, explorer_html):
    with launch(chromium) as browser, Watched(browser, width=1400, height=1000) as w:
        w.open(explorer_html)
        w.page.wait_for_selector("#gsx-root[data-ready='1']", timeout=30_000)
        yield w


def test_page_is_offline_clean_and_its_logits_equal_torch(explorer, explorer_html, grokked_composition):
    assert explorer.requests == [explorer_html.resolve().as_uri()]
    assert explorer.problems == []
    data = explorer.page.evaluate("({known: Object.keys(gsExplorer.data.queries.known).slice(0, 6)})")
    prompts = [[int(t) for t in k.split(",")] for k in data["known"]]
    page_logits = np.array(explorer.page.evaluate("ps => ps.map(p => gsExplorer.model.logitsAll(p))", prompts))
    reference = torch_logits(rounded_model(grokked_composition.model, torch.float64), prompts)
    assert page_logits.shape == reference.shape
    assert np.abs(page_logits - reference).max() < TOLERANCE
    # the tolerance tells the rounded weights from the model's own: the check can fail
    own = torch_logits(copy.deepcopy(grokked_composition.model).cpu().double().eval(), prompts)
    assert np.abs(own - reference).max() > 1e4 * TOLERANCE


def test_choosing_a_query_shows_the_models_answer(explorer, grokked_composition):
    ds = grokked_composition.dataset
    ex = ds.examples("test_id")[3]
    ids = ds.vocab.encode(ex.input_tokens)
    for p, t in enumerate(ids):
        explorer.page.select_option(f"#gsx-query select[data-pos='{p}']", value=str(t))
    shown = explorer.page.evaluate(
        "(() => { const a = document.getElementById('gsx-answer'); "
        "return {id: Number(a.dataset.answer), p: Number(a.dataset.prob), text: a.innerText}; })()"
    )
    probs = torch.softmax(torch.from_numpy(torch_logits(rounded_model(grokked_composition.model), [ids])[0, -1]), -1)
    assert shown["id"] == int(probs.argmax()) and shown["p"] == pytest.approx(float(probs.max()), abs=1e-9)
    assert ex.answer in shown["text"] and "test_id" in shown["text"]  # the known answer and its split


def _view(w) -> dict:
    return w.page.evaluate("""(() => ({
      step: document.getElementById('gsx-step').textContent,
      cells: Array.from(document.querySelectorAll('#gsx-heat text')).map(t => t.textContent).join('|'),
      edges: Array.from(document.querySelectorAll('#gsx-graph .gsx-edge')).map(e => e.dataset.edge).sort().join(','),
      marker: document.querySelector('#gsx-curves .gsx-marker').getAttribute('x1'),
      faith: document.getElementById('gsx-faith').textContent,
    }))()""")


def test_dragging_the_checkpoint_slider_changes_every_view(explorer):
    w = explorer
    last = _view(w)
    steps = w.page.evaluate("gsExplorer.data.timeline.checkpoints.map(c => c.step)")
    assert str(steps[-1]) in last["step"]
    box = w.page.locator("#gsx-ckpt").bounding_box()
    w.page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    w.page.mouse.down()
    w.page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2, steps=8)
    w.page.mouse.up()
    first = _view(w)
    assert f"step {steps[0]} " in first["step"]
    assert first["cells"] != last["cells"] and first["edges"] != last["edges"]
    assert float(first["marker"]) < float(last["marker"])
    w.page.locator("#gsx-ckpt").focus()
    w.page.keyboard.press("End")
    assert _view(w) == last  # back at the end: the same views


def test_the_edge_count_slider_shows_the_faithfulness_at_that_size(explorer):
    w = explorer
    w.page.locator("#gsx-size").focus()
    w.page.keyboard.press("End")
    tl = w.page.evaluate(
        "(() => { const t = gsExplorer.data.timeline, c = t.checkpoints[gsExplorer.state.ck]; "
        "return {k: t.sizes[t.sizes.length - 1], f: c.faithfulness[t.sizes.length - 1], "
        "n: c.circuits[t.sizes.length - 1].length}; })()"
    )
    view = _view(w)
    assert view["faith"].startswith(f"{tl['k']} strongest edges") and f"faithfulness {tl['f']:.3f}" in view["faith"]
    assert len(view["edges"].split(",")) == tl["n"]
    w.page.keyboard.press("Home")
    assert len(_view(w)["edges"].split(",")) < tl["n"]


def test_clicking_a_head_shows_its_attention_and_lens(explorer, grokked_composition):
    w = explorer
    w.page.locator("#gsx-graph g.gsx-node[data-node='a1.0@2']").click()
    panel = w.page.locator("#gsx-node").inner_text()
    assert panel.startswith("a1.0@2: head at r2")
    cells = w.page.evaluate(
        "Array.from(document.querySelectorAll('#gsx-node .gsx-cell')).map(g => "
        "[Number(g.dataset.row), Number(g.dataset.col), g.querySelector('text').textContent])"
    )
    ids = w.page.evaluate("gsExplorer.state.query")
    model = rounded_model(grokked_composition.model)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
        att = out.attentions[1][0, 0]
        lens = model.lm_head(model.transformer.ln_f(out.hidden_states[2][0, 2]))  # after block 1, at r2
    n = len(ids)
    assert len(cells) == n * n
    for row, col, label in cells:  # rows are drawn last query first
        assert float(label) == pytest.approx(float(att[n - 1 - row, col]), abs=0.006)
    vocab = grokked_composition.dataset.vocab
    readout = panel.split("lens after block 1 at r2:", 1)[1].split()
    assert readout[0] == vocab.tokens[int(lens.argmax())]  # the lens's top token after the head's block


def test_patching_the_last_state_gives_the_second_querys_answer(explorer):
    w = explorer
    n_states = w.page.evaluate("gsExplorer.model.cfg.n_layers + 1")
    answers = w.page.evaluate("""(() => { const m = gsExplorer.model, s = gsExplorer.state;
      const top = ids => { const l = m.run(ids).logits; return l.indexOf(Math.max(...l)); };
      return [top(s.query), top(s.other), s.query.length]; })()""")
    _, other, n_pos = answers
    w.page.locator(f"#gsx-patch .gsx-cell[data-row='{n_states - 1}'][data-col='{n_pos - 1}']").click()
    grid = w.page.evaluate("gsExplorer.state.patchGrid")
    assert grid[n_states - 1][n_pos - 1]["top"] == other  # the last state at the last position is the answer
    assert grid[n_states - 1][n_pos - 1]["pb"] == pytest.approx(max(g["pb"] for row in grid for g in row))
    assert "second answer" in w.page.locator("#gsx-patchinfo").inner_text()
