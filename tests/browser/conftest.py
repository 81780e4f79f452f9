"""Browser tests of the JupyterLab extension: Debian's Chromium driven by Playwright.

Each test gets a real Jupyter server (``LiveServer``: ``python -m jupyter_server`` with
JupyterLab and the extension, as built and linked into the venv by ``.ci/setup``), the
test's own mosquitto, and a fresh Chromium profile. The browser is ``/usr/bin/chromium``
(Debian's package), never one Playwright downloads.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

import jupyter_iotcable
from tests.brokers import Mosquitto
from tests.servers import LiveServer

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (tests run as root), and none of Chromium's own network traffic:
# this machine's network is closed, and Chromium would keep trying Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAB_READY_TIMEOUT_MS = 60_000

BUILT = Path(jupyter_iotcable.__file__).parent / "labextension" / "package.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Starting Lab in a browser takes a while on a shared 2-core machine.
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.timeout(240))


@pytest.fixture
def playwright_session() -> Iterator[Playwright]:
    # Per test: the sync API runs an event loop of its own, which must be gone before
    # pytest-jupyter closes its loop at the test's teardown.
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_context(playwright_session: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """A Chromium with a fresh, empty profile (user-data-dir) for this test."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run bash .ci/setup test"
    assert BUILT.exists(), "the JupyterLab extension is not built: run bash .ci/setup test"
    profile = tmp_path / "chromium-profile"
    context = playwright_session.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900},
    )
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


class NotEnabledServer(LiveServer):
    """A server where the iotcable server extension is disabled (its REST answers 404)."""

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["ServerApp"]["jpserver_extensions"]["jupyter_iotcable"] = False
        return config


@pytest.fixture
def live_server(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LiveServer]:
    """A Jupyter server with Lab and the extension, its broker the test's mosquitto."""
    server = LiveServer(tmp_path / "server", mosquitto)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def assert_lab_served(server: LiveServer) -> None:
    """JupyterLab must be a server extension of ``python -m jupyter_server`` here."""
    import urllib.request

    req = urllib.request.Request(
        server.url + "lab", headers={"Authorization": f"token {server.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    assert "jupyter-config-data" in body, "JupyterLab is not served at /lab"
    found = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', body, re.S)
    assert found, "no jupyter-config-data in /lab"
    config = json.loads(found.group(1))
    names = [ext.get("name") for ext in config.get("federated_extensions", [])]
    assert "jupyter-iotcable" in names, f"Lab does not load the extension; it loads {names}"


OpenLab = Callable[[LiveServer], Page]


@pytest.fixture
def open_lab(browser_context: BrowserContext) -> OpenLab:
    """Open ``/lab?token=...`` of a server and wait until Lab and the extension are up."""

    def open_(server: LiveServer) -> Page:
        assert_lab_served(server)
        page = browser_context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}lab?token={server.token}", timeout=LAB_READY_TIMEOUT_MS)
        # The status bar item appears once our plugin has activated.
        page.locator(".jp-IoTCable-status").wait_for(timeout=LAB_READY_TIMEOUT_MS)
        page.set_default_timeout(30_000)
        assert not [e for e in errors if "iotcable" in e.lower()], errors
        return page

    return open_
