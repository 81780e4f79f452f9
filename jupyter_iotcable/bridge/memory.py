"""A broker in memory, behind the bridge interface: what tests run the engine against.

``MemoryBridge`` delivers what a test hands it (:meth:`~MemoryBridge.deliver`) to the
engine at once, in order, to the filters it was built for, as a connected bridge would;
what the engine publishes comes back to it when a filter matches, as a broker echoes it.
A test can take the link down and bring it back, with or without the broker's session
(:meth:`~MemoryBridge.go_down`, :meth:`~MemoryBridge.come_back`). No sockets, no tasks, no
clock of its own: delivery and policy tests run in milliseconds and decide every step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ..protocol import BrokerState
from ..topics import matches, validate_filter
from .interface import BridgeError, BridgeSink

__all__ = ["MemoryBridge"]


class MemoryBridge:
    """A :class:`~.interface.Bridge` whose broker is the test."""

    def __init__(
        self,
        filters: Sequence[str],
        sink: BridgeSink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.filters = tuple(dict.fromkeys(validate_filter(f) for f in filters))
        self.sink = sink
        self.clock = clock
        self.state = BrokerState.DISCONNECTED
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.refuse_publish: str | None = None  # set: publishes fail with this reason
        self.messages_in = 0
        self._connected = asyncio.Event()

    # -- the Bridge interface ---------------------------------------------------------

    async def start(self) -> None:
        self.connect()

    async def stop(self) -> None:
        self._set_state(BrokerState.DISCONNECTED, "stopped")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self.state is not BrokerState.CONNECTED:
            raise BridgeError(
                f"the MQTT broker memory is unreachable (bridge {self.state.value}); "
                f"the publish to {topic!r} was not sent"
            )
        if self.refuse_publish is not None:
            raise BridgeError(f"the publish to {topic!r} failed ({self.refuse_publish})")
        self.published.append((topic, payload, qos, retain))
        self.deliver(topic, payload)

    def status(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "broker": "memory",
            "filters": list(self.filters),
            "messages_in": self.messages_in,
            "messages_out": len(self.published),
        }

    # -- what a test does -------------------------------------------------------------

    def deliver(self, topic: str, payload: bytes | str, received_at: float | None = None) -> bool:
        """The broker delivers one message; False when no filter of ours matches it
        or the link is down (a real broker would not send it to us either)."""
        if self.state is not BrokerState.CONNECTED:
            return False
        if not any(matches(f, topic) for f in self.filters):
            return False
        data = payload.encode() if isinstance(payload, str) else payload
        self.messages_in += 1
        self.sink.on_message(topic, data, self.clock() if received_at is None else received_at)
        return True

    def connect(self) -> None:
        """The link is up (what ``start`` does, callable without an event loop)."""
        self._set_state(BrokerState.CONNECTED, "connected to the memory broker")

    def go_down(self, detail: str = "lost the connection to memory") -> None:
        """The link drops; the bridge retries (``reconnecting``)."""
        self._set_state(BrokerState.RECONNECTING, detail)

    def come_back(self, *, session_present: bool = True) -> None:
        """The link is back; without its session, what the broker held for us is gone."""
        if not session_present:
            self.sink.on_session_lost("the broker memory no longer had the bridge's session")
        self._set_state(BrokerState.CONNECTED, "connected to the memory broker")

    def _set_state(self, state: BrokerState, detail: str) -> None:
        if state is self.state:
            return
        self.state = state
        if state is BrokerState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        self.sink.on_state(state, detail)
