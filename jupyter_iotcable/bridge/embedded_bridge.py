"""The default set-up's bridge: start the embedded broker, then bridge to it.

With no ``broker_url`` the server runs its own broker (:class:`~.embedded.EmbeddedBroker`,
amqtt in a child process). This :class:`~.interface.Bridge` owns it: ``start`` starts the
broker and then an :class:`~.mqtt.MqttBridge` to it, ``stop`` stops both, and ``status``
says that the broker is embedded and how it is doing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..protocol import BrokerState
from .embedded import EmbeddedBroker
from .interface import BridgeError, BridgeSink
from .mqtt import MqttBridge

__all__ = ["EmbeddedBridge"]

log = logging.getLogger("jupyter_iotcable.server")


class EmbeddedBridge:
    """An :class:`~.mqtt.MqttBridge` to an embedded broker that it starts and stops."""

    def __init__(
        self, filters: Sequence[str], sink: BridgeSink, *, workdir: Path | None = None
    ) -> None:
        self._filters = tuple(filters)
        self._sink = sink
        self.broker = EmbeddedBroker(workdir=workdir)
        self.inner: MqttBridge | None = None

    @property
    def state(self) -> BrokerState:
        return self.inner.state if self.inner is not None else BrokerState.DISCONNECTED

    async def start(self) -> None:
        """Start the broker (``EmbeddedBrokerError`` if it cannot), then the bridge."""
        await self.broker.start()
        log.info("iotcable: embedded MQTT broker listening on %s", self.broker.url)
        self.inner = MqttBridge(self.broker.settings(), self._filters, sink=self._sink)
        await self.inner.start()

    async def stop(self) -> None:
        if self.inner is not None:
            await self.inner.stop()
        await self.broker.stop()

    async def wait_connected(self, timeout: float) -> bool:
        return self.inner is not None and await self.inner.wait_connected(timeout)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self.inner is None:
            raise BridgeError(
                f"the embedded broker is not running; the publish to {topic!r} was not sent"
            )
        await self.inner.publish(topic, payload, qos=qos, retain=retain)

    def status(self) -> dict[str, object]:
        status: dict[str, object] = (
            self.inner.status() if self.inner is not None else {"state": self.state.value}
        )
        status["embedded_broker"] = self.broker.status()
        return status
