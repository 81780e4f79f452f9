"""The JupyterLab extension in a real browser against a real server and broker.

What a user sees: the IoT channels sidebar lists the channels they may use with their
read/write flags; the broker shows connected; readings published by a device move the
channel's rate and offset; expanding a channel shows its readings live as `field = value`
lines; a channel they may write to has a form that publishes and shows the server's
answer; the Settings Editor changes how many readings are shown; the status bar item shows
the broker's state; a broker outage shows in both, and so does the recovery; a server
without channels shows the admin's hint; a server without the server extension says so.

The tests that only read from their server (and publish, which only adds readings) share
one server, one broker, one browser and one Lab page (``sidebar``); each leaves the panel
as it found it (rows collapsed). Those that stop, restart or reconfigure a server get
their own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page

from tests.brokers import Mosquitto
from tests.browser.conftest import NotEnabledServer, OpenLab, open_lab_in
from tests.browser.lab import open_panel, wait_until
from tests.servers import TEST_CHANNELS, LiveServer

#: The test channels and one a user may write but not read (numbers only).
CHANNELS: dict[str, dict[str, Any]] = {
    **TEST_CHANNELS,
    "setpoints": {
        "topics": ["plant/+/+/setpoint"],
        "format": "number",
        "write": ["*"],
        "description": "setpoints for the pumps",
    },
}
# TEST_CHANNELS (tests/servers.py): "secret" is readable by another user only.
VISIBLE = {
    "telemetry": (True, False),
    "commands": (True, True),
    "numbers": (True, False),
    "setpoints": (False, True),
}
CLOCK = re.compile(r"^\d\d:\d\d:\d\d$")
CLOCK_MS = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")


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


def row_of(page: Page, channel: str) -> Locator:
    return page.locator(f'li.jp-IoTCable-channel[data-channel="{channel}"]')


def broker_state(page: Page) -> str | None:
    return page.locator(".jp-IoTCable-broker").get_attribute("data-state")


def status_state(page: Page) -> str | None:
    return page.locator(".jp-IoTCable-status").get_attribute("data-state")


def offset_of(page: Page, channel: str) -> int:
    text = row_of(page, channel).locator(".jp-IoTCable-offset").get_attribute("data-offset")
    return int(text) if text else -1


def rate_of(page: Page, channel: str) -> float:
    text = row_of(page, channel).get_attribute("data-rate")
    return float(text) if text else 0.0


def fields_of(reading: Locator) -> dict[str, str]:
    """A reading's `field = value` lines as shown."""
    return {key: value for key, value, _, _ in reading_of(reading)["fields"]}


READING_JS = """node => ({
    offset: node.dataset.offset,
    time: node.querySelector('.jp-IoTCable-reading-time').textContent,
    topic: node.querySelector('.jp-IoTCable-reading-topic').textContent,
    topicTitle: node.querySelector('.jp-IoTCable-reading-topic').title,
    eq: node.querySelector('.jp-IoTCable-field-eq')?.textContent,
    fields: [...node.querySelectorAll('.jp-IoTCable-field-value')].map(value => [
        value.previousElementSibling.previousElementSibling.textContent,
        value.textContent, value.dataset.kind, value.title
    ])
})"""


def reading_of(reading: Locator) -> dict[str, Any]:
    """One reading as shown, read at once (the list is redrawn as readings arrive)."""
    shown: dict[str, Any] = reading.evaluate(READING_JS)
    return shown


def subscribers(server: LiveServer, channel: str) -> int:
    count: int = server.get("iotcable/api/status")["channels"][channel]["subscribers"]
    return count


def rest_publish(server: LiveServer, channel: str, body: dict[str, Any]) -> tuple[int, Any]:
    """What the REST endpoint answers to a publish (the sidebar's form uses it too)."""
    req = urllib.request.Request(
        f"{server.url}iotcable/api/channels/{channel}/publish",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Publisher:
    """A device publishing telemetry at a steady pace on its own thread (paho)."""

    def __init__(
        self,
        mosquitto: Mosquitto,
        topic: str,
        per_second: float = 10.0,
        *,
        with_time: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        self.interval = 1.0 / per_second
        self.sent = 0
        self.marker = secrets.token_hex(4)
        self.with_time = with_time
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.connect("127.0.0.1", mosquitto.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sent += 1
            payload: dict[str, Any] = {
                "temperature": 20.0 + self.sent / 10,
                "seq": self.sent,
                "m": self.marker,
            }
            if self.with_time:
                payload["ts"] = time.time()  # the device's clock, epoch seconds
            self._client.publish(self.topic, json.dumps(payload), qos=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()


class Device:
    """A device listening to MQTT topics (paho): what the broker delivered to it."""

    def __init__(self, mosquitto: Mosquitto, topic_filter: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda _c, _u, msg: self.received.append(
            (msg.topic, bytes(msg.payload))
        )
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect("127.0.0.1", mosquitto.port)
        self._client.loop_start()
        self._client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(10), "the device's subscription was not acknowledged"

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


# -- the shared server, broker, browser and page ------------------------------------------


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, shared_broker: Mosquitto
) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("server"), shared_broker, channels=CHANNELS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_page(shared_browser_context: BrowserContext, shared_server: LiveServer) -> Page:
    page = open_lab_in(shared_browser_context, shared_server)
    open_panel(page)
    wait_until(lambda: channel_rows(page) == VISIBLE, what=f"channels {VISIBLE}")
    return page


@pytest.fixture
def sidebar(shared_page: Page) -> Iterator[Page]:
    """The shared Lab page with the sidebar open; its rows collapsed again afterwards."""
    yield shared_page
    for toggle in shared_page.locator('.jp-IoTCable-channel-toggle[aria-expanded="true"]').all():
        toggle.click()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save what they saw: $IOTCABLE_SCREENSHOTS, else a temporary dir."""
    wanted = os.environ.get("IOTCABLE_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        return Path(wanted)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def device(shared_broker: Mosquitto) -> Iterator[Device]:
    listener = Device(shared_broker, "plant/#")
    try:
        yield listener
    finally:
        listener.stop()


# -- tests on the shared page ---------------------------------------------------------------


def test_sidebar_lists_the_channels_with_their_facts_and_the_broker_connected(
    sidebar: Page, shared_server: LiveServer
) -> None:
    page = sidebar
    wait_until(lambda: status_state(page) == "connected", what="status bar: connected")
    assert page.locator(".jp-IoTCable-status").get_attribute("data-level") == "ok"
    assert broker_state(page) == "connected"
    assert page.locator(".jp-IoTCable-broker-state").inner_text() == "Broker connected"
    assert page.locator(".jp-IoTCable-problem").is_hidden()
    # The flags are shown as badges, and said to screen readers.
    commands = row_of(page, "commands")
    assert commands.locator(".jp-IoTCable-flags").get_attribute("aria-label") == (
        "you may read and write"
    )
    assert commands.locator(".jp-IoTCable-flag").all_inner_texts() == ["R", "W"]
    # What the REST API says is what the panel shows.
    listed = shared_server.get("iotcable/api/channels")["channels"]
    assert {c["name"]: (c["read"], c["write"]) for c in listed} == VISIBLE

    # A readable channel's facts, in words with the right plural.
    numbers = row_of(page, "numbers")
    facts = numbers.locator(".jp-IoTCable-facts")
    assert facts.is_visible()
    assert numbers.locator(".jp-IoTCable-subscribers").inner_text() == "0 subscribers"
    assert numbers.locator(".jp-IoTCable-offset").inner_text() == "offset 0"
    assert numbers.locator(".jp-IoTCable-history").inner_text() == "0 in history"
    # A write-only channel has no counters: no facts row, no sparkline, no rate (the
    # facts row used to show "0 subscribers, offset -" there: display: flex beat hidden).
    setpoints = row_of(page, "setpoints")
    assert setpoints.locator(".jp-IoTCable-flag").all_inner_texts() == ["W"]
    assert setpoints.locator(".jp-IoTCable-facts").is_hidden()
    assert setpoints.locator(".jp-IoTCable-sparkline").is_hidden()
    assert setpoints.locator(".jp-IoTCable-rate").inner_text() == ""
    assert "subscriber" not in setpoints.inner_text()
    assert setpoints.locator(".jp-IoTCable-description").inner_text() == ("setpoints for the pumps")


def test_readings_show_as_field_lines_and_move_the_rate_and_offset(
    sidebar: Page, shared_server: LiveServer, shared_broker: Mosquitto, screenshots: Path
) -> None:
    page = sidebar
    publisher = Publisher(shared_broker, "plant/lyon/pump1/env", with_time=True)
    try:
        wait_until(lambda: offset_of(page, "telemetry") > 0, what="telemetry offset > 0")
        first = offset_of(page, "telemetry")
        wait_until(lambda: rate_of(page, "telemetry") > 0, what="telemetry rate > 0")
        wait_until(lambda: offset_of(page, "telemetry") > first, what="the offset to move on")
        # The other channels got nothing.
        assert offset_of(page, "numbers") == 0
        status = shared_server.get("iotcable/api/status")["channels"]["telemetry"]
        assert status["offset"] >= offset_of(page, "telemetry")

        # Expand (keyboard, as a user without a mouse would): live readings appear.
        row = row_of(page, "telemetry")
        toggle = row.locator(".jp-IoTCable-channel-toggle")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.focus()
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true"
        readings = row.locator(".jp-IoTCable-reading")
        readings.first.wait_for()
        wait_until(
            lambda: fields_of(readings.first).get("m") == publisher.marker,
            what="a live reading of ours",
        )
        assert row.locator(".jp-IoTCable-live-state").get_attribute("data-state") == "live"

        # One reading: its time, the topic shortened by the channel's template
        # (plant/{site}/{device}/env) with the whole topic on hover, then field = value.
        top = reading_of(readings.first)
        assert CLOCK.match(top["time"]), top
        assert top["topic"] == "lyon/pump1"
        assert top["topicTitle"] == "plant/lyon/pump1/env\nsite = lyon, device = pump1"
        assert top["eq"] == " = "
        keys = [key for key, _, _, _ in top["fields"]]
        assert keys == ["temperature", "seq", "m", "ts"], top
        (_, temperature, kind, exact), (_, seq_text, _, _), _, (_, ts, ts_kind, ts_title) = top[
            "fields"
        ]
        seq = int(seq_text)
        assert seq >= 1
        # Rounded for the eye (20.0 + seq / 10 is 21.299999999999997 at seq 13), with the
        # channel's unit (TEST_CHANNELS: temperature in °C), the exact value on hover...
        assert (temperature, kind) == (f"{20.0 + seq / 10:.6g} °C", "number")
        # JavaScript writes a whole float without '.0' (26, not Python's 26.0: seq 60).
        value = 20.0 + seq / 10
        assert exact == f"{int(value) if value.is_integer() else value!r} °C"
        # ...and the device's epoch clock as a time of day, its date and raw value on hover.
        assert CLOCK_MS.match(ts), ts
        assert ts_kind == "time"
        assert re.match(r"^\d{4}-\d\d-\d\dT.* \(\d+\.\d+\)$", ts_title), ts_title
        newest = top["offset"]

        # Newest first, still arriving, and never more than the setting's 5.
        wait_until(lambda: readings.first.get_attribute("data-offset") != newest, what="newer")
        wait_until(lambda: readings.count() == 5, what="5 readings shown")
        # The server counts our subscriber, and the panel says so in the singular.
        wait_until(lambda: subscribers(shared_server, "telemetry") == 1, what="our subscription")
        wait_until(
            lambda: row.locator(".jp-IoTCable-subscribers").inner_text() == "1 subscriber",
            what="'1 subscriber'",
        )
        # The sparkline has a line once two polls have happened.
        wait_until(
            lambda: bool(row.locator(".jp-IoTCable-sparkline path").get_attribute("d")),
            what="the sparkline",
        )
        shot = screenshots / "sidebar-readings.png"
        page.locator("#jupyter-iotcable-panel").screenshot(path=str(shot))
        assert shot.stat().st_size > 1000

        # Collapse: the subscription ends on the server too.
        toggle.focus()
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "false"
        wait_until(lambda: subscribers(shared_server, "telemetry") == 0, what="unsubscribed")
    finally:
        publisher.stop()


def test_the_publish_form_sends_a_command_and_shows_the_servers_answer(
    sidebar: Page, shared_server: LiveServer, device: Device, screenshots: Path
) -> None:
    page = sidebar
    row = row_of(page, "commands")
    row.locator(".jp-IoTCable-channel-toggle").click()
    form = row.locator("form.jp-IoTCable-publish")
    form.wait_for()
    assert form.get_attribute("aria-label") == "Publish to commands"
    topic = form.get_by_label("Topic")
    payload = form.get_by_label("Payload (JSON)")
    send = form.get_by_role("button", name="Send")
    result = form.locator(".jp-IoTCable-publish-result")
    # The filters a topic must match, as the server lists them for writers.
    assert form.locator(".jp-IoTCable-publish-hint").inner_text() == (
        "One topic matching plant/+/+/cmd"
    )
    assert topic.get_attribute("placeholder") == "plant/+/+/cmd"

    # Send a command: the answer is shown, the device gets it, and the channel (readable
    # too) shows it as a reading.
    topic.fill("plant/lyon/pump1/cmd")
    payload.fill('{"setpoint": 25}')
    send.click()
    wait_until(lambda: result.get_attribute("data-state") == "ok", what="the server's ok")
    text = result.inner_text()
    assert text.startswith("Sent to plant/lyon/pump1/cmd at "), text
    assert CLOCK.match(text.rsplit(" ", 1)[1])
    wait_until(lambda: bool(device.received), what="the device to receive the command")
    assert device.received == [("plant/lyon/pump1/cmd", b'{"setpoint":25}')]
    reading = row.locator(".jp-IoTCable-reading").first
    reading.wait_for()
    wait_until(lambda: fields_of(reading) == {"setpoint": "25"}, what="the command as a reading")
    assert reading.locator(".jp-IoTCable-reading-topic").inner_text() == "lyon/pump1"
    # Ctrl+Enter in the payload sends too.
    payload.fill('{"setpoint": 26}')
    payload.press("Control+Enter")
    wait_until(lambda: len(device.received) == 2, what="the second command")
    assert device.received[1] == ("plant/lyon/pump1/cmd", b'{"setpoint":26}')
    wait_until(lambda: result.get_attribute("data-state") == "ok", what="ok again")

    # A topic outside the channel: the server refuses, and its reason is shown as it is.
    _, refused = rest_publish(
        shared_server, "commands", {"topic": "plant/lyon/pump1/env", "payload": {"setpoint": 1}}
    )
    assert refused["ok"] is False
    publishes = shared_server.get("iotcable/api/status")["publishes"]
    topic.fill("plant/lyon/pump1/env")
    payload.fill('{"setpoint": 1}')
    send.click()
    wait_until(lambda: result.get_attribute("data-state") == "refused", what="the refusal")
    assert result.inner_text() == f"Refused: {refused['reason']}"
    assert "outside channel 'commands'" in refused["reason"]
    assert topic.get_attribute("aria-invalid") == "true"
    after = shared_server.get("iotcable/api/status")["publishes"]
    assert after == {"ok": publishes["ok"], "refused": publishes["refused"] + 1}

    # Malformed JSON is caught before anything is sent, with V8's words and position.
    topic.fill("plant/lyon/pump1/cmd")
    payload.fill('{"setpoint": 25')
    send.click()
    assert result.get_attribute("data-state") == "invalid"
    assert result.inner_text().startswith(
        "Not sent: the payload is not JSON: "
        "Expected ',' or '}' after property value in JSON at position 15"
    ), result.inner_text()
    assert payload.get_attribute("aria-invalid") == "true"
    assert payload.evaluate("node => node.selectionStart") == 15
    assert shared_server.get("iotcable/api/status")["publishes"] == after
    assert len(device.received) == 2

    shot = screenshots / "sidebar-publish.png"
    page.locator("#jupyter-iotcable-panel").screenshot(path=str(shot))


def test_a_write_only_channel_publishes_numbers_and_says_it_cannot_be_read(
    sidebar: Page, shared_server: LiveServer, device: Device
) -> None:
    page = sidebar
    row = row_of(page, "setpoints")
    row.locator(".jp-IoTCable-channel-toggle").click()
    live = row.locator(".jp-IoTCable-live-state")
    assert live.inner_text() == "You may write to this channel, not read it."
    assert row.locator(".jp-IoTCable-reading").count() == 0
    form = row.locator("form.jp-IoTCable-publish")
    result = form.locator(".jp-IoTCable-publish-result")
    form.get_by_label("Topic").fill("plant/lyon/pump1/setpoint")
    payload = form.get_by_label("Payload (a number)")

    # The server checks a number channel's payload with the channel's own decoder.
    payload.fill("hot")
    form.get_by_role("button", name="Send").click()
    wait_until(lambda: result.get_attribute("data-state") == "refused", what="the refusal")
    assert result.inner_text().startswith("Refused: channel 'setpoints' takes one number: ")
    assert payload.get_attribute("aria-invalid") == "true"

    payload.fill("21.5")
    form.get_by_role("button", name="Send").click()
    wait_until(lambda: result.get_attribute("data-state") == "ok", what="the server's ok")
    wait_until(lambda: bool(device.received), what="the device to get the setpoint")
    assert device.received == [("plant/lyon/pump1/setpoint", b"21.5")]
    # Nothing was subscribed for a channel that cannot be read.
    assert "setpoints" not in shared_server.get("iotcable/api/status")["channels"]


def test_the_settings_editor_changes_how_many_readings_are_shown(
    sidebar: Page, shared_broker: Mosquitto, screenshots: Path
) -> None:
    """The schema (poll interval, readings shown) is in Lab's Settings Editor, and a
    change there applies to the open sidebar at once."""
    page = sidebar
    publisher = Publisher(shared_broker, "plant/paris/pump7/env", per_second=20)
    try:
        row = row_of(page, "telemetry")
        row.locator(".jp-IoTCable-channel-toggle").click()
        readings = row.locator(".jp-IoTCable-reading")
        wait_until(lambda: readings.count() == 5, what="the default 5 readings")

        page.keyboard.press("Control+,")  # Settings Editor
        entry = page.locator(".jp-PluginList-entry", has_text="IoT channels")
        entry.click()
        # The form editor names its inputs after the plugin and the setting (its titles
        # are beside them, not <label>s).
        form = page.locator(".jp-SettingsPanel")
        field = form.locator('input[name$="jupyter-iotcable:plugin_readingsShown"]')
        poll = form.locator('input[name$="jupyter-iotcable:plugin_pollInterval"]')
        assert field.input_value() == "5"
        assert poll.input_value() == "3"
        assert form.get_by_text("Readings shown per channel").is_visible()
        assert form.get_by_text("Status poll interval (seconds)").is_visible()
        page.screenshot(path=str(screenshots / "settings-editor.png"))
        field.fill("2")
        wait_until(lambda: readings.count() == 2, what="2 readings shown")
        time.sleep(0.5)  # more readings arrive: still 2
        assert readings.count() == 2
        field.fill("5")
        wait_until(lambda: readings.count() == 5, what="5 readings again")
    finally:
        publisher.stop()
        # Close the Settings Editor tab (its label is "Settings").
        close = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Settings")
        if close.count():
            close.first.locator(".lm-TabBar-tabCloseIcon").click()


# -- tests with their own server ------------------------------------------------------------


@pytest.fixture
def live_server_publisher(mosquitto: Mosquitto, live_server: LiveServer) -> Iterator[Publisher]:
    device = Publisher(mosquitto, "plant/lyon/pump1/env")
    try:
        yield device
    finally:
        device.stop()


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


def test_a_broker_crash_that_lost_its_state_shows_as_lost_continuity_under_the_channel(
    live_server: LiveServer, mosquitto: Mosquitto, open_lab: OpenLab
) -> None:
    page = open_lab(live_server)
    open_panel(page)
    wait_until(lambda: broker_state(page) == "connected", what="connected")
    device = Publisher(mosquitto, "plant/lyon/pump1/env")
    try:
        row = row_of(page, "telemetry")
        row.locator(".jp-IoTCable-channel-toggle").click()
        row.locator(".jp-IoTCable-reading").first.wait_for()
        gaps = row.locator(".jp-IoTCable-gaps")
        assert gaps.is_hidden()

        # Killed and started without its state: the bridge's session is gone, and with it
        # what the device published meanwhile. The stream goes on in a new epoch of the
        # same server run, which the sidebar must not call a restart.
        mosquitto.kill()
        mosquitto.persistence_path.unlink(missing_ok=True)
        time.sleep(1.0)
        mosquitto.start()
        wait_until(gaps.is_visible, timeout=60, what="the gap line under the channel")
        assert gaps.get_attribute("data-cause") == "continuity_lost"
        text = gaps.inner_text()
        assert re.fullmatch(
            r"1 gap: The server lost its MQTT broker session: readings after offset \d+ "
            r"never reached it\.",
            text,
        ), text
        assert "lost continuity" in (gaps.get_attribute("title") or "")
        # Readings go on under it.
        shown = row.locator(".jp-IoTCable-reading").count()
        assert shown > 0
    finally:
        device.stop()


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
    live_server: LiveServer, open_lab: OpenLab, live_server_publisher: Publisher
) -> None:
    """The transport reconnects (with backoff) to a restarted server and subscribes again."""
    publisher = live_server_publisher
    page = open_lab(live_server)
    open_panel(page)
    row = row_of(page, "telemetry")
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
        lambda: int(fields_of(readings.first).get("seq", "0")) > before,
        timeout=60,
        what="a reading published after the restart",
    )
    # The cable's reconnect asks for the status at once (the poll had backed off).
    wait_until(lambda: problem.is_hidden(), timeout=10, what="the problem to clear")
    assert row.locator(".jp-IoTCable-channel-toggle").get_attribute("aria-expanded") == "true"
