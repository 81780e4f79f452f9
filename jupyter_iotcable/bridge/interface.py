"""The seam between the channel engine and its link to the broker.

The engine (``server/engine.py``) depends on these two protocols only, never on aiomqtt:

- a :class:`Bridge` keeps the link alive, publishes, and reports its health;
- a :class:`BridgeSink` (the engine) is told what arrives and what happens, synchronously,
  on the event loop, in arrival order.

:class:`~.mqtt.MqttBridge` is the real bridge; :class:`~.memory.MemoryBridge` is a broker
in memory for tests (delivery and policy tests then need neither mosquitto nor sockets).
A :data:`BridgeFactory` builds a bridge for the filters the engine needs and the sink it
reports to, so that whoever assembles the server (the Jupyter extension, a hub service, a
test) picks the bridge.

No aiomqtt here: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..protocol import BrokerState

__all__ = ["Bridge", "BridgeError", "BridgeFactory", "BridgeSink", "BrokerState"]


class BridgeError(RuntimeError):
    """An operation the bridge could not carry out; the message says what happened to it."""


class BridgeSink(Protocol):
    """What a bridge reports to (the engine). Every call is synchronous and quick.

    A sink may also have a ``pressure`` attribute (:class:`~jupyter_iotcable.hub.Pressure`):
    a bridge that reads in bursts then paces itself by it (see :mod:`.fast_ingest`).
    """

    def on_message(self, topic: str, payload: bytes, received_at: float) -> None:
        """One message, in the order the broker delivered them (``received_at``: unix s)."""

    def on_state(self, state: BrokerState, detail: str) -> None:
        """The link's state changed; ``detail`` says why, for people (no secrets)."""

    def on_session_lost(self, detail: str) -> None:
        """The broker no longer had the bridge's session when it reconnected (MQTT
        CONNACK "session present" 0 where it had one): whatever the broker queued for
        the bridge during the outage is gone. Streams have a gap over the outage."""


class Bridge(Protocol):
    """What the engine needs from its link to the broker."""

    @property
    def state(self) -> BrokerState: ...

    async def start(self) -> None:
        """Start connecting in the background and return at once."""

    async def stop(self) -> None:
        """Disconnect (the broker keeps a persistent session) and stop reconnecting."""

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed; False after ``timeout`` seconds."""

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish one message (with QoS 1, once the broker acknowledged it).

        Raises :class:`BridgeError`, saying what happened to the message, when it could
        not be sent or acknowledged.
        """

    def status(self) -> dict[str, object]:
        """A JSON-safe snapshot for the status page: no credentials, errors redacted.

        Holds at least ``state``; the engine shows the keys it knows (``broker``,
        ``connects``, ``backlog``...).
        """


BridgeFactory = Callable[[Sequence[str], BridgeSink], Bridge]
"""Builds a bridge subscribed to these topic filters, reporting to this sink."""
