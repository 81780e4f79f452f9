"""An ``@anycable/core`` client sees a broker crash as lost continuity (issue 12).

AnyCable's own client (``tests/anycable/probe.mjs``, on ``actioncable-v1-ext-json``)
follows a stream's position through each message's ``meta`` (``stream``, ``epoch``,
``offset``); a new epoch is how AnyCable says the history before it cannot be continued.
mosquitto is killed (-9) and started without its persistence file, so the bridge comes
back without its session: the probe sees the epoch change, from the server run's epoch to
``RUN.2``, exactly between the last reading before the crash and the first after it.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import Mosquitto
from tests.integration.test_client import wait_until
from tests.servers import LiveServer

PROBE = Path(__file__).resolve().parents[1] / "anycable"


@pytest.fixture(scope="module")
def node() -> str:
    """node, once ``tests/anycable/node_modules`` holds the locked ``@anycable/core``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 18+ is needed (bash .ci/setup test installs it)"
    if not (PROBE / "node_modules" / "@anycable" / "core" / "package.json").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROBE, check=True
        )
    return node


class Probe:
    """The node client as a subprocess; its JSON lines arrive on a queue."""

    def __init__(self, node: str, url: str, channel: str, topic: str) -> None:
        self.process = subprocess.Popen(
            [node, str(PROBE / "probe.mjs"), url, channel, topic],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self.lines.put({"event": "output", "text": line.rstrip()})

    def collect(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.collect() if e["event"] == "message"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def test_an_anycable_client_sees_the_crash_as_a_new_epoch(
    node: str, live_server: LiveServer
) -> None:
    broker: Mosquitto | None = live_server.mosquitto
    assert broker is not None
    url = f"{live_server.url.replace('http', 'ws')}iotcable/cable?token={live_server.token}"
    probe = Probe(node, url, "telemetry", "plant/anycable/+/env")
    try:
        wait_until(
            lambda: any(e["event"] == "subscribed" for e in probe.collect()), 30, "subscribed"
        )
        for seq in range(3):
            broker.publish("plant/anycable/dev1/env", json.dumps({"seq": seq}))
        wait_until(lambda: len(probe.messages()) == 3, 30, "3 readings before the crash")
        broker.kill()
        broker.persistence_path.unlink(missing_ok=True)
        time.sleep(0.5)
        broker.start()
        wait_until(
            lambda: live_server.get("iotcable/api/status")["broker"]["state"] == "connected",
            30,
            "the bridge back",
        )
        for seq in range(3, 6):
            broker.publish("plant/anycable/dev1/env", json.dumps({"seq": seq}))
        wait_until(lambda: len(probe.messages()) == 6, 30, "3 readings after the crash")
    finally:
        probe.stop()

    run = live_server.get("iotcable/api/status")["epoch"]
    seen = [
        (
            m["message"]["payload"]["seq"],
            m["meta"]["stream"],
            m["meta"]["epoch"],
            m["meta"]["offset"],
        )
        for m in probe.messages()
    ]
    assert [s[0] for s in seen] == list(range(6))
    assert {s[1] for s in seen} == {"telemetry"}
    assert [s[2] for s in seen] == [run] * 3 + [f"{run}.2"] * 3, seen
    offsets = [s[3] for s in seen]
    assert offsets == sorted(offsets), "offsets go on across the epochs"
    assert not [e for e in probe.seen if e["event"] == "disconnect"], "the cable stayed up"
