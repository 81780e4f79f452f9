"""The server's Prometheus ``/metrics`` carries iotcable counters that follow the traffic."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from jupyter_iotcable.protocol import make_identifier
from jupyter_iotcable.server import metrics
from jupyter_iotcable.server.engine import export_bridge_metrics
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory, rest_publish

SAMPLE = re.compile(r"^(iotcable_\w+(?:\{[^}]*\})?) (\S+)$", re.M)


async def scrape(jp_fetch: Any) -> dict[str, float]:
    """The iotcable samples of ``/metrics`` (authenticated, as the server requires)."""
    text = (await jp_fetch("metrics")).body.decode()
    return {name: float(value) for name, value in SAMPLE.findall(text)}


async def test_metrics_count_readings_connections_and_publishes(
    jp_fetch: Any, cable: CableFactory, mosquitto: Mosquitto
) -> None:
    before = await scrape(jp_fetch)
    ws = await cable()
    identifier = make_identifier("telemetry")
    await ws.subscribe(identifier)
    for i in range(5):
        mosquitto.publish(f"plant/lyon/pump{i}/env", json.dumps({"t": i}))
    rows = 0
    while rows < 5:
        msg = await ws.recv_until(lambda m: m.get("identifier") == identifier and "batch" in m)
        rows += len(msg["batch"])
    await rest_publish(jp_fetch, "commands", {"topic": "plant/a/b/cmd", "payload": 1})
    after = await scrape(jp_fetch)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved('iotcable_messages_in_total{channel="telemetry"}') == 5
    assert moved('iotcable_readings_out_total{channel="telemetry"}') == 5
    assert moved('iotcable_publishes_total{outcome="ok"}') == 1
    assert after["iotcable_connections"] == 1
    assert after["iotcable_broker_connected"] == 1


async def test_metrics_carry_the_bridges_back_pressure(jp_fetch: Any, iotcable: Any) -> None:
    # Exported on the server's heartbeat (every ping_interval, 3 s here): readings the
    # bridge dropped with its queue full would otherwise be a silent loss.
    names = ("backlog", "dropped", "load", "overloaded")
    for gauge in (metrics.BRIDGE_BACKLOG, metrics.BRIDGE_DROPPED, metrics.BRIDGE_OVERLOADED):
        gauge.set(-1)  # the gauges exist from import: only the heartbeat makes these >= 0
    metrics.BRIDGE_LOAD.set(-1)
    deadline = asyncio.get_running_loop().time() + 10
    samples = await scrape(jp_fetch)
    while any(samples.get(f"iotcable_bridge_{name}", -1.0) < 0 for name in names):
        assert asyncio.get_running_loop().time() < deadline, f"no bridge gauges in {samples}"
        await asyncio.sleep(0.5)
        samples = await scrape(jp_fetch)
    assert samples["iotcable_bridge_dropped"] == 0
    assert samples["iotcable_bridge_overloaded"] == 0
    assert 0.0 <= samples["iotcable_bridge_load"] <= 1.0


def test_bridge_figures_become_gauges() -> None:
    export_bridge_metrics({"backlog": 12, "dropped": 7, "load": 0.42, "overloaded": True})
    assert metrics.BRIDGE_BACKLOG._value.get() == 12
    assert metrics.BRIDGE_DROPPED._value.get() == 7
    assert metrics.BRIDGE_LOAD._value.get() == 0.42
    assert metrics.BRIDGE_OVERLOADED._value.get() == 1
    export_bridge_metrics({})  # a bridge that says nothing (not started) reads as zero
    assert metrics.BRIDGE_DROPPED._value.get() == 0
