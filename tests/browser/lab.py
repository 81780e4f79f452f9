"""Helpers for the browser tests: open the sidebar, read it, wait for it to change."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page


def open_panel(page: Page) -> None:
    """Open the sidebar by clicking the status bar item (what a user would do)."""
    page.locator(".jp-IoTCable-status").click()
    page.locator("#jupyter-iotcable-panel").wait_for(state="visible")


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds (the panel polls the status every 3 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
