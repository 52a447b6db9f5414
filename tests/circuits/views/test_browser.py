"""The report in a real headless Chromium (Playwright): it loads offline, cleanly, and shows its figures.

Approach: Playwright drives Debian's Chromium (``browser.py``). The page is opened from
``file://`` behind a dead proxy (127.0.0.1:9) with background networking off; every request
the page makes and every console error, uncaught exception and failed load is recorded.
Then the DOM is queried for the figures (non-empty boxes, the circuitsvis components actually
rendered) and regions are screenshotted and decoded: a figure is visible when its pixels vary
(a blank region has a single colour).
"""

from __future__ import annotations

import numpy as np
import pytest

from .browser import Watched, launch

pytestmark = pytest.mark.xdist_group("report-browser")  # one worker builds the module's fixtures

RENDERED = "Array.from(document.querySelectorAll('div[id^=\"gs-attn-\"]')).every(d => d.childElementCount > 0)"
FIGURES = """(() => {
  const boxes = sel => Array.from(document.querySelectorAll(sel)).map(el => {
    const r = el.getBoundingClientRect();
    return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
            children: el.childElementCount};
  });
  return {heatmaps: boxes('svg.gs-heatmap'), graph: boxes('svg.gs-graph'), charts: boxes('svg.gs-chart'),
          attention: boxes('div[id^="gs-attn-"]'), text: document.body.innerText,
          injected: document.getElementsByTagName('e_0').length + document.getElementsByTagName('r_0').length};
})()"""


@pytest.fixture(scope="module")
def browser(chromium):
    with launch(chromium) as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, tiny_report):
    with Watched(browser) as w:
        w.open(tiny_report)
        # circuitsvis renders with React after load; the explorer marks itself ready
        w.page.wait_for_function(RENDERED, timeout=20_000)
        w.page.wait_for_selector("#gsx-root[data-ready='1']", timeout=20_000)
        yield w, w.page.evaluate(FIGURES)


def test_loads_with_no_network_request_and_no_console_error(page, tiny_report):
    w, _ = page
    assert w.requests == [tiny_report.resolve().as_uri()]  # the file itself, nothing else
    assert w.problems == []


def test_graph_heatmaps_and_attention_are_rendered(page):
    _, figs = page
    assert len(figs["heatmaps"]) == 6 and len(figs["graph"]) == 1 and len(figs["charts"]) >= 2
    for box in figs["heatmaps"] + figs["graph"] + figs["charts"]:
        assert box["width"] > 100 and box["height"] > 80
    assert figs["attention"] and all(box["children"] > 0 and box["height"] > 50 for box in figs["attention"])
    # token names are shown as text and never became elements
    assert "<e_" in figs["text"] and figs["injected"] == 0


def test_screenshots_are_not_blank(page):
    w, figs = page
    for name in ("graph", "heatmaps", "attention"):
        box = figs[name][0]
        pixels = w.screenshot({k: box[k] for k in ("x", "y", "width", "height")}).astype(np.float64)
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert pixels.std() > 10, f"the {name} region is blank"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name  # more than a border
    # a region with nothing in it is blank by the same measure
    top = figs["heatmaps"][0]
    empty = w.screenshot({"x": 2, "y": top["y"], "width": 20, "height": 40}).astype(np.float64)
    assert empty.std() < 1


def test_the_checks_catch_a_page_that_fetches(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><img src="https://example.com/x.png">'
        '<script>console.error("boom")</script></body></html>',
        encoding="utf-8",
    )
    with Watched(browser) as w:
        w.open(bad)
        w.page.wait_for_timeout(500)
        assert "https://example.com/x.png" in w.requests
        assert any("boom" in p for p in w.problems)
        assert any("load failed" in p for p in w.problems)  # the dead proxy refuses it
