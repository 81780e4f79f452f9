"""Prometheus metrics: server-wide totals on ``/metrics``, per-channel figures per reader.

jupyter_server serves the default prometheus registry at ``/metrics`` to every
authenticated user, so what goes there must not name channels: a user who may not read a
channel must not learn its name or its traffic there (issue 12) while ``status`` and
``channels`` hide it. The default registry therefore holds totals only (``iotcable_*``
without labels). The same figures per channel live in :data:`CHANNEL_REGISTRY`, which
``GET {base_url}iotcable/api/metrics`` serves (:func:`channel_metrics`) labelled with the
channels the caller may read, and nothing else.

Metrics are created once per process (tests start many servers in one process).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CHANNEL_REGISTRY = CollectorRegistry(auto_describe=True)
"""Per-channel metrics (label ``channel``): served per reader, never on ``/metrics``."""


class _ChannelCounter:
    """A counter per channel (in :data:`CHANNEL_REGISTRY`) and its total (on ``/metrics``).

    ``COUNTER.labels(channel).inc(n)`` moves both, as a prometheus counter's child would.
    """

    def __init__(self, name: str, documentation: str) -> None:
        self.total = Counter(name, f"{documentation}, all channels")
        self.per_channel = Counter(
            name, f"{documentation}, per channel", ["channel"], registry=CHANNEL_REGISTRY
        )
        self._children: dict[str, _Child] = {}

    def labels(self, channel: str) -> _Child:
        child = self._children.get(channel)
        if child is None:
            child = self._children[channel] = _Child(self.total, self.per_channel.labels(channel))
        return child


class _Child:
    __slots__ = ("_channel", "_total")

    def __init__(self, total: Counter, channel: Counter) -> None:
        self._total = total
        self._channel = channel

    def inc(self, amount: float = 1) -> None:
        self._total.inc(amount)
        self._channel.inc(amount)


MESSAGES_IN = _ChannelCounter("iotcable_messages_in", "Readings received from the broker")
READINGS_OUT = _ChannelCounter("iotcable_readings_out", "Readings written to websocket subscribers")
DROPPED = _ChannelCounter(
    "iotcable_readings_conflated", "Readings dropped by the conflate policy for slow consumers"
)
CONTINUITY_GAPS = _ChannelCounter(
    "iotcable_continuity_gaps",
    "Gaps reported because the bridge came back without its broker session (readings "
    "published meanwhile are lost; the stream continues in a new epoch)",
)
OVERSIZE = _ChannelCounter(
    "iotcable_readings_oversize",
    "Readings kept without their payload: larger than the channel's max_reading_bytes",
)
FLAGGED = _ChannelCounter(
    "iotcable_readings_flagged",
    "Readings kept with an error (a payload that did not decode, oversize included)",
)
HISTORY_BYTES = Gauge(
    "iotcable_history_bytes",
    "Memory the history of all channels takes (what their readings cost in memory), bytes",
)
CHANNEL_HISTORY_BYTES = Gauge(
    "iotcable_history_bytes",
    "Memory the channel's history takes (what its readings cost in memory), bytes",
    ["channel"],
    registry=CHANNEL_REGISTRY,
)
SLOW_DISCONNECTS = Counter("iotcable_too_slow_disconnects", "Connections closed with too_slow")
PUBLISHES = Counter("iotcable_publishes", "Publish requests, by outcome", ["outcome"])
CONNECTIONS = Gauge("iotcable_connections", "Open iotcable websocket connections")
BROKER_CONNECTED = Gauge("iotcable_broker_connected", "1 when the bridge is connected")
SESSIONS_LOST = Counter(
    "iotcable_broker_sessions_lost",
    "Reconnects of the bridge after which the broker no longer had its session",
)
BRIDGE_BACKLOG = Gauge(
    "iotcable_bridge_backlog", "MQTT messages received but not yet routed (back-pressure)"
)
BRIDGE_DROPPED = Gauge(
    "iotcable_bridge_dropped",
    "MQTT messages the bridge dropped because its queue was full, since it started",
)
BRIDGE_LOAD = Gauge("iotcable_bridge_load", "Share of time the bridge spends routing (0..1)")
BRIDGE_OVERLOADED = Gauge("iotcable_bridge_overloaded", "1 while the bridge cannot keep up")


class _Readable(Collector):
    """The per-channel families with the samples of ``channels`` only."""

    def __init__(self, channels: Collection[str]) -> None:
        self.channels = channels

    def collect(self) -> Iterator[Metric]:
        for family in CHANNEL_REGISTRY.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if s.labels.get("channel") in self.channels]
            yield kept


def channel_metrics(channels: Collection[str]) -> bytes:
    """The per-channel metrics of ``channels`` in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Readable(frozenset(channels)))
    return generate_latest(registry)
