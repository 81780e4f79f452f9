"""Hostile device payloads end to end (#12): real mosquitto, real server, both clients.

One server for the module (its own channels: ``poison`` with a 64 KiB max_reading_bytes,
``big`` with 2 MiB and history bounded in bytes). The payload catalogue and the checks
are tests/core/hostile.py's; everything else about payloads is tested in memory against
the sans-I/O layers (tests/core/test_hostile_payloads.py, test_history_bytes.py).

- poison among good readings, live and through history: every good reading once, the
  poison ones flagged, to the Python client and to the TypeScript client (its protocol
  core bundled with esbuild, over node's WebSocket);
- a 20 MB reading, then 100 small ones: every client gets the 100, the big one flagged
  with its size, no reconnect (it used to be close 1009, reconnect, the same reading);
- 1000 readings of 1 MB (``[{},{},...]``, the payload that cost 23x its size): the
  server's RSS grows by at most the configured history bytes plus a stated margin.
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import jupyter_iotcable as iot
from jupyter_iotcable.client import Reading
from tests.brokers import Mosquitto
from tests.core.hostile import EDGE, MAX_READING, POISON, mixed
from tests.servers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
LABEXTENSION = ROOT / "labextension"
MIB = 1 << 20
HISTORY_BYTES = 64 * MIB  # the whole server's history (c.IoTCableApp.history_bytes)
RSS_MARGIN = 96 * MIB  # what the RSS may grow by beyond the history bytes (see the test)

CHANNELS: dict[str, dict[str, Any]] = {
    "poison": {
        "topics": ["plant/+/+/env"],
        "read": ["*"],
        "history_limit": 10_000,
        "max_reading_bytes": MAX_READING,
    },
    "big": {
        "topics": ["big/#"],
        "read": ["*"],
        "history_limit": 100_000,
        "max_reading_bytes": 2 * MIB,
        "history_bytes": 256 * MIB,  # the server's 64 MiB bind first
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("hostile")
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    live = LiveServer(
        workdir / "server", broker, channels=CHANNELS, extra_config={"history_bytes": HISTORY_BYTES}
    )
    try:
        live.start()
        yield live
    finally:
        live.stop()
        broker.kill()


@pytest.fixture(scope="module")
def protocol_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TypeScript client's protocol core as one CommonJS file for node."""
    out = tmp_path_factory.mktemp("ts") / "protocol.cjs"
    subprocess.run(
        [
            str(LABEXTENSION / "node_modules" / ".bin" / "esbuild"),
            "src/protocol/index.ts",
            "--bundle",
            "--platform=node",
            "--format=cjs",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        cwd=LABEXTENSION,
        check=True,
    )
    return out


def publish(server: LiveServer, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish in order with one paho client, as devices would; return once acked."""
    assert server.mosquitto is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", server.mosquitto.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.loop_stop()
        client.disconnect()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def site(readings: list[tuple[str, str, bytes]], name: str) -> list[tuple[str, str, bytes]]:
    """The readings on this test's own site (plant/<name>/...)."""
    return [(n, topic.replace("plant/lyon/", f"plant/{name}/"), p) for n, topic, p in readings]


def as_doubles(text: str | bytes) -> object:
    """JSON with integers past 2**53 read as doubles, as JavaScript reads them."""
    return json.loads(text, parse_int=lambda s: int(s) if abs(int(s)) <= 2**53 else float(s))


def check(
    readings: list[tuple[str, str, bytes]], got: list[list[Any]], *, doubles: bool = False
) -> None:
    """Every reading once, in order; good ones unflagged and intact, poison flagged.

    ``doubles``: the client is JavaScript, whose numbers are doubles.
    """
    load: Callable[[str | bytes], object] = as_doubles if doubles else json.loads
    assert len(got) == len(readings), [g[1:] for g in got][-3:]
    offsets = [row[0] for row in got]
    assert offsets == sorted(set(offsets))
    for (name, topic, payload), (_offset, got_topic, got_payload, error) in zip(
        readings, got, strict=True
    ):
        assert got_topic == topic, name
        if name in POISON:
            assert error is not None, name
        else:
            assert error is None, (name, error)
            assert load(got_payload) == load(payload.decode("utf-8-sig")), name


def as_row(reading: Reading) -> list[Any]:
    return [reading.offset, reading.topic, json.dumps(reading.payload), reading.error]


class Opens:
    """Counts the websocket opens of a Cable (a reconnect is a second one)."""

    def __init__(self, cable: iot.Cable) -> None:
        session: Any = cable._session  # observing, not changing
        self.count = 1
        opened = session.connection_opened

        def counting(now: float) -> None:
            self.count += 1
            opened(now)

        session.connection_opened = counting


class NodeClient:
    """The TypeScript client in node: subscribed (and confirmed) when constructed."""

    def __init__(self, bundle: Path, server: LiveServer, **config: Any) -> None:
        url = server.url.replace("http://", "ws://") + f"iotcable/cable?token={server.token}"
        cfg = {"url": url, "channel": "poison", "since": None, "timeout": 60, **config}
        self.process = subprocess.Popen(
            [
                "node",
                "--experimental-websocket",
                "--no-warnings",
                str(Path(__file__).with_name("ts_client.mjs")),
                str(bundle),
                json.dumps(cfg),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert json.loads(line) == {"event": "confirmed"}, line + self.stderr()

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return "" if self.process.poll() is None else self.process.stderr.read()

    def result(self) -> dict[str, Any]:
        # Not communicate(): it reads the pipe's descriptor, past what readline() buffered.
        assert self.process.stdout is not None and self.process.stderr is not None
        out = self.process.stdout.read()
        err = self.process.stderr.read()
        assert self.process.wait(120) == 0, err
        result: dict[str, Any] = json.loads(out)
        return result


def test_poison_among_good_readings_reaches_the_python_client_live_and_as_history(
    server: LiveServer,
) -> None:
    readings = site(mixed({**POISON, **EDGE}, random.Random(3)), "py")
    since = time.time() - 1
    with iot.connect(server.url, token=server.token) as cable:
        opens = Opens(cable)
        sub = cable.subscribe("poison", topic="plant/py/+/env")
        live: list[list[Any]] = []
        sub.on(lambda r: live.append(as_row(r)))
        publish(server, [(topic, payload) for _name, topic, payload in readings])
        wait_until(lambda: len(live) >= len(readings), 30, "every reading, live")
        check(readings, live)
        assert opens.count == 1
    with iot.connect(server.url, token=server.token) as cable:
        history: list[list[Any]] = []
        sub = cable.subscribe("poison", topic="plant/py/+/env")
        sub.on(lambda r: history.append(as_row(r)))
        sub.history(since)
        wait_until(lambda: len(history) >= len(readings), 30, "every reading, as history")
        check(readings, history)


def test_poison_among_good_readings_reaches_the_typescript_client_live_and_as_history(
    server: LiveServer, protocol_bundle: Path
) -> None:
    readings = site(mixed({**POISON, **EDGE}, random.Random(4)), "ts")
    since = time.time() - 1
    live = NodeClient(protocol_bundle, server, topic="plant/ts/+/env", expect=len(readings))
    publish(server, [(topic, payload) for _name, topic, payload in readings])
    got = live.result()
    mine = [row for row in got["rows"] if row[1].startswith("plant/ts/")]
    assert (got["opens"], got["errors"], got["gaps"]) == (1, [], [])
    check(readings, mine, doubles=True)
    later = NodeClient(
        protocol_bundle, server, topic="plant/ts/+/env", since=since, expect=len(readings)
    )
    got = later.result()
    mine = [row for row in got["rows"] if row[1].startswith("plant/ts/")]
    assert (got["opens"], got["errors"], got["gaps"]) == (1, [], [])
    check(readings, mine, doubles=True)


def test_a_20_mb_reading_then_100_small_ones_reach_both_clients_without_a_reconnect(
    server: LiveServer, protocol_bundle: Path
) -> None:
    big = b'{"blob": "' + b"x" * (20 * 1000 * 1000) + b'"}'
    small = [(f"plant/big20/d{i % 3}/env", json.dumps({"seq": i}).encode()) for i in range(100)]
    node = NodeClient(protocol_bundle, server, topic="plant/big20/+/env", expect=101)
    with iot.connect(server.url, token=server.token) as cable:
        opens = Opens(cable)
        sub = cable.subscribe("poison", topic="plant/big20/+/env")
        got: list[Reading] = []
        sub.on(got.append)
        publish(server, [("plant/big20/big/env", big), *small])
        wait_until(lambda: len(got) >= 101, 30, "the big reading and the 100 small ones")
        assert opens.count == 1
        assert cable.state == "connected"
        frame = sub.frame
        assert len(frame) == 101
        assert frame["error"].notna().sum() == 1
        assert list(frame["seq"].dropna()) == list(range(100))
    assert got[0].payload is None
    assert got[0].error == (
        f"payload of {len(big):,} bytes is larger than the channel's max_reading_bytes "
        f"({MAX_READING:,}); the reading is kept without it"
    )
    assert [r.payload for r in got[1:]] == [{"seq": i} for i in range(100)]
    result = node.result()
    rows = [row for row in result["rows"] if row[1].startswith("plant/big20/")]
    assert (result["opens"], result["closes"], result["errors"]) == (1, [], [])
    assert rows[0][2:] == ["null", got[0].error]
    assert [json.loads(row[2]) for row in rows[1:]] == [{"seq": i} for i in range(100)]
    status = server.get("iotcable/api/status")
    assert status["channels"]["poison"]["oversize"] >= 1


def messages_in(server: LiveServer, channel: str) -> int:
    """Readings the channel received; -1 while the server is too busy to answer in 5 s."""
    try:
        count: int = server.get("iotcable/api/status")["channels"][channel]["messages_in"]
    except TimeoutError:
        return -1
    return count


def routed(server: LiveServer, count: int) -> bool:
    return messages_in(server, "big") >= count


def rss(server: LiveServer) -> tuple[int, int]:
    """The server process's resident set and its peak (bytes)."""
    assert server.process is not None
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def test_1000_readings_of_1_mb_keep_the_servers_memory_within_its_history_bytes(
    server: LiveServer,
) -> None:
    """1 MB readings, one in ten ``[{},{},...]``, the payload that cost 23x its size.

    The margin covers what is not history: one payload being decoded (its dicts, about
    24 MB for 1 MB of ``{},``), the bridge's and tornado's buffers, allocator slack.
    """
    empty_objects = b"[" + b"{}," * (MIB // 3 - 1) + b"{}]"
    text = b'{"blob": "' + b"t" * (MIB - 12) + b'"}'
    # One in ten is the 23x payload (about 100 ms to decode here); the rest 1 MB of text.
    payloads = [empty_objects if i % 10 == 0 else text for i in range(1000)]
    warm = [(f"big/warm/{i}", empty_objects if i % 2 else text) for i in range(20)]
    baseline, _ = rss(server)
    publish(server, warm)
    wait_until(lambda: messages_in(server, "big") >= 20, 60, "the warm-up readings")
    before, _ = rss(server)
    for start in range(0, 1000, 50):  # paced: the broker queues at most 1000 for us
        publish(server, [(f"big/d{i % 7}", payloads[i]) for i in range(start, start + 50)])
        wait_until(functools.partial(routed, server, 20 + start + 50), 60, "readings routed")
    after, peak = rss(server)
    status = server.get("iotcable/api/status")
    history = status["history"]
    big = status["channels"]["big"]
    assert big["messages_in"] == 1020
    assert history["bytes"] <= HISTORY_BYTES
    assert history["evicted"] > 900  # the server-wide bound did the evicting
    grew = after - before
    print(
        f"\nRSS {baseline / MIB:.1f} MiB before any 1 MB reading, {before / MIB:.1f} after 20, "
        f"{after / MIB:.1f} after 1020 (peak {peak / MIB:.1f}); history "
        f"{history['bytes'] / MIB:.1f} MiB of {HISTORY_BYTES / MIB:.0f}, channel 'big' keeps "
        f"{big['history']['size']} readings; grew {grew / MIB:.1f} MiB over the 1000"
    )
    assert after - baseline <= HISTORY_BYTES + RSS_MARGIN
    assert peak - baseline <= HISTORY_BYTES + RSS_MARGIN
