"""Delivery under faults: resume, broker outages, eviction gaps, slow consumers, restarts.

Sequence numbers in the payloads are the ground truth: every reading published must
arrive exactly once and in order, or be covered by a gap the server reported.

The policies (history, resume, eviction, conflation, slow consumers, history storms)
are tested in memory against the sans-I/O session in tests/core/test_session.py; here
each path runs once end to end, through tornado's sockets and a real mosquitto.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
import tornado.websocket
from paho.mqtt.enums import CallbackAPIVersion

from jupyter_iotcable.protocol import make_identifier
from jupyter_iotcable.server.engine import CableEngine
from jupyter_iotcable.server.websocket import CableHandler
from tests.brokers import Mosquitto
from tests.integration.conftest import Cable, CableFactory
from tests.servers import TEST_CHANNELS, LiveServer

EXT = ["actioncable-v1-ext-json"]


@pytest.fixture
def iotcable_config() -> dict[str, Any]:
    channels = json.loads(json.dumps(TEST_CHANNELS))
    # Slow consumers of this one are disconnected (too_slow) instead of conflated.
    channels["strict"] = {
        "topics": ["strict/#"],
        "format": "number",
        "read": ["*"],
        "policy": "disconnect",
    }
    return {"session_ttl": 60.0, "outbox_bytes": 256 * 1024, "channels": channels}


def publish_seq(broker: Mosquitto, topic: str, start: int, stop: int) -> None:
    """Publish readings with sequence numbers start..stop-1 (QoS 1, one connection)."""
    publish_all(broker, [(topic, json.dumps({"seq": i})) for i in range(start, stop)])


def publish_all(
    broker: Mosquitto, messages: Sequence[tuple[str, str]], timeout: float = 60, qos: int = 1
) -> None:
    """Publish (topic, payload) pairs in order from one independent client."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout)
    finally:
        client.loop_stop()
        client.disconnect()


def handler_of(engine: CableEngine, sid: str) -> CableHandler:
    """The server side of the connection welcomed with ``sid``."""
    for session in engine.connections:
        if session.sid == sid and isinstance(session.transport, CableHandler):
            return session.transport
    raise AssertionError(f"no open connection with sid {sid}")


def unsent_bytes(handler: CableHandler) -> int:
    """Bytes tornado still holds for the socket: measured there, not by our accounting."""
    connection = handler.ws_connection
    if connection is None or connection.stream is None:
        return 0
    return len(connection.stream._write_buffer)  # tornado's IOStream has no public size


def shrink_socket_buffers(client: Cable, handler: CableHandler, size: int = 8192) -> None:
    """Make the kernel hold little of what the server sends this client (a slow link)."""
    server = handler.ws_connection
    assert server is not None and server.stream is not None
    server.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    assert client.ws.protocol is not None and client.ws.protocol.stream is not None
    client.ws.protocol.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def quiet_packet_log(caplog: pytest.LogCaptureFixture) -> None:
    """Keep pytest from holding a DEBUG record per MQTT packet (about 7 KB each in
    memory): a test measuring the process's memory would measure the log capture."""
    caplog.set_level(logging.INFO, logger="jupyter_iotcable.bridge.paho")


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def read_all(ws: Cable, until: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every frame (pings aside) up to and including the first one ``until`` accepts."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout

    def keep(msg: dict[str, Any]) -> bool:
        frames.append(msg)
        return bool(until(msg))

    await ws.recv_until(keep, timeout=max(0.1, deadline - time.monotonic()))
    return frames


async def ingested(engine: CableEngine, channel: str, count: int, timeout: float = 30.0) -> None:
    """Wait until the server has taken ``count`` readings into ``channel``'s stream."""
    deadline = time.monotonic() + timeout
    stream = engine.hub.streams[channel]
    while stream.offset < count:
        assert time.monotonic() < deadline, f"{channel}: {stream.offset} of {count} readings"
        await asyncio.sleep(0.05)


@dataclass
class Received:
    seqs: list[int] = field(default_factory=list)
    epoch: str = ""
    offset: int = 0


async def collect(
    ws: Cable, identifier: str, want: set[int], timeout: float = 30.0, into: Received | None = None
) -> Received:
    """Readings (ext data frames) until every sequence number in ``want`` arrived."""
    got = into or Received()
    deadline = time.monotonic() + timeout
    while not want.issubset(got.seqs):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"missing {sorted(want - set(got.seqs))[:10]}"
        msg = await ws.recv_until(
            lambda m: m.get("identifier") == identifier and "offset" in m, timeout=remaining
        )
        got.seqs.append(msg["message"]["payload"]["seq"])
        got.epoch, got.offset = msg["epoch"], msg["offset"]
    return got


async def test_resume_after_a_dropped_socket_delivers_everything_once(
    cable: CableFactory, mosquitto: Mosquitto
) -> None:
    ws = await cable(EXT, welcome=False)
    sid = (await ws.recv())["sid"]
    identifier = make_identifier("telemetry", topic="plant/lyon/+/env")
    await ws.subscribe(identifier)
    publish_seq(mosquitto, "plant/lyon/p1/env", 0, 20)
    first = await collect(ws, identifier, set(range(20)))
    assert first.seqs == list(range(20))
    ws.close()  # the socket drops
    await asyncio.sleep(0.2)
    publish_seq(mosquitto, "plant/lyon/p1/env", 20, 60)  # published while away

    again = await cable(EXT, params={"sid": sid}, welcome=False)
    welcome = await again.recv()
    assert welcome["type"] == "welcome"
    assert welcome["restored"] is True
    assert welcome["restored_ids"] == [identifier]
    await again.send(
        {
            "command": "history",
            "identifier": identifier,
            "history": {"streams": {"telemetry": {"epoch": first.epoch, "offset": first.offset}}},
        }
    )
    publish_seq(mosquitto, "plant/lyon/p1/env", 60, 70)  # and live again
    rest = await collect(again, identifier, set(range(20, 70)))
    assert rest.seqs == list(range(20, 70)), "every reading exactly once, in order"


async def broker_saved_our_acks(engine: CableEngine, mosquitto: Mosquitto) -> None:
    """Wait until the broker has saved the bridge's acknowledgements to disk.

    QoS 1 is at-least-once: what the broker had not saved when it crashes is delivered
    again after its restart (see docs/protocol.md). A test expecting every reading exactly
    once makes the broker save first. A QoS 1 publish through the bridge's own connection
    is acknowledged only after the broker read everything the bridge sent before it (our
    PUBACKs included, one TCP stream); the save then covers them.
    """
    await engine.publish(engine.channels["commands"], "plant/sync/bridge/cmd", {"sync": True})
    mosquitto.save()


async def test_broker_killed_and_restarted(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine, jp_fetch: Any
) -> None:
    ws = await cable(EXT)
    identifier = make_identifier("telemetry")
    await ws.subscribe(identifier)
    publish_seq(mosquitto, "plant/a/b/env", 0, 5)
    got = await collect(ws, identifier, set(range(5)))
    await broker_saved_our_acks(engine, mosquitto)
    mosquitto.kill()
    event = await ws.recv_until(lambda m: m.get("type") == "broker", timeout=20)
    assert event["state"] == "reconnecting"
    status = json.loads((await jp_fetch("iotcable", "api", "status")).body)
    assert status["broker"]["state"] != "connected"
    assert status["broker"]["outages"] == 1
    mosquitto.start()
    # Devices publish as soon as the broker is back, while the bridge is still in its
    # backoff: QoS 1 and the persistent session queue these for the bridge.
    publish_seq(mosquitto, "plant/a/b/env", 5, 25)
    await collect(ws, identifier, set(range(5, 25)), into=got)
    assert got.seqs == list(range(25)), "nothing lost, nothing twice, in order"
    # The readings can come through before the bridge's state change reaches the engine
    # (a full run once saw them all with the state still "reconnecting").
    deadline = time.monotonic() + 10
    while engine.health.state != "connected":
        assert time.monotonic() < deadline, f"the bridge delivers, and says {engine.health.state}"
        await asyncio.sleep(0.02)


async def test_history_after_eviction_is_rejected_and_the_gap_is_visible(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine
) -> None:
    limit = engine.channels["commands"].history_limit
    publish_seq(mosquitto, "plant/a/b/cmd", 0, limit + 50)
    await ingested(engine, "commands", limit + 50)
    # A client that held offset 10 comes back (rows are never sent twice on one
    # subscription, so this one has not been sent them live).
    ws = await cable(EXT)
    identifier = make_identifier("commands")
    await ws.subscribe(identifier)
    await ws.send(
        {
            "command": "history",
            "identifier": identifier,
            "history": {"streams": {"commands": {"epoch": engine.epoch, "offset": 10}}},
        }
    )
    # What is still kept comes first, from available_from on, then the reject.
    first_kept = await ws.recv_until(lambda m: m.get("identifier") == identifier and "offset" in m)
    assert first_kept["offset"] == 51
    reject = await ws.recv_until(lambda m: m.get("type") == "reject_history")
    assert reject["identifier"] == identifier
    assert reject["available_from"] == 51
    assert "no longer kept" in reject["reason"]


async def test_server_memory_stays_bounded_for_a_client_that_never_reads(
    cable: CableFactory,
    mosquitto: Mosquitto,
    engine: CableEngine,
    iotcable: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_packet_log(caplog)
    sleeper = await cable(EXT, welcome=False)
    sid = (await sleeper.recv())["sid"]
    # A long identifier: every data frame of this subscription repeats it.
    await sleeper.subscribe(make_identifier("numbers", note="n" * 900))
    handler = handler_of(engine, sid)
    shrink_socket_buffers(sleeper, handler)  # the kernel must not hide the backlog
    # From here on nobody calls sleeper.recv(): tornado's client holds one message and
    # stops reading the socket, so TCP pushes back on the server as a stuck client would.
    watcher = await cable()
    numbers = make_identifier("numbers")
    await watcher.subscribe(numbers)

    # Were the sleeper's frames (about 1 KB each) kept, 40k readings would pass every
    # bound below: the outbox and tornado's buffer at once, the process's 32 MiB soon after.
    total = 40_000
    topics = 2_000
    bound = iotcable.outbox_bytes
    peaks: list[int] = []
    unsent: list[int] = []
    rss_before = rss()
    rss_growth: list[int] = []

    def watch() -> None:
        for conn in engine.connections:
            outbox = getattr(conn, "outbox", None)
            if outbox is not None:
                peaks.append(outbox.used)
        unsent.append(unsent_bytes(handler))
        rss_growth.append(rss() - rss_before)

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    rows = dropped = 0
    try:
        for start in range(0, total, 5_000):
            for i in range(start, start + 5_000):
                info = client.publish(f"num/load/{i % topics}", str(i), qos=0)
            # The publisher shares this process: keep its own queue out of the measure.
            await asyncio.get_running_loop().run_in_executor(None, info.wait_for_publish, 30)
            await asyncio.sleep(0.05)
            watch()
        last: float = -1
        deadline = time.monotonic() + 60
        while last != float(total - 1):
            assert time.monotonic() < deadline, f"watcher stuck at {last}"
            msg = await watcher.recv_until(
                lambda m: m.get("identifier") == numbers and "batch" in m
            )
            last = msg["batch"][-1][3]
            rows += len(msg["batch"])
            dropped += msg.get("dropped", 0)
            watch()
    finally:
        client.loop_stop()
        client.disconnect()
    assert peaks, "the outboxes were observed"
    # Queued plus unflushed bytes per connection never pass the bound by more than one
    # flush's worth (what a flush hands to the socket before back-pressure stops it).
    assert max(peaks) <= 2 * bound, max(peaks)
    # What tornado holds for the stuck socket (measured there, not by our accounting),
    # and the whole process.
    assert max(unsent) <= 2 * bound, max(unsent)
    assert max(rss_growth) <= 32 * 1024 * 1024, max(rss_growth)
    status = engine.status()
    assert status["channels"]["numbers"]["messages_in"] > 0  # type: ignore[index]
    # The other client kept receiving: every reading the server took arrived or was
    # counted as dropped, none twice.
    assert rows + dropped == engine.hub.streams["numbers"].messages_in
    assert rows > 0


async def test_shutdown_tells_clients_server_restart(cable: CableFactory, iotcable: Any) -> None:
    ws = await cable(EXT)
    await ws.subscribe(make_identifier("telemetry"))
    assert iotcable.engine is not None
    await iotcable.engine.stop()
    msg = await ws.recv_until(lambda m: m.get("type") == "disconnect")
    assert msg == {"type": "disconnect", "reason": "server_restart", "reconnect": True}
    assert await ws.recv() is None
    assert ws.ws.close_code == 1001


async def _raw(server: LiveServer, params: str = "") -> tornado.websocket.WebSocketClientConnection:
    url = f"ws://127.0.0.1:{server.port}/iotcable/cable?token={server.token}{params}"
    return await tornado.websocket.websocket_connect(url, subprotocols=EXT)


async def _next(ws: tornado.websocket.WebSocketClientConnection, kind: str) -> dict[str, Any]:
    while True:
        raw = await asyncio.wait_for(ws.read_message(), 20)
        assert raw is not None, "socket closed"
        msg: dict[str, Any] = json.loads(raw)
        if kind == "data" and "offset" in msg:
            return msg
        if msg.get("type") == kind:
            return msg


@pytest.mark.asyncio
async def test_server_restart_old_epoch_is_gone(tmp_path: Path, mosquitto: Mosquitto) -> None:
    server = LiveServer(tmp_path / "server", mosquitto)
    server.start()
    try:
        ws = await _raw(server)
        await _next(ws, "welcome")
        identifier = make_identifier("telemetry")
        await ws.write_message(json.dumps({"command": "subscribe", "identifier": identifier}))
        await _next(ws, "confirm_subscription")
        mosquitto.publish("plant/a/b/env", json.dumps({"seq": 1}))
        data = await _next(ws, "data")
        old_epoch, offset = data["epoch"], data["offset"]

        server.stop()
        disconnect = await _next(ws, "disconnect")
        assert disconnect["reason"] == "server_restart"
        assert disconnect["reconnect"] is True

        server.start()
        again = await _raw(server)
        await _next(again, "welcome")
        history = {"streams": {"telemetry": {"epoch": old_epoch, "offset": offset}}}
        await again.write_message(
            json.dumps({"command": "subscribe", "identifier": identifier, "history": history})
        )
        await _next(again, "confirm_subscription")
        reject = await _next(again, "reject_history")
        assert reject["stream_id"] == "telemetry"
        assert reject["epoch"] != old_epoch
        assert f"epoch {old_epoch!r}" in reject["reason"]
        assert "is gone" in reject["reason"]
        again.close()
    finally:
        server.stop()


async def test_a_slow_reader_on_a_disconnect_channel_is_told_too_slow(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine
) -> None:
    # A small outbox, and all the time it takes for the reader to get to the frame.
    engine.settings = dataclasses.replace(
        engine.settings, outbox_bytes=64 * 1024, too_slow_grace=120.0
    )
    slow = await cable(EXT, welcome=False)
    sid = (await slow.recv())["sid"]
    strict = make_identifier("strict")
    await slow.subscribe(strict)
    shrink_socket_buffers(slow, handler_of(engine, sid))
    total = 30_000
    publishing = asyncio.get_running_loop().run_in_executor(
        None,
        functools.partial(
            publish_all, mosquitto, [("strict/a", str(i)) for i in range(total)], qos=0
        ),
    )
    frames: list[dict[str, Any]] = []
    try:
        while (msg := await slow.recv(timeout=30)) is not None:
            frames.append(msg)
            await asyncio.sleep(0.005)  # it reads, but far more slowly than readings come
    finally:
        await publishing
    rows = [m for m in frames if m.get("identifier") == strict]
    assert 0 < len(rows) < total, "it fell behind, and got what was written before"
    assert frames[-1] == {"type": "disconnect", "reason": "too_slow", "reconnect": True}
    assert slow.ws.close_code == 1000
    assert slow.ws.close_reason == "too_slow"


async def test_a_too_slow_client_that_reads_nothing_is_dropped_after_the_grace(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine
) -> None:
    engine.settings = dataclasses.replace(
        engine.settings, outbox_bytes=64 * 1024, too_slow_grace=0.5
    )
    stuck = await cable(EXT, welcome=False)
    sid = (await stuck.recv())["sid"]
    await stuck.subscribe(make_identifier("strict"))
    handler = handler_of(engine, sid)
    shrink_socket_buffers(stuck, handler)
    loop = asyncio.get_running_loop()
    # First fill the socket: a few readings at a time until tornado holds bytes the kernel
    # will not take. (Overflowing the outbox before anything was written would tell the
    # client at once: it has then read everything written, nothing.)
    device = mqtt.Client(CallbackAPIVersion.VERSION2)
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    try:
        sent = 0
        deadline = time.monotonic() + 30
        while unsent_bytes(handler) == 0:
            assert time.monotonic() < deadline, f"the socket took all of {sent} readings"
            infos = [device.publish("strict/a", str(i), qos=1) for i in range(sent, sent + 50)]
            await loop.run_in_executor(None, infos[-1].wait_for_publish, 10)
            sent += len(infos)
            await asyncio.sleep(0.05)
        assert handler.session is not None and not handler.session.closing
        # Then far more than the outbox holds.
        infos = [device.publish("strict/a", str(i), qos=0) for i in range(sent, 20_000)]
        await loop.run_in_executor(None, infos[-1].wait_for_publish, 30)
    finally:
        device.loop_stop()
        device.disconnect()
    deadline = time.monotonic() + 60
    while handler.session in engine.connections:
        assert time.monotonic() < deadline, "the stuck connection is still open"
        await asyncio.sleep(0.1)
    # It never drained, so it never got the frame: the socket just ends.
    frames = []
    while (msg := await stuck.recv(timeout=30)) is not None:
        frames.append(msg)
    assert frames and frames[-1].get("type") != "disconnect"
    assert stuck.ws.close_code is None


async def test_history_after_the_resume_hold_never_repeats_a_row(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine
) -> None:
    engine.settings = dataclasses.replace(engine.settings, resume_hold=0.2)
    ws = await cable(EXT, welcome=False)
    sid = (await ws.recv())["sid"]
    identifier = make_identifier("telemetry", topic="plant/late/+/env")
    await ws.subscribe(identifier)
    publish_seq(mosquitto, "plant/late/p1/env", 0, 20)
    first = await collect(ws, identifier, set(range(20)))
    ws.close()
    await saved_session(engine, sid)
    publish_seq(mosquitto, "plant/late/p1/env", 20, 40)  # published while away
    await ingested(engine, "telemetry", 40)

    again = await cable(EXT, params={"sid": sid}, welcome=False)
    assert (await again.recv())["restored"] is True
    publish_seq(mosquitto, "plant/late/p1/env", 40, 60)
    # The hold ends before the client asks: these went out live.
    got = await collect(again, identifier, set(range(40, 60)))
    await again.send(
        {
            "command": "history",
            "identifier": identifier,
            "history": {"streams": {"telemetry": {"epoch": first.epoch, "offset": first.offset}}},
        }
    )
    frames = await read_all(again, lambda m: m.get("type") in ("confirm_history", "reject_history"))
    assert frames[-1]["type"] == "confirm_history"
    got.seqs += [m["message"]["payload"]["seq"] for m in frames if "offset" in m]
    # What it missed comes as a backfill below what it holds; nothing twice.
    assert got.seqs == [*range(40, 60), *range(20, 40)]


async def saved_session(engine: CableEngine, sid: str, timeout: float = 10.0) -> None:
    """Wait until the server has closed the connection ``sid`` and kept its session."""
    deadline = time.monotonic() + timeout
    while sid not in engine.sessions:
        assert time.monotonic() < deadline, f"session {sid} was not kept"
        await asyncio.sleep(0.02)


async def test_reject_history_sends_nothing_the_client_did_not_ask_for(
    cable: CableFactory, mosquitto: Mosquitto, engine: CableEngine
) -> None:
    publish_seq(mosquitto, "plant/a/b/env", 0, 30)
    await ingested(engine, "telemetry", 30)
    ws = await cable(EXT)
    identifier = make_identifier("telemetry")
    await ws.subscribe(identifier)
    for history in (
        {"streams": {"telemetry": {"epoch": engine.epoch, "offset": 10_000}}},  # ahead
        {"streams": {"numbers": {"epoch": engine.epoch, "offset": 0}}},  # another stream
    ):
        await ws.send({"command": "history", "identifier": identifier, "history": history})
        frames = await read_all(ws, lambda m: m.get("type") == "reject_history")
        assert [m for m in frames if "offset" in m] == [], f"rows sent for {history}"
        assert frames[-1]["available_from"] == 1
    # The subscription goes on.
    publish_seq(mosquitto, "plant/a/b/env", 30, 31)
    live = await collect(ws, identifier, {30})
    assert live.seqs == [30]


@pytest.mark.parametrize("cap", ["max_sessions_per_user", "max_sessions"])
async def test_sessions_kept_for_resume_are_capped_oldest_first(
    cable: CableFactory, engine: CableEngine, cap: str
) -> None:
    engine.settings = dataclasses.replace(engine.settings, **{cap: 5})
    sids = []
    for i in range(8):
        ws = await cable(EXT, welcome=False)
        sids.append((await ws.recv())["sid"])
        await ws.subscribe(make_identifier("numbers", topic=f"num/{i}"))
        ws.close()
        await saved_session(engine, sids[-1])
    assert list(engine.sessions) == sids[3:], "the newest five"
    old = await cable(EXT, params={"sid": sids[0]}, welcome=False)
    assert "restored" not in await old.recv(), "an evicted session starts afresh"
    new = await cable(EXT, params={"sid": sids[-1]}, welcome=False)
    assert (await new.recv())["restored_ids"] == [make_identifier("numbers", topic="num/7")]


async def test_a_client_that_does_not_read_is_not_read_either(
    cable: CableFactory, engine: CableEngine, iotcable: Any
) -> None:
    bound = iotcable.outbox_bytes
    sleeper = await cable(EXT, welcome=False)
    sid = (await sleeper.recv())["sid"]
    handler = handler_of(engine, sid)
    shrink_socket_buffers(sleeper, handler)
    # Every malformed frame is answered with an error frame of about 150 bytes: 6000 of
    # them would be 900 KB of answers for a client that reads none.
    frames = 6_000
    # Not awaited: what the server does not read waits in TCP and in the client.
    for _ in range(frames):
        sleeper.ws.write_message("{not json")
    unsent = []
    for _ in range(200):  # let the server work through what it reads
        unsent.append(unsent_bytes(handler))
        await asyncio.sleep(0.01)
    unsent.append(unsent_bytes(handler))
    assert handler.session is not None
    assert max(unsent) <= 2 * bound, max(unsent)
    assert handler.session.in_flight <= 2 * bound
    # Reading again, the client gets an answer to every frame.
    errors = 0
    while errors < frames:
        msg = await sleeper.recv_until(lambda m: m.get("type") == "error", timeout=30)
        errors += msg["reason"] == "malformed_json"
    assert errors == frames
