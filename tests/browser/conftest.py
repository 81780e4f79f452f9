"""Browser tests of the JupyterLab extension: Debian's Chromium driven by Playwright.

A test gets a real Jupyter server (``LiveServer``: ``python -m jupyter_server`` with
JupyterLab and the extension, as built and linked into the venv by ``.ci/setup``), a
real mosquitto, and a fresh Chromium profile: its own (``open_lab``) when it changes
what it looks at, or one per module (``shared_browser_context``) for tests that only
read from a server they share. The browser is ``/usr/bin/chromium``
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
def jp_asyncio_loop() -> None:
    """Browser tests run no in-process Jupyter server (LiveServer is a subprocess), so
    pytest-jupyter's autouse loop fixture has nothing to do here; it would close "the
    current loop" after each test, which is Playwright's (still running) when a module
    shares one browser."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """No in-process ServerApp to clean up (see jp_asyncio_loop)."""


def _launch(pw: Playwright, profile: Path) -> BrowserContext:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run bash .ci/setup test"
    assert BUILT.exists(), "the JupyterLab extension is not built: run bash .ci/setup test"
    return pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900},
    )


@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    # One per module: the sync API runs an event loop of its own (one at a time in a
    # thread), which must be gone before a module of pytest-jupyter tests starts theirs.
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_context(playwright_session: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """A Chromium with a fresh, empty profile (user-data-dir) for this test."""
    profile = tmp_path / "chromium-profile"
    context = _launch(playwright_session, profile)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_browser_context(
    playwright_session: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """One Chromium for the tests of a module that share a server and only read from it
    (starting Lab in a fresh browser costs 8-10 s a test on this machine)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    context = _launch(playwright_session, profile)
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


def open_lab_in(context: BrowserContext, server: LiveServer) -> Page:
    """Open ``/lab?token=...`` of a server and wait until Lab and the extension are up."""
    assert_lab_served(server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}lab?token={server.token}", timeout=LAB_READY_TIMEOUT_MS)
    # The status bar item appears once our plugin has activated.
    page.locator(".jp-IoTCable-status").wait_for(timeout=LAB_READY_TIMEOUT_MS)
    page.set_default_timeout(30_000)
    assert not [e for e in errors if "iotcable" in e.lower()], errors
    return page


@pytest.fixture
def open_lab(browser_context: BrowserContext) -> OpenLab:
    """Open ``/lab?token=...`` of a server and wait until Lab and the extension are up."""

    def open_(server: LiveServer) -> Page:
        return open_lab_in(browser_context, server)

    return open_
