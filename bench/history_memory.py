"""History memory: what readings kept for history cost the server (RSS), by payload kind.

    .venv/bin/python bench/history_memory.py                  # both scenarios
    .venv/bin/python bench/history_memory.py --small 100000 --large 300

For each scenario a fresh extension (a real ``jupyter server``) on a private mosquitto is
warmed up with one reading, then a paho publisher sends the readings at QoS 1 and the
bench waits until the channel has routed them all. Printed: the server's RSS growth, the
history bytes the server counts (``status.history.bytes``, ``Entry.memory``), and the
ratios of the growth to that count and to the payload bytes published (the baseline: what
the devices sent).

- ``small``: ``{"seq": N, "t": 21.5}`` (about 25 bytes), all kept (history_limit above N).
  Before the hub kept exact-size copies of orjson's output, each entry held orjson's
  growing buffer: 50,000 of them took 204 MiB of RSS (4 KiB each), now about 13 MiB.
- ``large``: 1 MB of ``[{},{},...]`` (the payload of issue 12 that cost 23x its size),
  under ``c.IoTCableApp.history_bytes`` of 64 MiB: the growth stays near the bound.

Not a test (tests/integration/test_hostile_payloads.py asserts the 1 MB bound).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import tempfile
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import git_revision, rss_bytes, start_broker, wait_quiet
from tests.servers import LiveServer

MIB = 1 << 20


def routed(server: LiveServer) -> int:
    try:
        count: int = server.get("iotcable/api/status")["channels"]["h"]["messages_in"]
    except (TimeoutError, OSError):
        return -1
    return count


def scenario(name: str, payloads: list[bytes], channel: dict[str, Any], **config: Any) -> None:
    with tempfile.TemporaryDirectory(prefix=f"history-{name}-") as tmp:
        broker = start_broker(Path(tmp))
        server = LiveServer(
            Path(tmp) / "server", broker, channels={"h": channel}, extra_config=config
        )
        try:
            server.start(timeout=120)
            assert server.process is not None
            client = mqtt.Client(CallbackAPIVersion.VERSION2)
            client.max_inflight_messages_set(200)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            client.publish("h/warm", b"[1]", qos=1).wait_for_publish(30)
            while routed(server) < 1:
                time.sleep(0.1)
            wait_quiet(server.process.pid)
            before = rss_bytes(server.process.pid)
            for start in range(0, len(payloads), 200):
                chunk = payloads[start : start + 200]
                infos = [client.publish(f"h/d{i % 7}", p, qos=1) for i, p in enumerate(chunk)]
                for info in infos:
                    info.wait_for_publish(60)
                while routed(server) < 1 + start + len(chunk):
                    time.sleep(0.05)
            wait_quiet(server.process.pid)
            grew = rss_bytes(server.process.pid) - before
            client.loop_stop()
            client.disconnect()
            status = server.get("iotcable/api/status")
            counted = status["history"]["bytes"]
            sent = sum(len(p) for p in payloads)
            kept = status["channels"]["h"]["history"]["size"]
            print(
                f"{name:6} {len(payloads):>7,} readings, {sent / MIB:8.1f} MiB sent; "
                f"{kept:>7,} kept, counted {counted / MIB:6.1f} MiB; RSS +{grew / MIB:6.1f} MiB "
                f"= {grew / max(counted, 1):.2f}x counted, {grew / sent:.3f}x sent",
                flush=True,
            )
        finally:
            server.stop()
            broker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=50_000, help="small readings")
    parser.add_argument("--large", type=int, default=200, help="1 MB readings")
    args = parser.parse_args()
    print(f"jupyter-iotcable {git_revision()}")
    small = [json.dumps({"seq": i, "t": 21.5}).encode() for i in range(args.small)]
    scenario("small", small, {"topics": ["h/#"], "read": ["*"], "history_limit": args.small})
    large = b"[" + b"{}," * (MIB // 3 - 1) + b"{}]"
    channel = {
        "topics": ["h/#"],
        "read": ["*"],
        "history_limit": 100_000,
        "max_reading_bytes": 2 * MIB,
        "history_bytes": 1 << 30,
    }
    scenario("large", [large] * args.large, channel, history_bytes=64 * MIB)


if __name__ == "__main__":
    main()
