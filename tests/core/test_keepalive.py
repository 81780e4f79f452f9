"""The websocket keepalive of the tornado adapter, driven by the engine's heartbeat.

No timer per connection: ``CableSocket.keepalive(now)`` is called on every heartbeat and
decides alone whether to ping, wait, or give up on a client that stopped answering. Its
decisions are tested here without a socket or a clock.
"""

from __future__ import annotations

from typing import Any

from jupyter_iotcable.server.cable_socket import CableSocket


class Connection:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class Socket:
    """What keepalive() uses of the handler."""

    keepalive_interval = 30.0
    keepalive_timeout = 90.0

    def __init__(self, now: float) -> None:
        self.ws_connection = Connection()
        self._pinged_at = self._pong_at = now
        self.pings: list[float] = []
        self.closed = False
        self.now = now

    def ping(self, data: bytes) -> None:
        self.pings.append(self.now)

    def close(self) -> None:
        self.closed = True

    def beat(self, now: float, *, pong: bool) -> None:
        self.now = now
        CableSocket.keepalive(self, now)  # type: ignore[arg-type]
        if pong and self.pings and self.pings[-1] == now:
            self._pong_at = now


def beats(socket: Socket, seconds: float, *, pong: bool, every: float = 3.0) -> None:
    start = socket.now
    t = start
    while t < start + seconds and not socket.closed:
        t += every
        socket.beat(t, pong=pong)


def test_a_client_that_answers_is_pinged_every_interval_and_kept() -> None:
    socket = Socket(1000.0)
    beats(socket, 600, pong=True)
    assert not socket.closed
    gaps = [b - a for a, b in zip(socket.pings, socket.pings[1:], strict=False)]
    assert len(socket.pings) >= 18 and all(30 <= gap < 33 for gap in gaps)


def test_a_client_that_stopped_answering_is_closed_after_the_timeout() -> None:
    socket = Socket(1000.0)
    beats(socket, 600, pong=False)
    assert socket.closed
    assert 90 < socket.now - 1000.0 <= 90 + 30 + 3, "closed at the first ping past the timeout"


def test_a_late_heartbeat_pings_again_rather_than_closing() -> None:
    """The machine was suspended: no ping went out, so no missing pong is held against it."""
    socket = Socket(1000.0)
    socket.beat(1000.0 + 600, pong=False)
    assert not socket.closed and socket.pings == [1600.0]


def test_nothing_is_sent_on_a_closing_connection() -> None:
    socket: Any = Socket(1000.0)
    socket.ws_connection.closing = True
    socket.beat(1100.0, pong=False)
    assert socket.pings == [] and not socket.closed
