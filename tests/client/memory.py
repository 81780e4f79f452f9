"""Subscriptions and cable sessions in memory, for tests of policy (no sockets, no threads).

``memory_subscription`` gives a ``Subscription`` and the ``Inbox`` that feeds it: a test
plays the cable's session by calling ``inbox.confirmed(meta)`` and
``inbox.receive(rows, dropped, backfill=...)``. ``MemoryServer`` pairs a real
``ServerConnection`` (the server's protocol machine) with a ``ClientSession``, so that a
test drives the client exactly as a server would, frame by frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_iotcable.client.inbox import Inbox
from jupyter_iotcable.client.session import ClientSession
from jupyter_iotcable.client.subscription import Subscription
from jupyter_iotcable.protocol import (
    ServerConnection,
    ServerEvent,
    Subprotocol,
    SubscribeRequested,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime, timedelta

    from jupyter_iotcable.protocol import Row

URL = "http://127.0.0.1:8888/"
T0 = 1_700_000_000.0
COLUMNS = "plant/{site}/{device}/env"


class MemoryControl:
    """What a subscription asks of its cable, answered in memory."""

    url = URL

    def __init__(self) -> None:
        self.cable_state = "connected"

    def unsubscribe(self, inbox: Inbox) -> None:
        if inbox.active:
            inbox.ended("unsubscribed")

    def history(
        self, inbox: Inbox, since: str | timedelta | datetime | float, timeout: float
    ) -> None:
        raise NotImplementedError("history needs a server: use MemoryServer")


def memory_subscription(
    channel: str = "telemetry",
    topic: str | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    max_rows: int = 1000,
    window: float | None = None,
    clock: Callable[[], float] | None = None,
    control: MemoryControl | None = None,
) -> tuple[Subscription, Inbox]:
    """A confirmed subscription (``meta`` defaults to the demo's telemetry channel);
    ``control`` lets a test play the cable (``control.cable_state = "reconnecting"``)."""
    extra = {} if clock is None else {"clock": clock}
    inbox = Inbox(channel, topic, max_rows=max_rows, window=window, **extra)
    sub = Subscription(inbox, control or MemoryControl())
    inbox.confirmed({"columns": COLUMNS, "format": "json"} if meta is None else meta)
    return sub, inbox


class MemoryServer:
    """A server's protocol machine wired to a client ``ClientSession`` in memory.

    ``pump()`` carries frames both ways until both are quiet and returns the server's
    events; the test plays the server application with ``server`` (``confirm``,
    ``rows``, ``reject_history``...).
    """

    def __init__(self, session: ClientSession | None = None, now: float = T0) -> None:
        self.now = now
        self.session = session or ClientSession(URL, clock=lambda: self.now)
        self.server = ServerConnection(Subprotocol.IOTCABLE, "sid-1")
        self.session.transport_state("connecting")
        self.session.connection_opened(now)
        self.server.welcome()
        self.pump()

    def reconnect(self) -> list[ServerEvent]:
        """The socket was lost (``session.connection_lost``): a new one, a new welcome;
        returns what the client sent the new server (its resubscribes)."""
        self.server = ServerConnection(Subprotocol.IOTCABLE, "sid-2")
        self.session.transport_state("reconnecting")
        self.session.connection_opened(self.now)
        self.server.welcome()
        return self.pump()

    def pump(self) -> list[ServerEvent]:
        events: list[ServerEvent] = []
        while True:
            moved = False
            for text in self.server.data_to_send():
                self.session.receive_text(text, self.now)
                moved = True
            for text in self.session.data_to_send():
                self.server.receive_text(text)
                events.extend(self.server.events_received())
                moved = True
            if not moved:
                return events

    def subscribed(self, events: Sequence[ServerEvent]) -> list[SubscribeRequested]:
        return [e for e in events if isinstance(e, SubscribeRequested)]

    def confirm(self, identifier: str, **meta: Any) -> None:
        self.server.confirm_subscription(
            identifier, {"columns": COLUMNS, "format": "json", "stream_id": "telemetry", **meta}
        )

    def rows(
        self, identifier: str, rows: Sequence[Row], *, epoch: str = "e1", dropped: int = 0
    ) -> None:
        """Send ``rows`` to one subscription in one batch frame, as the server would."""
        self.server.send_rows(identifier, "telemetry", epoch, rows, dropped=dropped)


def reading_rows(start: int, stop: int, *, t0: float = T0, devices: int = 2) -> list[Row]:
    """Rows ``start..stop-1``: one a second, topics ``plant/lyon/p{n % devices}/env``."""
    return [
        (n, t0 + n, f"plant/lyon/p{n % devices}/env", {"seq": n, "t": n / 2}, None)
        for n in range(start, stop)
    ]
