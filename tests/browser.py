"""Browser tests' parts: Playwright driving Debian's Chromium against `nurture serve` on a
real port, and an axe-core accessibility check.

Chromium comes from the system (`apt-get install chromium`; `.ci/run` installs it): Playwright's
own download is not used. Without /usr/bin/chromium the browser tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("NURTURE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
"""The browser the tests drive (NURTURE_CHROMIUM overrides)."""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--no-first-run"]

SCREENSHOTS = os.environ.get("NURTURE_SCREENSHOTS")
"""Folder the tests save their screenshots in, when set (the README's come from there)."""

BLOCKING_IMPACTS = ("serious", "critical")


def require_chromium() -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` to run the browser "
                    "tests (.ci/run does)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def launch() -> Iterator[Any]:
    """A Chromium browser for a test module."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page whose console errors (a CSP refusal among them), script errors and failed
    stylesheets, images or scripts are kept. A page answered 4xx on purpose is no error."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.errors.append(f"{response.status} for {response.url}")


def accessibility_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['impact']}: {v['id']} ({v['help']}) at "
            f"{', '.join(n['target'][0] for n in v['nodes'][:3])}"
            for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]


def screenshot(page: Any, name: str) -> Path | None:
    if not SCREENSHOTS:
        return None
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
