"""MqttBridge and BrokerSettings against a real mosquitto (the ``mosquitto`` fixtures)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import queue
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
import pytest
from aiomqtt import MqttCodeError, MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from jupyter_iotcable.bridge import (
    BridgeError,
    BrokerConfigError,
    BrokerSettings,
    BrokerState,
    MqttBridge,
    MqttMessage,
    default_client_id,
    parse_broker_url,
    redact,
)
from jupyter_iotcable.bridge.mqtt import describe_error
from jupyter_iotcable.topics import TopicError
from tests.brokers import Mosquitto, free_port

# -- helpers ---------------------------------------------------------------------------------


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


class Inbox:
    """Collects what a bridge delivers."""

    def __init__(self) -> None:
        self.messages: list[MqttMessage] = []

    def __call__(self, message: MqttMessage) -> None:
        self.messages.append(message)

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[MqttMessage]:
        await eventually(lambda: len(self.messages) >= count, timeout, f"{count} messages")
        return self.messages


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


@contextlib.contextmanager
def paho_subscriber(port: int, topic: str) -> Iterator[queue.Queue[paho.MQTTMessage]]:
    """An independent subscriber, as a dashboard or a device would be."""
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: got.put(msg)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(5), "paho subscriber did not get its SUBACK"
        yield got
    finally:
        client.loop_stop()
        client.disconnect()


def publish_many(port: int, topic: str, payloads: list[bytes]) -> None:
    """Publish with QoS 1 over one connection, in order, and wait for every PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def settings_for(broker: Mosquitto, **overrides: object) -> BrokerSettings:
    values: dict[str, object] = {"url": broker.url, "client_id": f"test-{broker.port}"}
    if broker.username is not None:
        values.update(username=broker.username, password=broker.password)
    values.update(overrides)
    return BrokerSettings(**values)  # type: ignore[arg-type]


# -- URLs and settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.plant", ("broker.plant", 1883, False)),
        ("mqtts://broker.plant", ("broker.plant", 8883, True)),
        ("mqtt://127.0.0.1:18830", ("127.0.0.1", 18830, False)),
        ("mqtts://broker.plant:443/", ("broker.plant", 443, True)),
        ("MQTT://Broker.Plant:1", ("broker.plant", 1, False)),
        ("mqtt://[::1]:1884", ("::1", 1884, False)),
    ],
)
def test_parse_broker_url_accepts(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the broker URL is empty; expected mqtt://host:port or mqtts://host:port"),
        (
            "broker.plant:1883",
            "the broker URL 'broker.plant:1883' has no scheme; expected "
            "mqtt://broker.plant:1883 or mqtts://broker.plant:1883",
        ),
        (
            "http://broker.plant",
            "the broker URL 'http://broker.plant' has the scheme 'http'; "
            "expected mqtt:// (plain TCP) or mqtts:// (TLS)",
        ),
        ("mqtt://:1883", "the broker URL 'mqtt://:1883' has no host"),
        (
            "mqtt://broker:abc",
            "the broker URL 'mqtt://broker:abc' has an invalid port (Port could not be cast "
            "to integer value as 'abc'); expected a number 1-65535",
        ),
        (
            "mqtt://broker:70000",
            "the broker URL 'mqtt://broker:70000' has an invalid port (Port out of range "
            "0-65535); expected a number 1-65535",
        ),
        (
            "mqtt://broker:0",
            "the broker URL 'mqtt://broker:0' has the port 0; expected a number 1-65535",
        ),
        ("mqtt://[::1", "the broker URL 'mqtt://[::1' is malformed (Invalid IPv6 URL)"),
        (
            "mqtt://broker/plant/#",
            "the broker URL 'mqtt://broker/plant/#' has a path, query or fragment; "
            "expected only mqtt://host:port or mqtts://host:port",
        ),
        (
            "mqtt://broker?tls=1",
            "the broker URL 'mqtt://broker?tls=1' has a path, query or fragment; "
            "expected only mqtt://host:port or mqtts://host:port",
        ),
        (" mqtt://broker", "the broker URL ' mqtt://broker' contains whitespace"),
        (
            "mqtt://bridge:hunter2@broker:1883",
            "the broker URL 'mqtt://***@broker:1883' contains credentials; "
            "set the broker username and password separately, not in the URL",
        ),
    ],
)
def test_parse_broker_url_rejects_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(BrokerConfigError) as info:
        parse_broker_url(url)
    assert str(info.value) == message
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"url": "tcp://x"},
            "the broker URL 'tcp://x' has the scheme 'tcp'; "
            "expected mqtt:// (plain TCP) or mqtts:// (TLS)",
        ),
        ({"password": "pw"}, "a broker password was given without a username"),
        ({"username": ""}, "the broker username is empty; leave it unset instead"),
        (
            {"client_id": ""},
            "the MQTT client id must be a non-empty string of at most 65,535 bytes",
        ),
        ({"keepalive": 0}, "keepalive must be between 5 and 65535 seconds, not 0"),
        ({"session_expiry": -1}, "session_expiry must be between 0 and 4294967295 seconds, not -1"),
        ({"protocol": "4"}, "protocol must be one of auto, 5, 3.1.1, not '4'"),
        ({"timeout": 0.0}, "timeout must be a positive number of seconds, not 0.0"),
        (
            {"ca_certs": "/etc/ca.pem", "tls_insecure": True},
            "ca_certs, tls_insecure only apply to TLS connections; "
            "use an mqtts:// URL instead of 'mqtt://broker'",
        ),
        ({"url": "mqtts://broker", "keyfile": "k.pem"}, "keyfile was given without certfile"),
    ],
)
def test_broker_settings_reject_with_a_clear_message(
    overrides: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"url": "mqtt://broker"}
    values.update(overrides)
    with pytest.raises(BrokerConfigError) as info:
        BrokerSettings(**values)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_broker_settings_never_show_the_password() -> None:
    settings = BrokerSettings("mqtts://[::1]:8884", username="bridge", password="pa55-w0rd")
    assert "pa55-w0rd" not in repr(settings)
    assert "pa55-w0rd" not in str(settings)
    assert settings.address == "[::1]:8884"
    assert settings.redact("login pa55-w0rd failed") == "login *** failed"


def test_redact() -> None:
    assert redact("a secret and a secret", "secret") == "a *** and a ***"
    assert redact("nothing to hide", None, "") == "nothing to hide"
    assert redact("abc abcdef", "abc", "abcdef") == "*** ***"
    # A secret with a backslash shows escaped in repr()-style messages.
    secret = 'back\\slash"quote'
    assert redact(f"login {secret!r} refused", secret) == "login '***' refused"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backoff_base": 0.0}, "backoff_base must be positive and at most backoff_cap"),
        (
            {"backoff_base": 5.0, "backoff_cap": 1.0},
            "backoff_base must be positive and at most backoff_cap",
        ),
        ({"max_backlog": 0}, "max_backlog must be at least 1"),
        ({"load_window": 0.0}, "load_window must be positive"),
    ],
)
def test_bridge_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        MqttBridge(BrokerSettings("mqtt://127.0.0.1:1"), [], Inbox(), **options)


def test_bridge_rejects_bad_filters_at_construction() -> None:
    settings = BrokerSettings("mqtt://127.0.0.1:1")
    with pytest.raises(TopicError):
        MqttBridge(settings, ["plant/#/env"], Inbox())
    with pytest.raises(TypeError, match="not one string"):
        MqttBridge(settings, "plant/#", Inbox())


# -- receiving -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_receives_from_an_independent_publisher(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    bridge = MqttBridge(settings_for(mosquitto), ["plant/+/+/env"], inbox, clock=lambda: 1234.5)
    async with running(bridge):
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(mosquitto.publish, "plant/lyon/pump1/env", b'{"t": 21.5}')
        (message,) = await inbox.wait_for(1)
    assert message == MqttMessage(
        topic="plant/lyon/pump1/env",
        payload=b'{"t": 21.5}',
        received_at=1234.5,
        qos=1,
        retain=False,
    )
    status = bridge.status()
    assert status["messages_in"] == 1
    assert status["state"] == "disconnected"


@pytest.mark.asyncio
async def test_retained_message_is_flagged(mosquitto: Mosquitto) -> None:
    await asyncio.to_thread(mosquitto.publish, "plant/lyon/fan2/env", b"last", 1, True)
    inbox = Inbox()
    async with running(MqttBridge(settings_for(mosquitto), ["plant/#"], inbox)):
        (message,) = await inbox.wait_for(1)
    assert (message.topic, message.payload, message.retain) == (
        "plant/lyon/fan2/env",
        b"last",
        True,
    )


@pytest.mark.asyncio
async def test_several_filters_with_wildcards(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    filters = ["a/+/c", "b/#", "exact/topic", "b/#"]  # the duplicate is subscribed once
    bridge = MqttBridge(settings_for(mosquitto), filters, inbox)
    assert bridge.filters == ("a/+/c", "b/#", "exact/topic")
    async with running(bridge):
        assert await bridge.wait_connected(10)
        for topic in ["a/x/c", "a/x/d", "other/topic", "b", "b/y/z", "exact/topic", "exact"]:
            await asyncio.to_thread(mosquitto.publish, topic, topic.encode())
        await asyncio.to_thread(mosquitto.publish, "b/sentinel", b"end")
        await eventually(lambda: b"end" in inbox.payloads, what="the sentinel")
    assert [m.topic for m in inbox.messages] == ["a/x/c", "b", "b/y/z", "exact/topic", "b/sentinel"]


@pytest.mark.asyncio
async def test_order_is_preserved_for_a_thousand_messages(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with running(MqttBridge(settings_for(mosquitto), ["seq/#"], inbox)) as bridge:
        assert await bridge.wait_connected(10)
        sent = [str(i).encode() for i in range(1000)]
        await asyncio.to_thread(publish_many, mosquitto.port, "seq/one", sent)
        await inbox.wait_for(1000)
    assert inbox.payloads == sent
    stamps = [m.received_at for m in inbox.messages]
    assert stamps == sorted(stamps)


@pytest.mark.asyncio
async def test_a_failing_on_message_does_not_stop_delivery(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[bytes] = []

    def on_message(message: MqttMessage) -> None:
        if message.payload == b"boom":
            raise ValueError("hub bug")
        delivered.append(message.payload)

    async with running(MqttBridge(settings_for(mosquitto), ["x/#"], on_message)) as bridge:
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(publish_many, mosquitto.port, "x/y", [b"1", b"boom", b"2"])
        await eventually(lambda: delivered == [b"1", b"2"], what="the messages around the failure")
        assert bridge.status()["handler_errors"] == 1
        assert bridge.state is BrokerState.CONNECTED
    assert any("on_message failed" in r.getMessage() for r in caplog.records)


# -- publishing ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_publish_reaches_another_client(mosquitto: Mosquitto) -> None:
    with paho_subscriber(mosquitto.port, "plant/+/+/cmd") as got:
        async with running(MqttBridge(settings_for(mosquitto), [], Inbox())) as bridge:
            assert await bridge.wait_connected(10)
            await bridge.publish("plant/lyon/pump1/cmd", b'{"setpoint": 25}')
            message = await asyncio.to_thread(got.get, timeout=5)
            assert bridge.status()["messages_out"] == 1
    assert (message.topic, message.payload, message.qos) == (
        "plant/lyon/pump1/cmd",
        b'{"setpoint": 25}',
        1,
    )


@pytest.mark.asyncio
async def test_publish_while_disconnected_says_it_was_not_sent() -> None:
    port = free_port()  # nothing listens there
    bridge = MqttBridge(BrokerSettings(f"mqtt://127.0.0.1:{port}"), [], Inbox())
    with pytest.raises(BridgeError) as before_start:
        await bridge.publish("plant/lyon/pump1/cmd", b"{}")
    assert str(before_start.value) == (
        f"the MQTT broker 127.0.0.1:{port} is unreachable (bridge disconnected); "
        "the publish to 'plant/lyon/pump1/cmd' was not sent"
    )
    async with running(bridge):
        await eventually(lambda: bridge.state is BrokerState.RECONNECTING)
        with pytest.raises(BridgeError) as info:
            await bridge.publish("plant/lyon/pump1/cmd", b"{}")
        assert bridge.status()["last_error"] == (
            f"cannot connect to 127.0.0.1:{port} ([Errno 111] Connection refused)"
        )
    assert str(info.value) == (
        f"the MQTT broker 127.0.0.1:{port} is unreachable (bridge reconnecting); "
        "the publish to 'plant/lyon/pump1/cmd' was not sent"
    )


@pytest.mark.asyncio
async def test_publish_of_an_invalid_topic_is_refused(mosquitto: Mosquitto) -> None:
    async with running(MqttBridge(settings_for(mosquitto), [], Inbox())) as bridge:
        assert await bridge.wait_connected(10)
        with pytest.raises(BridgeError) as info:
            await bridge.publish("plant/+/cmd", b"{}")
    assert str(info.value) == (
        "the publish to 'plant/+/cmd' is invalid (Publish topic cannot contain wildcards.); "
        "not sent"
    )


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_credentials_work_and_never_leak(
    secured_mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = secured_mosquitto.password
    assert good is not None
    wrong = good + "-wrong"
    inbox = Inbox()
    states: list[tuple[BrokerState, str]] = []

    def on_state(state: BrokerState, reason: str) -> None:
        states.append((state, reason))

    async with running(
        MqttBridge(settings_for(secured_mosquitto), ["s/#"], inbox, on_state)
    ) as bridge:
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(secured_mosquitto.publish, "s/1", b"ok")
        await inbox.wait_for(1)

    rejected = MqttBridge(
        settings_for(secured_mosquitto, password=wrong, client_id="wrong-password"),
        ["s/#"],
        Inbox(),
        on_state,
        backoff_base=0.05,
        backoff_cap=0.2,
    )
    async with running(rejected):
        await eventually(
            lambda: (
                rejected.status()["connects"] == 0 and rejected.state is BrokerState.RECONNECTING
            )
        )
        await asyncio.sleep(0.5)  # several attempts
        status = rejected.status()
        assert rejected.state is BrokerState.RECONNECTING
        with pytest.raises(BridgeError) as info:
            await rejected.publish("s/2", b"x")
    # mosquitto answers a wrong password with "not authorized" (0x87).
    assert status["last_error"] == (
        f"authentication failed: 127.0.0.1:{secured_mosquitto.port} refused to let this "
        "client connect ([code:135] Not authorized); check the username, password and the "
        "broker's ACL"
    )
    assert not await rejected.wait_connected(0.01)

    texts = [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    texts += [json.dumps(status), json.dumps(bridge.status()), str(info.value)]
    texts += [reason for _state, reason in states]
    texts += [repr(rejected.settings), repr(bridge.settings)]
    for text in texts:
        assert good not in text
        assert wrong not in text
    assert any("authentication failed" in t for t in texts)


# -- surviving the broker --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reconnects_by_itself_and_resubscribes(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    states: list[BrokerState] = []
    bridge = MqttBridge(
        settings_for(mosquitto),
        ["plant/#"],
        inbox,
        lambda state, _reason: states.append(state),
        backoff_base=0.1,
        backoff_cap=0.5,
    )
    async with running(bridge):
        assert await bridge.wait_connected(10)
        mosquitto.kill()
        await eventually(lambda: bridge.state is BrokerState.RECONNECTING)
        assert bridge.status()["last_error"] == f"lost the connection to 127.0.0.1:{mosquitto.port}"
        await asyncio.sleep(0.3)
        await asyncio.to_thread(mosquitto.start)
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(mosquitto.publish, "plant/porto/fan1/env", b"back")
        await inbox.wait_for(1)
        status = bridge.status()
    assert inbox.payloads == [b"back"]
    assert states == [
        BrokerState.CONNECTING,
        BrokerState.CONNECTED,
        BrokerState.RECONNECTING,
        BrokerState.CONNECTED,
        BrokerState.DISCONNECTED,
    ]
    assert (status["connects"], status["disconnects"]) == (2, 1)
    assert status["last_error"] is None


def conflict_of(bridge: MqttBridge) -> bool:
    return bool(bridge.status()["client_id_conflict"])


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.asyncio
async def test_two_bridges_sharing_a_client_id_report_the_takeover(
    mosquitto: Mosquitto,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    """mosquitto closes the older connection whenever a client reuses its id: both bridges
    are accepted and dropped in turn, and say so instead of silently splitting readings."""
    caplog.set_level(logging.INFO, logger="jupyter_iotcable.bridge")
    # How long a connection must last to clear the report: 2 s here, not 10 (still five
    # times the backoff cap below, so no connection lasts that long while both fight).
    monkeypatch.setattr("jupyter_iotcable.bridge.mqtt.STABLE_CONNECTION", 2.0)
    settings = settings_for(mosquitto, client_id="shared-id", protocol=protocol)
    options: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.4}
    first = MqttBridge(settings, ["plant/#"], Inbox(), **options)
    second = MqttBridge(settings, ["plant/#"], Inbox(), **options)
    async with running(first):
        assert await first.wait_connected(10)
        async with running(second):
            await eventually(
                lambda: conflict_of(first) and conflict_of(second), 30, "both to report"
            )
            reports = [first.status(), second.status()]
        # The other client is gone: once the connection has lasted, the report clears.
        await eventually(lambda: not conflict_of(first), 30, "the conflict to clear")
        assert first.status()["last_error"] is None
    for status in reports:
        assert isinstance(status["last_error"], str)
        assert status["last_error"].startswith(
            "another client uses client id 'shared-id': set c.IoTCableApp.broker_client_id "
            f"to an id unique to this server (127.0.0.1:{mosquitto.port} accepted and then "
            "dropped this connection 3 times in a row)"
        )
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "another client uses" in r.getMessage()
    ]
    # One warning per bridge and episode, not one per takeover.
    assert len(warnings) == 2, warnings
    assert any("is stable again" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_bridges_with_their_own_client_ids_share_a_broker(mosquitto: Mosquitto) -> None:
    inboxes = [Inbox(), Inbox()]
    bridges = [
        MqttBridge(settings_for(mosquitto, client_id=f"server-{i}"), ["plant/#"], inbox)
        for i, inbox in enumerate(inboxes)
    ]
    async with running(bridges[0]), running(bridges[1]):
        for bridge in bridges:
            assert await bridge.wait_connected(10)
        sent = [f"r{i}".encode() for i in range(50)]
        await asyncio.to_thread(publish_many, mosquitto.port, "plant/lyon/pump1/env", sent)
        for inbox in inboxes:
            await inbox.wait_for(50)
        statuses = [bridge.status() for bridge in bridges]
    assert [inbox.payloads for inbox in inboxes] == [sent, sent]
    assert [(s["connects"], s["client_id_conflict"]) for s in statuses] == [(1, False)] * 2


def test_default_client_ids_are_stable_and_per_server() -> None:
    one = default_client_id("ann", "lab-host", "8888:/home/ann")
    assert one == default_client_id("ann", "lab-host", "8888:/home/ann"), "stable"
    assert one.startswith("jupyter-iotcable-ann-")
    others = {
        default_client_id("bob", "lab-host", "8888:/home/ann"),
        default_client_id("ann", "other-host", "8888:/home/ann"),
        default_client_id("ann", "lab-host", "8889:/home/ann"),
        default_client_id("ann", "lab-host", "8888:/srv/project"),
    }
    assert one not in others and len(others) == 4
    # Readable for the broker admin, short, no path or odd characters.
    odd = default_client_id("ann.o'neil@corp", "h", "/very/long/" + "x" * 500)
    assert odd.startswith("jupyter-iotcable-annoneilcorp-") and len(odd) <= 64
    assert BrokerSettings("mqtt://broker").client_id != "jupyter-iotcable"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.asyncio
async def test_persistent_session_keeps_messages_published_while_stopped(
    mosquitto: Mosquitto, protocol: str
) -> None:
    settings = settings_for(mosquitto, client_id=f"persistent-{protocol}", protocol=protocol)
    first = Inbox()
    async with running(MqttBridge(settings, ["plant/#"], first)) as bridge:
        assert await bridge.wait_connected(10)
    sent = [f"away-{i}".encode() for i in range(50)]
    await asyncio.to_thread(publish_many, mosquitto.port, "plant/lyon/pump1/env", sent)
    second = Inbox()
    async with running(MqttBridge(settings, ["plant/#"], second)) as bridge:
        await second.wait_for(50)
        assert bridge.status()["protocol"] == protocol
    assert first.payloads == []
    assert second.payloads == sent


@pytest.mark.asyncio
async def test_session_expiry_zero_means_a_clean_session(mosquitto: Mosquitto) -> None:
    settings = settings_for(mosquitto, client_id="clean", session_expiry=0)
    async with running(MqttBridge(settings, ["plant/#"], Inbox())) as bridge:
        assert await bridge.wait_connected(10)
    await asyncio.to_thread(publish_many, mosquitto.port, "plant/lyon/pump1/env", [b"lost"])
    inbox = Inbox()
    async with running(MqttBridge(settings, ["plant/#"], inbox)) as bridge:
        assert await bridge.wait_connected(10)
        await asyncio.to_thread(mosquitto.publish, "plant/lyon/pump1/env", b"live")
        await inbox.wait_for(1)
    assert inbox.payloads == [b"live"]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x86)),
            "authentication failed: broker:1883 rejected the username or password "
            "([code:134] Bad user name or password)",
        ),
        (
            MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x87)),
            "authentication failed: broker:1883 refused to let this client connect "
            "([code:135] Not authorized); check the username, password and the broker's ACL",
        ),
        (
            MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x88)),
            "broker:1883 refused the connection ([code:136] Server unavailable)",
        ),
        (
            # EMQX and HiveMQ say so when another client takes our client id over
            # (mosquitto 2.0 just closes the socket).
            MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E), "x"),
            "broker:1883 closed the connection because another client connected with the "
            "same client id; give each server its own client_id",
        ),
        (
            MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, identifier=0x98), "x"),
            "lost the connection to broker:1883 ([code:152] Administrative action)",
        ),
        (MqttError("Operation timed out"), "broker:1883 did not answer within the timeout"),
        (
            MqttError("[Errno -2] Name or service not known"),
            "cannot connect to broker:1883 ([Errno -2] Name or service not known)",
        ),
    ],
)
def test_connection_errors_are_explained(error: Exception, text: str) -> None:
    assert describe_error(error, "broker:1883") == text


@pytest.mark.asyncio
async def test_broker_that_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that accepts and stays silent: MQTT 5 times out, 3.1.1 is tried, and the
    abandoned sockets are closed instead of piling up."""
    caplog.set_level(logging.INFO)
    accepted: list[socket.socket] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings = BrokerSettings(f"mqtt://127.0.0.1:{port}", timeout=0.3)
    bridge = MqttBridge(settings, ["x/#"], Inbox(), backoff_base=0.05, backoff_cap=0.1)
    try:
        async with running(bridge):
            await eventually(lambda: len(accepted) >= 6, what="six connection attempts")
            status = bridge.status()
            ours = [
                c
                for c in psutil.Process().net_connections("tcp")
                if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
            ]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    assert status["state"] == "reconnecting"
    assert status["last_error"] == f"127.0.0.1:{port} did not answer within the timeout"
    assert len(ours) <= 2, f"abandoned connections stay open: {ours}"
    assert any("did not accept MQTT 5" in r.getMessage() for r in caplog.records)


# -- TLS -------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI); the CA's path."""
    directory.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return directory / "ca.pem"


@pytest.fixture
def tls_mosquitto(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, Path]]:
    """A mosquitto with a plain listener and a TLS one: (broker, TLS port, CA file)."""
    ca = make_certificates(tmp_path / "certs")
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path / "mosquitto",
        extra_config="\n".join(
            [
                f"listener {tls_port} 127.0.0.1",
                f"cafile {ca}",
                f"certfile {ca.parent / 'server.pem'}",
                f"keyfile {ca.parent / 'server.key'}",
            ]
        ),
    )
    broker.start()
    try:
        yield broker, tls_port, ca
    finally:
        broker.kill()


@pytest.mark.asyncio
async def test_mqtts_with_the_broker_ca(tls_mosquitto: tuple[Mosquitto, int, Path]) -> None:
    broker, tls_port, ca = tls_mosquitto
    inbox = Inbox()
    settings = BrokerSettings(f"mqtts://127.0.0.1:{tls_port}", ca_certs=str(ca), client_id="tls")
    async with running(MqttBridge(settings, ["tls/#"], inbox)) as bridge:
        assert await bridge.wait_connected(10)
        assert bridge.status()["tls"] is True
        await asyncio.to_thread(broker.publish, "tls/x", b"secret reading")
        await inbox.wait_for(1)
        # A burst of more than the bridge reads per turn of the event loop (fast_ingest's
        # TURN_BYTES), through TLS: every message, in order.
        burst = [b"%05d" % i + b"." * 200 for i in range(3000)]
        await asyncio.to_thread(publish_many, broker.port, "tls/burst", burst)
        await inbox.wait_for(1 + len(burst))
    assert inbox.payloads == [b"secret reading", *burst]


@pytest.mark.asyncio
async def test_mqtts_refuses_an_unknown_certificate_unless_insecure(
    tls_mosquitto: tuple[Mosquitto, int, Path],
) -> None:
    _broker, tls_port, _ca = tls_mosquitto
    url = f"mqtts://127.0.0.1:{tls_port}"
    untrusted = MqttBridge(BrokerSettings(url, client_id="untrusted"), [], Inbox())
    async with running(untrusted):
        await eventually(lambda: untrusted.state is BrokerState.RECONNECTING)
        error = str(untrusted.status()["last_error"])
    assert error.startswith(
        f"cannot connect to 127.0.0.1:{tls_port} ([SSL: CERTIFICATE_VERIFY_FAILED]"
    )
    insecure = MqttBridge(BrokerSettings(url, tls_insecure=True, client_id="insecure"), [], Inbox())
    async with running(insecure):
        assert await insecure.wait_connected(10)


@pytest.mark.asyncio
async def test_mqtts_with_a_missing_ca_file_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    settings = BrokerSettings("mqtts://127.0.0.1:8883", ca_certs=str(missing))
    bridge = MqttBridge(settings, [], Inbox())
    async with running(bridge):
        await eventually(lambda: bridge.state is BrokerState.RECONNECTING)
        error = bridge.status()["last_error"]
    assert error == (
        f"cannot load the CA certificates ca_certs={str(missing)!r} "
        "([Errno 2] No such file or directory)"
    )


# -- back-pressure ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_on_message_is_reported_and_nothing_is_lost(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jupyter_iotcable.bridge")
    delivered: list[bytes] = []

    def slow(message: MqttMessage) -> None:
        # The hub stuck on something: blocks the event loop, as it would. 5 ms a message
        # (3 s for the 600) is far slower than any publisher, even on a loaded machine
        # (at 2 ms a slow publisher sometimes never let the load or the backlog build).
        time.sleep(0.005)
        delivered.append(message.payload)

    bridge = MqttBridge(
        settings_for(mosquitto), ["load/#"], slow, max_backlog=100, load_window=0.25
    )
    seen_overloaded = False

    async def watch() -> None:
        nonlocal seen_overloaded
        while True:
            seen_overloaded |= bool(bridge.status()["overloaded"])
            await asyncio.sleep(0.01)

    sent = [str(i).encode() for i in range(600)]
    async with running(bridge):
        assert await bridge.wait_connected(10)
        watcher = asyncio.create_task(watch())
        await asyncio.to_thread(publish_many, mosquitto.port, "load/x", sent)
        await eventually(lambda: len(delivered) == len(sent), what="every message")
        await eventually(lambda: not bridge.status()["overloaded"], what="the bridge to catch up")
        watcher.cancel()
        status = bridge.status()
    assert seen_overloaded
    assert delivered == sent
    # Messages are routed as paho reads them (bridge/mqtt.py _fast_ingest): nothing waits
    # in the bridge, the broker and TCP hold what is not read yet.
    assert int(status["backlog_max_seen"]) <= 100  # type: ignore[call-overload]
    assert status["dropped"] == 0
    # One warning per overload episode: on a loaded machine there may be several
    # episodes, but never two warnings without a "caught up" between them.
    events = [
        "warn" if "faster than they are handled" in r.getMessage() else "ok"
        for r in caplog.records
        if (r.levelno == logging.WARNING and "faster than they are handled" in r.getMessage())
        or "caught up" in r.getMessage()
    ]
    assert events.count("warn") >= 1, events
    assert events[-1] == "ok", events
    assert all(a != b for a, b in itertools.pairwise(events)), events


def test_status_is_json_safe_and_complete() -> None:
    bridge = MqttBridge(
        BrokerSettings(
            "mqtt://127.0.0.1:1", username="u", password="hidden-pw", client_id="status-test"
        ),
        ["a/#"],
        Inbox(),
        clock=lambda: 42.0,
    )
    status = bridge.status()
    assert json.loads(json.dumps(status)) == status
    assert status == {
        "state": "disconnected",
        "broker": "127.0.0.1:1",
        "tls": False,
        "protocol": None,
        "client_id": "status-test",
        "filters": ["a/#"],
        "connected_since": None,
        "last_change": 42.0,
        "connects": 0,
        "disconnects": 0,
        "last_error": None,
        "messages_in": 0,
        "messages_out": 0,
        "handler_errors": 0,
        "backlog": 0,
        "backlog_max_seen": 0,
        "max_backlog": 10000,
        "dropped": 0,
        "load": 0.0,
        "overloaded": False,
        "client_id_conflict": False,
        "session_present": None,
        "sessions_lost": 0,
    }
