"""Prometheus metrics, joining the Jupyter server's own ``/metrics`` endpoint.

jupyter_server serves the default prometheus registry, so registering there is all it
takes. Metrics are created once per process (tests start many servers in one process).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES_IN = Counter(
    "iotcable_messages_in", "MQTT messages received by the bridge, per channel", ["channel"]
)
READINGS_OUT = Counter(
    "iotcable_readings_out", "Readings written to websocket subscribers", ["channel"]
)
DROPPED = Counter(
    "iotcable_readings_conflated",
    "Readings dropped by the conflate policy for slow consumers",
    ["channel"],
)
SLOW_DISCONNECTS = Counter("iotcable_too_slow_disconnects", "Connections closed with too_slow")
PUBLISHES = Counter("iotcable_publishes", "Publish requests, by outcome", ["outcome"])
CONNECTIONS = Gauge("iotcable_connections", "Open iotcable websocket connections")
BROKER_CONNECTED = Gauge("iotcable_broker_connected", "1 when the bridge is connected")
BRIDGE_BACKLOG = Gauge(
    "iotcable_bridge_backlog", "MQTT messages received but not yet routed (back-pressure)"
)
BRIDGE_DROPPED = Gauge(
    "iotcable_bridge_dropped",
    "MQTT messages the bridge dropped because its queue was full, since it started",
)
BRIDGE_LOAD = Gauge("iotcable_bridge_load", "Share of time the bridge spends routing (0..1)")
BRIDGE_OVERLOADED = Gauge("iotcable_bridge_overloaded", "1 while the bridge cannot keep up")
