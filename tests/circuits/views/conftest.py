"""Fixtures of the views' tests: the tiny run's report and a Chromium binary for the browser tests."""

from __future__ import annotations

import pytest

from ...tiny import single_thread
from .browser import find_chromium, install_chromium


@pytest.fixture(scope="session")
def tiny_report(tiny_run_dir, tmp_path_factory):
    """The HTML report of the tiny run (its path; the circuit JSON sits next to it)."""
    from circuits.views.report import write_report

    with single_thread():
        return write_report(tiny_run_dir, tmp_path_factory.mktemp("report") / "report.html", n=30)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A Chromium binary; installed with apt-get (Debian's ``chromium``) when missing. Never skipped."""
    path = find_chromium() or install_chromium()
    if path is None:
        pytest.fail("no Chromium found and `apt-get install -y chromium` failed; install Debian's chromium package")
    return path
