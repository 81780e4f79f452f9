"""A broker crash never costs a reading silently (issue 12, finding 7): real mosquitto,
real server, the Python client.

A device publishes at 50 readings/s with QoS 1 and keeps the sequence numbers the broker
acknowledged. mosquitto is killed (-9) mid-stream and started again:

- without persistence, the broker has lost the bridge's session and whatever it had
  acknowledged while the bridge was away: every acknowledged reading that never arrives
  lies inside a gap in ``sub.gaps`` (cause ``continuity_lost``), from the last reading
  before the crash to the first after it. AnyCable's own client (``@anycable/core``,
  ``tests/anycable/probe.mjs`` on ``actioncable-v1-ext-json``), which follows a stream's
  position through each message's ``meta``, sees it as AnyCable signals lost continuity:
  the epoch changes, from the server run's to ``RUN.2``, exactly there;
- with persistence (the broker saved its state before the crash: mosquitto writes it every
  ``autosave_interval``, and what it acknowledged after its last save dies with it, a
  limit of the broker), every acknowledged reading arrives exactly once, and no gap.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
import pandas as pd
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import jupyter_iotcable as iot
from jupyter_iotcable.client.gaps import GapCause
from tests.integration.test_client import wait_until

if TYPE_CHECKING:
    from jupyter_iotcable.client import Subscription
    from tests.brokers import Mosquitto
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


class Device:
    """Publishes ``{"seq": n}`` at ``rate``/s with QoS 1, one at a time; remembers the
    sequence numbers the broker acknowledged. Waits while the broker is away."""

    def __init__(self, broker: Mosquitto, rate: float = 50.0) -> None:
        self.rate = rate
        self.acked: list[int] = []
        self.paused = threading.Event()
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-device")
        # paho computes the delay with floats; its annotation says int.
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            time.sleep(1 / self.rate)
            if self.paused.is_set() or not self.client.is_connected():
                continue
            info = self.client.publish("plant/crash/dev1/env", json.dumps({"seq": seq}), qos=1)
            seq += 1
            try:
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                self.acked.append(seq - 1)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)
        self.client.loop_stop()
        self.client.disconnect()


def seqs(sub: Subscription) -> list[int]:
    return [int(s) for s in sub.frame["seq"]]


def crash(broker: Mosquitto, *, keep_state: bool) -> None:
    broker.kill()
    if not keep_state:
        broker.persistence_path.unlink(missing_ok=True)
    time.sleep(1.0)  # the broker stays down for a while; the device cannot publish
    broker.start()


def test_a_crash_without_persistence_is_a_gap_over_every_lost_reading(
    live_server: LiveServer, node: str
) -> None:
    broker = live_server.mosquitto
    assert broker is not None
    ws_url = f"{live_server.url.replace('http', 'ws')}iotcable/cable?token={live_server.token}"
    probe = Probe(node, ws_url, "telemetry", "plant/crash/+/env")
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", topic="plant/crash/+/env", window=None)
        wait_until(
            lambda: any(e["event"] == "subscribed" for e in probe.collect()), 30, "the probe"
        )
        device = Device(broker)
        try:
            wait_until(lambda: len(sub) >= 50, 30, "50 readings before the crash")
            crash(broker, keep_state=False)
            restarted = len(device.acked)
            wait_until(lambda: len(device.acked) >= restarted + 50, 30, "50 more acknowledged")
        finally:
            device.stop()
        last = device.acked[-1]
        wait_until(lambda: last in seqs(sub), 30, "the last acknowledged reading")
        frame = sub.frame
        gaps = sub.gaps
        try:
            wait_until(
                lambda: any(m["message"]["payload"]["seq"] == last for m in probe.messages()),
                30,
                "the last reading at the @anycable/core client",
            )
        finally:
            probe.stop()

    got = seqs(sub)
    assert len(got) == len(set(got)), "no reading twice"
    missing = sorted(set(device.acked) - set(got))
    [gap] = gaps
    assert gap.cause is GapCause.CONTINUITY_LOST
    assert gap.start is not None and gap.end is not None
    # The gap runs from the last reading before the crash to the first after it...
    before = _seq_at(frame, gap.start)
    after = _seq_at(frame, gap.end)
    assert before < after
    assert got.index(after) == got.index(before) + 1, "the gap lies between two readings"
    # ...and every acknowledged reading that never came lies inside it: none silently.
    assert all(before < seq < after for seq in missing), (before, after, missing)

    status = live_server.get("iotcable/api/status")
    assert status["broker"]["sessions_lost"] == 1
    assert status["channels"]["telemetry"]["continuity"]["gaps"] == 1

    # The @anycable/core client: the same readings, the epoch changing between the two.
    run = status["epoch"]
    seen = [
        (m["message"]["payload"]["seq"], m["meta"]["epoch"], m["meta"]["offset"])
        for m in probe.messages()
    ]
    assert [s[0] for s in seen] == got
    assert [s[1] for s in seen] == [run if seq <= before else f"{run}.2" for seq, _, _ in seen], (
        "one epoch change, between the last reading before the crash and the first after"
    )
    assert [s[2] for s in seen] == sorted(s[2] for s in seen), "offsets go on"
    assert not [e for e in probe.seen if e["event"] == "disconnect"], "its cable stayed up"
    print(
        f"\n[crash without persistence] {len(device.acked)} acknowledged, {len(missing)} "
        f"lost inside the reported gap ({gap.start:%H:%M:%S.%f} to {gap.end:%H:%M:%S.%f}), "
        "0 lost outside it"
    )


def test_a_crash_with_persistence_loses_nothing_and_repeats_nothing(
    live_server: LiveServer,
) -> None:
    broker = live_server.mosquitto
    assert broker is not None
    with iot.connect(live_server.url, token=live_server.token) as cable:
        sub = cable.subscribe("telemetry", topic="plant/crash/+/env", window=None)
        device = Device(broker)
        try:
            wait_until(lambda: len(sub) >= 50, 30, "50 readings before the crash")
            device.paused.set()
            time.sleep(0.1)
            held = list(device.acked)
            wait_until(lambda: len(sub) == len(held), 30, "every reading before the crash")
            broker.save()  # what the broker acknowledged is on disk
            crash(broker, keep_state=True)
            device.paused.clear()
            wait_until(lambda: len(device.acked) >= len(held) + 50, 30, "50 more acknowledged")
        finally:
            device.stop()
        total = len(device.acked)
        wait_until(lambda: len(sub) >= total, 30, f"{total} readings")
        time.sleep(0.5)  # a duplicate would come now
        got = seqs(sub)
        gaps = sub.gaps
    assert got == device.acked, "every acknowledged reading once, in order"
    assert gaps == []
    status = live_server.get("iotcable/api/status")
    assert status["broker"]["sessions_lost"] == 0
    assert status["broker"]["outages"] == 1


def _seq_at(frame: pd.DataFrame, moment: datetime) -> int:
    """The sequence number of the reading at ``moment`` (the frame's index is its time)."""
    index = pd.DatetimeIndex(frame.index)
    stamp = pd.Timestamp(moment)
    if index.tz is None:
        stamp = stamp.tz_localize(None)
    nearest = int((index - stamp).to_series().abs().argmin())
    return int(frame["seq"].iloc[nearest])
