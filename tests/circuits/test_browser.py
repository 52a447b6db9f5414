"""The report in a real headless Chromium: it loads offline, cleanly, and shows its figures.

Approach: Chromium is driven over the DevTools protocol on a pipe (``browser.py``). The page
is opened from ``file://`` with a dead proxy (127.0.0.1:9) and background networking off;
the protocol records every request the page makes and every console message, uncaught
exception and error log entry. Then the DOM is queried for the figures (non-empty boxes,
the circuitsvis components actually rendered) and regions are screenshotted and decoded:
a figure is visible when its pixels vary (a blank region has a single colour).
"""

from __future__ import annotations

import numpy as np
import pytest

from .browser import Chromium

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
def page(chromium, tiny_report):
    with Chromium(chromium) as browser:
        browser.open(tiny_report)
        # circuitsvis renders with React after load; wait until every attention widget has content
        for _ in range(50):
            if browser.evaluate(RENDERED):
                break
            browser.drain(0.1)
        browser.drain(0.5)
        yield browser, browser.evaluate(FIGURES)


def test_loads_with_no_network_request_and_no_console_error(page, tiny_report):
    browser, _ = page
    assert browser.requests() == [tiny_report.resolve().as_uri()]  # the file itself, nothing else
    assert browser.problems() == []


def test_graph_heatmaps_and_attention_are_rendered(page):
    _, figs = page
    assert len(figs["heatmaps"]) == 6 and len(figs["graph"]) == 1 and len(figs["charts"]) >= 2
    for box in figs["heatmaps"] + figs["graph"] + figs["charts"]:
        assert box["width"] > 100 and box["height"] > 80
    assert figs["attention"] and all(box["children"] > 0 and box["height"] > 50 for box in figs["attention"])
    # token names are shown as text and never became elements
    assert "<e_" in figs["text"] and figs["injected"] == 0


def _region(browser, box) -> np.ndarray:
    return browser.screenshot({k: box[k] for k in ("x", "y", "width", "height")})


def test_screenshots_are_not_blank(page):
    browser, figs = page
    for name in ("graph", "heatmaps", "attention"):
        pixels = _region(browser, figs[name][0]).astype(np.float64)
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert pixels.std() > 10, f"the {name} region is blank"
        # more than a border: many distinct colours
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name
    # a region with nothing in it is blank by the same measure
    top = figs["heatmaps"][0]
    empty = browser.screenshot({"x": 2, "y": top["y"], "width": 20, "height": 40}).astype(np.float64)
    assert empty.std() < 1


def test_the_checks_catch_a_page_that_fetches(chromium, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="https://example.com/x.png">'
                   '<script>console.error("boom")</script></body></html>', encoding="utf-8")
    with Chromium(chromium) as browser:
        browser.open(bad)
        browser.drain(1.0)
        assert "https://example.com/x.png" in browser.requests()
        assert any("boom" in p for p in browser.problems())
        assert any("load failed" in p for p in browser.problems())  # the dead proxy refuses it
