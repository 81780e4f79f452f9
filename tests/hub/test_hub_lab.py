"""JupyterLab under the hub, in Chromium: bob logs in and his sidebar shows what he may use.

bob logs in on the hub's login page (as a person would), lands in JupyterLab on his own
server, opens the IoT sidebar: it lists the channels bob may read or write (telemetry,
read only; not commands), the broker as the service sees it, and live readings of the
session's device, all relayed by bob's server to the service. One hub for the run (the
session's), one Chromium for this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.browser.conftest import LAB_READY_TIMEOUT_MS, _launch
from tests.browser.lab import open_panel, wait_until
from tests.hub.conftest import Hub


@pytest.fixture
def jp_asyncio_loop() -> None:
    """No in-process Jupyter server here; pytest-jupyter's loop fixture would close
    Playwright's running loop (see tests/browser/conftest.py)."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """No in-process ServerApp to clean up."""


@pytest.fixture
def bobs_lab(hub: Hub, tmp_path: Path) -> Iterator[Page]:
    hub.server("bob")  # the session's server of bob (other tests share it)
    with sync_playwright() as pw:
        context = _launch(pw, tmp_path / "chromium-profile")
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(hub.url + "hub/login", timeout=LAB_READY_TIMEOUT_MS)
            page.locator("input[name=username]").fill("bob")
            page.locator("input[name=password]").fill(hub.login_password)
            page.locator("input[type=submit], button[type=submit]").first.click()
            page.wait_for_url("**/user/bob/lab**", timeout=LAB_READY_TIMEOUT_MS)
            page.locator(".jp-IoTCable-status").wait_for(timeout=LAB_READY_TIMEOUT_MS)
            page.set_default_timeout(30_000)
            yield page
            assert not [e for e in errors if "iotcable" in e.lower()], errors
        finally:
            context.close()


def test_bobs_sidebar_lists_what_bob_may_use_with_live_readings(
    bobs_lab: Page, tmp_path: Path
) -> None:
    page = bobs_lab
    open_panel(page)
    rows = page.locator("li.jp-IoTCable-channel")
    wait_until(lambda: rows.count() > 0, what="the channel list")
    listed = {
        rows.nth(i).get_attribute("data-channel"): (
            rows.nth(i).get_attribute("data-read"),
            rows.nth(i).get_attribute("data-write"),
        )
        for i in range(rows.count())
    }
    assert listed == {"telemetry": ("true", "false")}, "bob may read telemetry, nothing else"
    telemetry = page.locator('li.jp-IoTCable-channel[data-channel="telemetry"]')
    assert telemetry.locator(".jp-IoTCable-flag").all_inner_texts() == ["R"]
    # The broker as the service sees it, relayed by bob's server.
    wait_until(
        lambda: page.locator(".jp-IoTCable-broker").get_attribute("data-state") == "connected",
        what="the service's broker connected",
    )

    # Expanded, telemetry shows the device's readings as they arrive.
    telemetry.locator(".jp-IoTCable-channel-toggle").click()
    readings = telemetry.locator(".jp-IoTCable-reading")
    readings.first.wait_for()
    live = telemetry.locator(".jp-IoTCable-live-state")
    wait_until(lambda: live.get_attribute("data-state") == "live", what="live")
    assert readings.first.locator(".jp-IoTCable-reading-topic").inner_text() == "lyon/pump1"
    first = readings.first.get_attribute("data-offset")
    wait_until(lambda: readings.first.get_attribute("data-offset") != first, what="a newer reading")
    shot = tmp_path / "bob-sidebar.png"
    page.locator("#jupyter-iotcable-panel").screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
