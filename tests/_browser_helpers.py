"""Headless Chromium for the tests of the ``localize --html`` page.

The system browser (Debian package ``chromium``) driven by Playwright over a pipe:
no browser download, no network. Without a browser the tests fail with the install
command (a skipped test would check nothing); ``.ci/run`` installs Chromium when missing.
"""
from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks._chromium import chromium_path

INSTALL = "sudo apt-get install chromium (Debian/Ubuntu) and pip install playwright (the dev extra)"


def launch_chromium(playwright):
    """A headless Chromium, or a failure naming the install command."""
    path = chromium_path()
    if path is None:
        pytest.fail(f"no Chromium found for the browser tests of `localize --html`: {INSTALL}")
    return playwright.chromium.launch(executable_path=path, args=["--autoplay-policy=no-user-gesture-required"])


def sync_playwright_or_fail():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed for the browser tests of `localize --html`: {INSTALL}")
    return sync_playwright()


class PageUnderTest:
    """A page opened from a ``file://`` URL that records console errors and uncaught exceptions."""

    def __init__(self, browser, html_path: Path, viewport=(1280, 900)):
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(Path(html_path).resolve().as_uri())
        self.wait_until("document.documentElement.dataset.ready !== undefined")

    def js(self, expression: str, argument=None):
        return self.page.evaluate(expression, argument)

    def wait_until(self, expression: str, argument=None, timeout: float = 15.0) -> None:
        """Poll ``expression`` from outside the page (Playwright's own waiting evals, which the page's CSP forbids)."""
        deadline = time.monotonic() + timeout
        while not self.js(expression, argument):
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout} s: {expression}")
            time.sleep(0.05)

    def wait_for_video(self) -> None:
        """Until the player has decoded a frame (``HAVE_CURRENT_DATA``)."""
        self.wait_until("document.getElementById('video').readyState >= 2")

    def cells(self, kind: str = "predicted") -> list[tuple[int, str]]:
        return [tuple(x) for x in self.js(
            "kind => [...document.querySelectorAll(`.cell[data-kind=${kind}]`)]"
            ".map(c => [+c.dataset.second, c.dataset.label])", kind)]

    def current_second(self) -> int | None:
        second = self.js("(document.querySelector('.cell.current[data-kind=predicted]') || {dataset: {}})"
                         ".dataset.second ?? null")
        return None if second is None else int(second)

    def click_cell(self, second: int) -> None:
        self.page.click(f".cell[data-kind=predicted][data-second='{second}']")

    def overlay_pixels(self) -> np.ndarray:
        """RGBA ``[H, W, 4]`` of the canvas drawn over the video."""
        url = self.js("document.getElementById('overlay').toDataURL('image/png')")
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            return np.asarray(image.convert("RGBA"))

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        target = self.page.locator(selector) if selector else self.page
        target.screenshot(path=str(path), **({} if selector else {"full_page": True}))
        return path

    def close(self) -> None:
        self.page.close()
