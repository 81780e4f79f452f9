"""Prometheus metrics follow the traffic: totals on the server's ``/metrics``, the same per
channel on ``iotcable/api/metrics`` for the channels the caller may read, and only those."""

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


async def scrape(jp_fetch: Any, *path: str) -> dict[str, float]:
    """The iotcable samples of ``/metrics`` (authenticated, as the server requires), or of
    another path (``"iotcable", "api", "metrics"``)."""
    text = (await jp_fetch(*(path or ("metrics",)))).body.decode()
    return {name: float(value) for name, value in SAMPLE.findall(text)}


async def test_metrics_count_readings_connections_and_publishes(
    jp_fetch: Any, cable: CableFactory, mosquitto: Mosquitto
) -> None:
    before = await scrape(jp_fetch)
    per_channel_before = await scrape(jp_fetch, "iotcable", "api", "metrics")
    ws = await cable()
    identifier = make_identifier("telemetry")
    await ws.subscribe(identifier)
    for i in range(5):
        mosquitto.publish(f"plant/lyon/pump{i}/env", json.dumps({"t": i}))
    rows = 0
    while rows < 5:
        msg = await ws.recv_until(lambda m: m.get("identifier") == identifier and "batch" in m)
        rows += len(msg["batch"])
    # Scraped before the publish, whose echo from the broker is a reading on 'commands'.
    after = await scrape(jp_fetch)
    per_channel = await scrape(jp_fetch, "iotcable", "api", "metrics")
    await rest_publish(jp_fetch, "commands", {"topic": "plant/a/b/cmd", "payload": 1})

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved("iotcable_messages_in_total") == 5
    assert moved("iotcable_readings_out_total") == 5
    for name in ("messages_in", "readings_out"):
        sample = f'iotcable_{name}_total{{channel="telemetry"}}'
        assert per_channel[sample] - per_channel_before.get(sample, 0.0) == 5
    after = await scrape(jp_fetch)
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


async def test_metrics_name_no_channel_the_caller_may_not_read(
    jp_fetch: Any, cable: CableFactory, mosquitto: Mosquitto
) -> None:
    """Channel 'secret' is readable by user:somebody-else only: traffic on it shows in the
    totals, never by name, neither on /metrics nor on iotcable/api/metrics."""
    ws = await cable()
    identifier = make_identifier("telemetry")
    await ws.subscribe(identifier)
    mosquitto.publish("secret/vault/door", b"1")
    mosquitto.publish("plant/metrics/pump/env", b"{}")
    await ws.recv_until(lambda m: m.get("identifier") == identifier and "batch" in m)
    status = json.loads((await jp_fetch("iotcable", "api", "status")).body)
    for _ in range(50):  # the two readings may reach the hub in either order
        status = json.loads((await jp_fetch("iotcable", "api", "status")).body)
        if status["broker"]["messages_in"] >= 2:
            break
        await asyncio.sleep(0.1)
    assert "secret" not in status["channels"]

    server_wide = (await jp_fetch("metrics")).body.decode()
    mine = (await jp_fetch("iotcable", "api", "metrics")).body.decode()
    assert 'channel="telemetry"' in mine
    assert "iotcable_messages_in_total " in server_wide
    for text in (server_wide, mine):
        assert "secret" not in text
    assert "channel=" not in "\n".join(
        line for line in server_wide.splitlines() if line.startswith("iotcable_")
    )
    # The per-channel figures of every channel exist (a reader of 'secret' would see them).
    everything = metrics.channel_metrics({"secret", "telemetry"}).decode()
    assert 'iotcable_messages_in_total{channel="secret"}' in everything


def test_channel_metrics_keep_only_the_channels_asked_for() -> None:
    metrics.MESSAGES_IN.labels("only-a").inc(3)
    metrics.MESSAGES_IN.labels("only-b").inc(2)
    text = metrics.channel_metrics({"only-a"}).decode()
    assert 'iotcable_messages_in_total{channel="only-a"} 3.0' in text
    assert "only-b" not in text
    assert "channel=" not in metrics.channel_metrics(set()).decode().replace("# ", "")
