"""The server's Prometheus ``/metrics`` carries iotcable counters that follow the traffic."""

from __future__ import annotations

import json
import re
from typing import Any

from jupyter_iotcable.protocol import make_identifier
from tests.brokers import Mosquitto
from tests.integration.conftest import CableFactory

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
    await jp_fetch(
        "iotcable",
        "api",
        "channels",
        "commands",
        "publish",
        method="POST",
        body=json.dumps({"topic": "plant/a/b/cmd", "payload": 1}),
    )
    after = await scrape(jp_fetch)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved('iotcable_messages_in_total{channel="telemetry"}') == 5
    assert moved('iotcable_readings_out_total{channel="telemetry"}') == 5
    assert moved('iotcable_publishes_total{outcome="ok"}') == 1
    assert after["iotcable_connections"] == 1
    assert after["iotcable_broker_connected"] == 1
