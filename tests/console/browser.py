"""Headless Chromium for the console tests, driven by Playwright, watched as it browses.

The browser is the system's Chromium (`/usr/bin/chromium`, Debian's package; Playwright's own
browser downloads are never used). Every request a page makes is intercepted: one to any host
but the edge is recorded and aborted. Every console message of type error and every uncaught
page error is recorded. Where Chromium or Playwright is missing the tests skip, except in CI
(`CI` set), where they fail: CI installs both (`.ci/run`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("WARMGATE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"


def require_browser() -> Any:
    """The Playwright module, or a skip (a failure in CI) naming what is missing."""
    missing = []
    if shutil.which(CHROMIUM) is None:
        missing.append(f"Chromium at {CHROMIUM} (make chromium)")
    sync_api: Any = None
    try:
        from playwright import sync_api  # noqa: PLC0415 optional: only the browser tests need it
    except ImportError:
        missing.append("playwright (the dev extra)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_api


class Watched:
    """A browser context limited to the edge, with what its pages did."""

    def __init__(self, context: Any, edge_root: str) -> None:
        self.context = context
        self.edge_host = urlsplit(edge_root).netloc
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).netloc != self.edge_host:
            self.foreign.append(url)
            route.abort()
            return
        route.continue_()

    def page(self) -> Any:
        page = self.context.new_page()
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page


@contextmanager
def chromium() -> Iterator[Any]:
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def watched_context(browser: Any, edge_root: str) -> Iterator[Watched]:
    context = browser.new_context(
        base_url=edge_root, viewport={"width": 1280, "height": 900}, device_scale_factor=1
    )
    try:
        yield Watched(context, edge_root)
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
