"""Headless Chromium for the report's browser tests, driven by Playwright.

The browser is Debian's Chromium (found on PATH; installed with apt-get when missing and root
or sudo is available): Playwright launches it by path (``executable_path``), so no browser is
downloaded. Every page is opened from ``file://`` behind a dead proxy (127.0.0.1:9) with
background networking off; :class:`Watched` records every request the page makes, every
console error or warning, uncaught exception and failed load. :func:`png_pixels` decodes a
screenshot so tests can check that a region is not blank.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARGS = (
    "--proxy-server=127.0.0.1:9",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--no-sandbox",
)


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def install_chromium(timeout: float = 900) -> str | None:
    """Install Debian's chromium package (as root, with apt-get) when no Chromium is on PATH."""
    found = find_chromium()
    if found or shutil.which("apt-get") is None:
        return found
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update", "-qq"], env=env, timeout=timeout, capture_output=True)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "chromium"], env=env, timeout=timeout, capture_output=True
    )
    return find_chromium()


@contextmanager
def launch(binary: str) -> Iterator[Any]:
    """A Playwright ``Browser`` on the given Chromium binary (headless, offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, headless=True, args=list(ARGS))
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """One page that records its requests and problems (console errors and warnings, uncaught
    exceptions, failed loads)."""

    def __init__(self, browser: Any, *, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"exception: {err}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"load failed: {r.url} {r.failure}"))

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning", "assert"):
            self.problems.append(f"console.{msg.type}: {msg.text}")

    def open(self, path: Path) -> Watched:
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        return self

    def screenshot(self, clip: dict[str, float] | None = None) -> np.ndarray:
        """A screenshot (of ``clip`` = x, y, width, height in page pixels) as an RGB array."""
        kwargs: dict[str, Any] = {"full_page": True} if clip is None else {"clip": clip, "full_page": True}
        return png_pixels(self.page.screenshot(**kwargs))

    def close(self) -> None:
        self.context.close()

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def png_pixels(data: bytes) -> np.ndarray:
    """Decode a PNG into an ``height x width x 3`` uint8 array (Pillow)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
