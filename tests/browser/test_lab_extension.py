"""The JupyterLab extension in a real browser against a real server and broker.

What a user sees: the IoT channels sidebar lists the channels they may use with their
read/write flags; the broker shows connected; readings published by a device move the
channel's rate and offset; expanding a channel shows its readings live; the status bar
item shows the broker's state; a broker outage shows in both, and so does the recovery;
a server without channels shows the admin's hint; a server without the server extension
says so.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.brokers import Mosquitto
from tests.browser.conftest import NotEnabledServer, OpenLab
from tests.browser.lab import open_panel, wait_until
from tests.servers import LiveServer

# TEST_CHANNELS (tests/servers.py): "secret" is readable by another user only.
VISIBLE = {"telemetry": (True, False), "commands": (True, True), "numbers": (True, False)}


def channel_rows(page: Page) -> dict[str, tuple[bool, bool]]:
    rows = page.locator("li.jp-IoTCable-channel")
    result = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        name = row.get_attribute("data-channel") or ""
        result[name] = (
            row.get_attribute("data-read") == "true",
            row.get_attribute("data-write") == "true",
        )
    return result


def broker_state(page: Page) -> str | None:
    return page.locator(".jp-IoTCable-broker").get_attribute("data-state")


def status_state(page: Page) -> str | None:
    return page.locator(".jp-IoTCable-status").get_attribute("data-state")


def offset_of(page: Page, channel: str) -> int:
    text = page.locator(
        f'li.jp-IoTCable-channel[data-channel="{channel}"] .jp-IoTCable-offset'
    ).get_attribute("data-offset")
    return int(text) if text else -1


def rate_of(page: Page, channel: str) -> float:
    text = page.locator(f'li.jp-IoTCable-channel[data-channel="{channel}"]').get_attribute(
        "data-rate"
    )
    return float(text) if text else 0.0


class Publisher:
    """A device publishing telemetry at a steady pace on its own thread (paho)."""

    def __init__(self, mosquitto: Mosquitto, topic: str, per_second: float = 10.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        self.interval = 1.0 / per_second
        self.sent = 0
        self.marker = secrets.token_hex(4)
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.connect("127.0.0.1", mosquitto.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sent += 1
            payload = {"temperature": 20.0 + self.sent / 10, "seq": self.sent, "m": self.marker}
            self._client.publish(self.topic, json.dumps(payload), qos=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def publisher(mosquitto: Mosquitto, live_server: LiveServer) -> Iterator[Publisher]:
    device = Publisher(mosquitto, "plant/lyon/pump1/env")
    try:
        yield device
    finally:
        device.stop()


def test_sidebar_lists_the_readable_channels_and_the_broker_connected(
    live_server: LiveServer, open_lab: OpenLab, tmp_path: Path
) -> None:
    page = open_lab(live_server)
    wait_until(lambda: status_state(page) == "connected", what="status bar: connected")
    assert page.locator(".jp-IoTCable-status").get_attribute("data-level") == "ok"
    open_panel(page)
    wait_until(lambda: channel_rows(page) == VISIBLE, what=f"channels {VISIBLE}")
    assert broker_state(page) == "connected"
    assert page.locator(".jp-IoTCable-broker-state").inner_text() == "Broker connected"
    assert page.locator(".jp-IoTCable-problem").is_hidden()
    # The flags are shown as badges, and said to screen readers.
    commands = page.locator('li.jp-IoTCable-channel[data-channel="commands"]')
    assert commands.locator(".jp-IoTCable-flags").get_attribute("aria-label") == (
        "you may read and write"
    )
    assert commands.locator(".jp-IoTCable-flag").all_inner_texts() == ["R", "W"]
    # What the REST API says is what the panel shows.
    listed = live_server.get("iotcable/api/channels")["channels"]
    assert {c["name"]: (c["read"], c["write"]) for c in listed} == VISIBLE


def test_readings_move_the_rate_and_offset_and_show_live_when_expanded(
    live_server: LiveServer, open_lab: OpenLab, publisher: Publisher, tmp_path: Path
) -> None:
    page = open_lab(live_server)
    open_panel(page)
    wait_until(lambda: offset_of(page, "telemetry") > 0, what="telemetry offset > 0")
    first = offset_of(page, "telemetry")
    wait_until(lambda: rate_of(page, "telemetry") > 0, what="telemetry rate > 0")
    wait_until(lambda: offset_of(page, "telemetry") > first, what="the offset to move on")
    # The other channels got nothing.
    assert offset_of(page, "numbers") in (-1, 0)
    status = live_server.get("iotcable/api/status")["channels"]["telemetry"]
    assert status["offset"] >= offset_of(page, "telemetry")

    # Expand (keyboard, as a user without a mouse would): a live reading appears.
    toggle = page.locator(
        'li.jp-IoTCable-channel[data-channel="telemetry"] .jp-IoTCable-channel-toggle'
    )
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    readings = page.locator('li.jp-IoTCable-channel[data-channel="telemetry"] .jp-IoTCable-reading')
    readings.first.wait_for()
    wait_until(
        lambda: publisher.marker in readings.first.inner_text(), what="a live reading of ours"
    )
    live = page.locator('li.jp-IoTCable-channel[data-channel="telemetry"] .jp-IoTCable-live-state')
    assert live.get_attribute("data-state") == "live"
    assert "plant/lyon/pump1/env" in readings.first.inner_text()
    # Newest first, and still arriving: a later reading replaces the top one.
    top = readings.first.get_attribute("data-offset")
    wait_until(lambda: readings.first.get_attribute("data-offset") != top, what="newer reading")
    # The server counts our subscriber.
    wait_until(
        lambda: live_server.get("iotcable/api/status")["channels"]["telemetry"]["subscribers"] >= 1,
        what="the panel's subscription on the server",
    )
    # The sparkline has a line once two polls have happened.
    wait_until(
        lambda: bool(
            page.locator(
                'li.jp-IoTCable-channel[data-channel="telemetry"] .jp-IoTCable-sparkline path'
            ).get_attribute("d")
        ),
        what="the sparkline",
    )
    shot = tmp_path / "panel.png"
    page.locator("#jupyter-iotcable-panel").screenshot(path=str(shot))
    page.screenshot(path=str(tmp_path / "lab.png"))
    assert shot.stat().st_size > 1000

    # Collapse: the subscription ends on the server too.
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "false"
    wait_until(
        lambda: live_server.get("iotcable/api/status")["channels"]["telemetry"]["subscribers"] == 0,
        what="the subscription to end",
    )


def test_a_broker_outage_and_its_recovery_show_in_the_panel_and_status_bar(
    live_server: LiveServer, mosquitto: Mosquitto, open_lab: OpenLab
) -> None:
    page = open_lab(live_server)
    open_panel(page)
    wait_until(lambda: broker_state(page) == "connected", what="connected")
    outages = live_server.get("iotcable/api/status")["broker"]["outages"]

    mosquitto.kill()
    down = {"reconnecting", "disconnected"}
    wait_until(lambda: broker_state(page) in down, what="the panel to show the outage")
    wait_until(lambda: status_state(page) in down, what="the status bar to show the outage")
    assert page.locator(".jp-IoTCable-status").get_attribute("data-level") in {"warn", "down"}
    assert page.locator(".jp-IoTCable-broker-state").inner_text() in {
        "Broker reconnecting",
        "Broker disconnected",
    }
    wait_until(
        lambda: page.locator(".jp-IoTCable-fact-outages").inner_text() == str(outages + 1),
        what="the outage to be counted",
    )

    mosquitto.start()
    wait_until(lambda: broker_state(page) == "connected", timeout=60, what="recovery (panel)")
    wait_until(lambda: status_state(page) == "connected", what="recovery (status bar)")
    assert page.locator(".jp-IoTCable-status").get_attribute("data-level") == "ok"


def test_an_unconfigured_server_shows_the_hint(tmp_path: Path, open_lab: OpenLab) -> None:
    server = LiveServer(tmp_path / "server", None, channels={})
    server.start(wait_for_broker=False)
    try:
        page = open_lab(server)
        wait_until(lambda: status_state(page) == "not_configured", what="status: not configured")
        open_panel(page)
        problem = page.locator(".jp-IoTCable-problem")
        problem.wait_for(state="visible")
        assert problem.get_attribute("data-kind") == "not_configured"
        hint = server.get("iotcable/api/status")["hint"]
        assert problem.inner_text() == hint
        assert "c.IoTCableApp.channels" in hint
        assert page.locator("li.jp-IoTCable-channel").count() == 0
        assert page.locator(".jp-IoTCable-broker").is_hidden()
    finally:
        server.stop()


def test_a_server_without_the_server_extension_says_so(tmp_path: Path, open_lab: OpenLab) -> None:
    server = NotEnabledServer(tmp_path / "server", None)
    server.start(wait_for_broker=False)
    try:
        page = open_lab(server)
        wait_until(lambda: status_state(page) == "not_enabled", what="status: not enabled")
        open_panel(page)
        problem = page.locator(".jp-IoTCable-problem")
        problem.wait_for(state="visible")
        assert problem.get_attribute("data-kind") == "not_enabled"
        assert "server extension is not enabled" in problem.inner_text()
        assert "jupyter server extension enable jupyter_iotcable" in problem.inner_text()
    finally:
        server.stop()


def test_live_readings_come_back_after_the_jupyter_server_restarts(
    live_server: LiveServer, open_lab: OpenLab, publisher: Publisher
) -> None:
    """The transport reconnects (with backoff) to a restarted server and subscribes again."""
    page = open_lab(live_server)
    open_panel(page)
    row = page.locator('li.jp-IoTCable-channel[data-channel="telemetry"]')
    row.locator(".jp-IoTCable-channel-toggle").click()
    live = row.locator(".jp-IoTCable-live-state")
    readings = row.locator(".jp-IoTCable-reading")
    wait_until(lambda: live.get_attribute("data-state") == "live", what="live")
    readings.first.wait_for()

    live_server.stop()
    wait_until(
        lambda: live.get_attribute("data-state") in {"reconnecting", "connecting"},
        what="the panel to see the connection lost",
    )
    problem = page.locator(".jp-IoTCable-problem")
    wait_until(lambda: problem.get_attribute("data-kind") == "unreachable", what="unreachable")
    before = publisher.sent

    live_server.start()
    # A new server: a new epoch, offsets from 0 again; the row is still expanded and
    # shows readings published after the restart.
    wait_until(lambda: live.get_attribute("data-state") == "live", timeout=90, what="live again")
    wait_until(
        lambda: int(json.loads(readings.first.locator("code").inner_text())["seq"]) > before,
        timeout=60,
        what="a reading published after the restart",
    )
    wait_until(lambda: problem.is_hidden(), what="the problem to clear")
    assert row.locator(".jp-IoTCable-channel-toggle").get_attribute("aria-expanded") == "true"
