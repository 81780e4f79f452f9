"""Ingest, end to end: MQTT -> bridge -> websocket -> ``sub.frame``, against raw aiomqtt.

    .venv/bin/python bench/ingest.py                      # 50,000 readings, 3 repetitions
    .venv/bin/python bench/ingest.py --messages 100000 --repeat 5

How fast can readings that a broker holds for us reach a notebook? Both consumers drain
the same backlog from the same private mosquitto, one after the other, in the same run:

- **raw**: a bare aiomqtt subscriber (``async for message in client.messages``, QoS 1) in a
  process of its own, speaking MQTT 5 as the bridge does, and MQTT 3.1.1 (aiomqtt's
  default, where paho parses no properties: much faster) (``--raw-mqtt``);
- **ours**: a real ``jupyter server`` with the extension (its bridge subscribed at QoS 1)
  and, in this process, the Python client: ``connect()``, ``cable.subscribe(...)``, until
  every reading is in the subscription, then one ``sub.frame`` (counted too).

To measure the consumer and not the publisher, the consumer process is stopped
(SIGSTOP) while ``mosquitto_pub`` (C, QoS 1, 10 topics) publishes the readings, and
timed from SIGCONT until it holds all of them. The ratio (our throughput / raw
throughput) is the figure that travels; goal (issue #11): at least 1.5. Not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

import aiomqtt

from bench.harness import git_revision, start_broker
from jupyter_iotcable import connect
from tests.brokers import Mosquitto
from tests.servers import TEST_CHANNELS, LiveServer

DEVICES = 10
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


@dataclass
class Drain:
    seconds: float  # SIGCONT -> every reading held (ours: and sub.frame built)
    received: int
    frame_seconds: float = 0.0
    dropped: int = 0


def publish_backlog(broker: Mosquitto, prefix: str, n: int) -> None:
    """Publish n JSON readings over DEVICES topics with mosquitto_pub (QoS 1), and wait."""
    procs = []
    for device in range(DEVICES):
        count = n // DEVICES + (1 if device < n % DEVICES else 0)
        lines = "".join(
            json.dumps({"temperature": 21.5, "humidity": 40.0, "seq": seq}) + "\n"
            for seq in range(device, device + count * DEVICES, DEVICES)
        )
        proc = subprocess.Popen(
            [
                *(MOSQUITTO_PUB, "-p", str(broker.port), "-q", "1", "-M", "1000", "-l"),
                *("-t", f"{prefix}/lyon/pump{device}/env", "-i", f"bench-pub-{device}"),
            ],
            stdin=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, lines))
    for proc, lines in procs:
        proc.communicate(lines, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"mosquitto_pub failed with {proc.returncode}")


# -- raw: a bare aiomqtt subscriber in a child process ----------------------------------


#: The raw subscriber's MQTT version: the bridge's own (it asks for 5, and mosquitto 2
#: speaks it) and aiomqtt's default (3.1.1, where paho parses no properties: 2-4x faster).
RAW_MQTT = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}


async def raw_child(port: int, n: int, mqtt: str) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-raw", protocol=RAW_MQTT[mqtt]
    ) as client:
        await client.subscribe("raw/#", qos=1)
        print("ready", flush=True)
        count = 0
        async for _message in client.messages:
            count += 1
            if count == n:
                break
        print(json.dumps({"done": time.time(), "received": count}), flush=True)


def drain_raw(broker: Mosquitto, n: int, mqtt: str) -> Drain:
    child = subprocess.Popen(
        [
            *(sys.executable, __file__, "--raw-child", str(broker.port)),
            *("--messages", str(n), "--raw-mqtt", mqtt),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the raw aiomqtt subscriber did not start")
        os.kill(child.pid, signal.SIGSTOP)
        publish_backlog(broker, "raw", n)
        start = time.time()
        os.kill(child.pid, signal.SIGCONT)
        result = json.loads(child.stdout.readline())
        return Drain(result["done"] - start, result["received"])
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.wait(30)


# -- ours: the extension's bridge and websocket, the Python client in this process ------


def drain_ours(broker: Mosquitto, server: LiveServer, n: int, stall: float) -> Drain:
    assert server.process is not None
    pid = server.process.pid
    with connect(server.url, token=server.token) as cable:
        sub = cable.subscribe("telemetry", window=None, max_rows=n)
        assert sub.frame.empty  # imports pandas now: a notebook pays that once, not per run
        os.kill(pid, signal.SIGSTOP)
        try:
            publish_backlog(broker, "plant", n)
            start = time.time()
        finally:
            os.kill(pid, signal.SIGCONT)
        seen, last_progress, dropped = 0, time.monotonic(), 0
        while seen + dropped < n and time.monotonic() - last_progress < stall:
            time.sleep(0.002)
            now_seen = len(sub)
            dropped = sub.dropped  # readings the server conflated away (too slow)
            if now_seen != seen:
                seen, last_progress = now_seen, time.monotonic()
        held = time.time()
        frame = sub.frame
        done = time.time()
        if len(frame) != seen:
            raise RuntimeError(f"sub.frame has {len(frame)} rows, the subscription {seen}")
        sub.unsubscribe()
    return Drain(done - start, seen, frame_seconds=done - held, dropped=dropped)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=50_000, help="readings (50000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (3)")
    parser.add_argument(
        "--stall", type=float, default=15.0, help="give up after this many seconds without a row"
    )
    parser.add_argument(
        "--raw-mqtt",
        choices=(*RAW_MQTT, "both"),
        default="both",
        help="the raw subscriber's MQTT version: 5 (the bridge's), 3.1.1 (aiomqtt's "
        "default), or both, each against the same drain of ours (default: both)",
    )
    parser.add_argument(
        "--outbox-bytes",
        type=int,
        default=256 << 20,
        help="the server's outbox_bytes (default 256 MiB: the whole backlog; the server's own "
        "default, 1 MiB, shows the bridge pacing itself to what the connection writes)",
    )
    parser.add_argument("--raw-child", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n: int = args.messages
    if args.raw_child:
        asyncio.run(raw_child(args.raw_child, n, args.raw_mqtt))
        return
    versions = list(RAW_MQTT) if args.raw_mqtt == "both" else [args.raw_mqtt]

    revision = git_revision()
    print(
        f"jupyter-iotcable ingest bench at {revision}: {n} readings, QoS 1, {DEVICES} topics, "
        f"outbox_bytes {args.outbox_bytes}"
    )
    ratios: dict[str, list[float]] = {mqtt: [] for mqtt in versions}
    with tempfile.TemporaryDirectory(prefix="iotcable-ingest-") as tmp:
        broker = start_broker(Path(tmp))
        channels = {"telemetry": dict(TEST_CHANNELS["telemetry"], history_limit=n)}
        # The server is stopped while the backlog is published: a long ping interval keeps
        # the client from taking the pause for a dead connection. The outbox holds the
        # whole backlog: the server drains the broker faster than one Python client reads,
        # and with the default 1 MiB the conflate policy (right for a live notebook) would
        # keep only the latest reading per topic, where this bench counts every one.
        server = LiveServer(
            Path(tmp) / "server",
            broker,
            channels=channels,
            extra_config={"ping_interval": 30, "outbox_bytes": args.outbox_bytes},
        )
        try:
            server.start(timeout=120)
            for repeat in range(1, args.repeat + 1):
                raws = {mqtt: drain_raw(broker, n, mqtt) for mqtt in versions}
                ours = drain_ours(broker, server, n, args.stall)
                our_rate = ours.received / ours.seconds
                lost = "" if ours.received == n else f", {n - ours.received} MISSING"
                if ours.dropped:
                    lost += f" ({ours.dropped} conflated away)"
                line = [
                    f"#{repeat} ours into sub.frame {our_rate:8.0f} readings/s "
                    f"({ours.seconds:.2f} s, frame {ours.frame_seconds * 1000:.0f} ms{lost})"
                ]
                for mqtt, raw in raws.items():
                    raw_rate = raw.received / raw.seconds
                    ratio = our_rate / raw_rate
                    if ours.received == n and raw.received == n:
                        ratios[mqtt].append(ratio)
                    line.append(
                        f"raw aiomqtt MQTT {mqtt} {raw_rate:8.0f} readings/s "
                        f"({raw.seconds:.2f} s): ratio {ratio:.2f}"
                    )
                line.append(f"load {os.getloadavg()[0]:.1f}")
                print(" | ".join(line), flush=True)
        finally:
            server.stop()
            broker.kill()
    for mqtt, values in ratios.items():
        if not values:
            print(f"ingest at {revision}: no repetition delivered every reading")
            continue
        spread = f" [{min(values):.2f}-{max(values):.2f}]" if len(values) > 1 else ""
        print(
            f"ingest at {revision}: ours (bridge on MQTT 5) / raw aiomqtt on MQTT {mqtt} = "
            f"{statistics.median(values):.2f}{spread} (median [min-max] of {len(values)})"
        )


if __name__ == "__main__":
    main()
