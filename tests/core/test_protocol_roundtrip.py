"""The two machines talking to each other in memory, across reconnects and restarts.

A tiny server application (one stream with a bounded history ring, answering history
by offset or time the way the hub does) and a loop pumping frames between the machines
check the end-to-end promise of DESIGN.md section 6: every reading reaches the client
exactly once and in order, or the client was told about the gap.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import pytest

from jupyter_iotcable.protocol import (
    Backoff,
    ClientConnection,
    Disconnected,
    DisconnectReason,
    GapReported,
    HistoryConfirmed,
    HistoryRequest,
    HistoryRequested,
    PerformRequested,
    Row,
    RowsReceived,
    ServerConnection,
    Subprotocol,
    SubscribeRequested,
    SubscriptionConfirmed,
    SubscriptionRejected,
    Transmission,
    UnsubscribeRequested,
    Welcomed,
)

STREAM = "telemetry"


@dataclass
class App:
    """The server side's application: one channel, one stream, a ring of ``limit`` rows."""

    limit: int
    # Servers may repeat themselves: resend this many rows before the asked position,
    # and push what is still kept right after a reject_history (as AnyCable may) or right
    # before it (as the jupyter-iotcable server does). The client must cope.
    overlap: int = 0
    push_after_reject: bool = False
    push_before_reject: bool = False
    epoch_number: int = 1
    next_offset: int = 0
    ring: deque[Row] = field(default_factory=deque)
    evicted_until: float | None = None  # newest time among rows no longer kept
    started: float = 0.0  # when this epoch began: what came before is unknown to it
    active: set[str] = field(default_factory=set)

    @property
    def epoch(self) -> str:
        return f"e{self.epoch_number}"

    def publish(self, now: float) -> Row:
        row: Row = (self.next_offset, now, "plant/a/b/env", {"n": self.next_offset}, None)
        self.next_offset += 1
        self.ring.append(row)
        if len(self.ring) > self.limit:
            self.evicted_until = self.ring.popleft()[1]
        return row

    def restart(self, now: float) -> None:
        """A server restart: a new epoch, offsets from 0, nothing kept, sessions lost."""
        self.started = now
        self.epoch_number += 1
        self.next_offset = 0
        self.ring.clear()
        self.evicted_until = None
        self.active.clear()

    def handle(self, conn: ServerConnection, *, refuse: frozenset[str] = frozenset()) -> None:
        for event in conn.events_received():
            if isinstance(event, SubscribeRequested):
                if event.ref.channel in refuse:
                    conn.reject_subscription(event.identifier, f"no channel {event.ref.channel!r}")
                    continue
                if conn.confirm_subscription(event.identifier, {"format": "json"}):
                    self.active.add(event.identifier)
                if event.history is not None:
                    self.answer(conn, event.identifier, event.history)
            elif isinstance(event, HistoryRequested):
                self.answer(conn, event.identifier, event.request)
            elif isinstance(event, UnsubscribeRequested):
                self.active.discard(event.identifier)
            elif isinstance(event, PerformRequested):
                conn.transmit(event.identifier, {"action": f"{event.action}_result", **event.data})

    def answer(self, conn: ServerConnection, identifier: str, request: HistoryRequest) -> None:
        oldest = self.ring[0][0] if self.ring else None
        position = request.streams.get(STREAM)
        if position is not None:
            first_wanted = position.offset + 1 if position.epoch == self.epoch else 0
            gone = position.epoch != self.epoch or first_wanted < (
                oldest if oldest is not None else self.next_offset
            )
            rows = [r for r in self.ring if r[0] >= first_wanted - self.overlap]
        else:
            since = request.since if request.since is not None else 0.0
            evicted = self.evicted_until is not None and self.evicted_until >= since
            gone = evicted or since < self.started
            rows = [r for r in self.ring if r[1] >= since]
        if gone:
            if self.push_before_reject and self.ring:
                conn.send_rows(identifier, STREAM, self.epoch, list(self.ring))
            conn.reject_history(
                identifier,
                f"readings are gone; oldest kept: {oldest}",
                stream_id=STREAM,
                epoch=self.epoch,
                available_from=oldest,
            )
            if self.push_after_reject and self.ring:
                conn.send_rows(identifier, STREAM, self.epoch, list(self.ring))
            return
        if rows:
            conn.send_rows(identifier, STREAM, self.epoch, rows)
        conn.confirm_history(identifier)

    def live(self, conn: ServerConnection, row: Row) -> None:
        for identifier in sorted(self.active):
            conn.send_rows(identifier, STREAM, self.epoch, [row])


def pump(
    server: ServerConnection,
    client: ClientConnection,
    app: App,
    now: float,
    refuse: frozenset[str] = frozenset(),
) -> list[object]:
    """Deliver frames both ways until both machines are quiet; return the client's events."""
    events: list[object] = []
    while True:
        app.handle(server, refuse=refuse)
        to_client = server.data_to_send()
        for frame in to_client:
            client.receive_text(frame, now)
        events.extend(client.events_received())
        to_server = client.data_to_send()
        for frame in to_server:
            server.receive_text(frame)
        if not to_client and not to_server:
            return events


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("subprotocol", [Subprotocol.IOTCABLE, Subprotocol.EXT])
def test_every_reading_arrives_once_in_order_or_is_reported_lost(
    subprotocol: Subprotocol, seed: int
) -> None:
    rng = random.Random(seed)
    push = rng.choice(["no", "no", "before", "after"])
    app = App(
        limit=rng.choice([3, 8, 30]),
        overlap=rng.choice([0, 0, 2]),
        push_after_reject=push == "after",
        push_before_reject=push == "before",
    )
    now = 1_700_000_000.0
    client = ClientConnection(subprotocol=subprotocol, backoff=Backoff(rng=rng))
    client.connection_opened(now)
    server = ServerConnection(subprotocol, "sid-0")
    server.welcome()
    identifier = client.subscribe(STREAM, topic="plant/+/+/env")
    events = pump(server, client, app, now)
    published: list[tuple[str, int]] = []
    gaps: list[GapSeen] = []
    held: list[str | None] = [None]

    def note(new_events: list[object]) -> list[object]:
        # A gap describes what the client held when it asked, before this exchange: rows
        # the server sends just before its reject_history must not count as held then.
        # (One exchange is one connection's pump, so its epoch changes at most once.)
        held_before = held[0]
        for event in new_events:
            if isinstance(event, RowsReceived) and event.rows:
                held[0] = event.epoch
            elif isinstance(event, GapReported):
                gaps.append(GapSeen(event, held_before, app.next_offset))
                if event.epoch_changed:
                    held[0] = event.epoch
        return new_events

    events = note(events)
    connected = True
    for step in range(150):
        now += 1.0
        action = rng.random()
        if action < 0.6:
            for _ in range(rng.randint(1, 4)):
                row = app.publish(now)
                published.append((app.epoch, row[0]))
                if connected:
                    app.live(server, row)
            if connected and rng.random() < 0.7:  # else the frames are still in flight
                events += note(pump(server, client, app, now))
        elif action < 0.8 and connected:
            server.data_to_send()  # frames in flight die with the socket
            if rng.random() < 0.2:
                server.disconnect(DisconnectReason.SERVER_RESTART, reconnect=True)
                events += note(pump(server, client, app, now))
                app.restart(now)
            client.connection_lost(now)
            connected = False
        elif not connected:
            client.connection_opened(now)
            resumed = client.resume_query().get("sid") is not None and identifier in app.active
            server = ServerConnection(subprotocol, f"sid-{step}")
            server.welcome([identifier] if resumed else ())
            if not resumed:
                app.active.clear()
            events += note(pump(server, client, app, now))
            connected = True
    if not connected:
        client.connection_opened(now)
        server = ServerConnection(subprotocol, "sid-last")
        server.welcome()
        app.active.clear()
    events += note(pump(server, client, app, now))

    received = [(e.epoch, row[0]) for e in events if isinstance(e, RowsReceived) for row in e.rows]
    assert len(received) == len(set(received)), "a reading arrived twice"
    for epoch in {epoch for epoch, _ in received}:
        offsets = [o for e, o in received if e == epoch]
        assert offsets == sorted(offsets), f"readings of {epoch} out of order"
    assert set(received) <= set(published)
    missing = set(published) - set(received)
    unreported = sorted(p for p in missing if not any(covers(g, p) for g in gaps))
    assert unreported == [], f"lost without a gap report: {unreported}"
    # One restart, at most one report of it; and a gap within an epoch ends after it starts.
    restarts = app.epoch_number - 1
    assert sum(seen.gap.epoch_changed for seen in gaps) <= restarts, gaps
    for seen in gaps:
        gap = seen.gap
        after, available = gap.after_offset, gap.available_from
        if not gap.epoch_changed and after is not None and available is not None:
            assert after < available, gap


@dataclass(frozen=True)
class GapSeen:
    """A GapReported event with what the test knew when it arrived."""

    gap: GapReported
    held_epoch: str | None  # the epoch of the last rows the client held before the gap
    published_until: int  # next offset of the gap's epoch when the gap arrived


def covers(seen: GapSeen, reading: tuple[str, int]) -> bool:
    """Whether a gap report accounts for a reading the client never got."""
    epoch, offset = reading
    gap = seen.gap
    if gap.epoch is None:
        return False
    if epoch == gap.epoch:
        lower = -1 if gap.epoch_changed or gap.after_offset is None else gap.after_offset
        upper = gap.available_from if gap.available_from is not None else seen.published_until
        return lower < offset < upper
    if _number(epoch) > _number(gap.epoch):
        return False
    if seen.held_epoch is None:
        return True  # the client held nothing: everything before is reported gone
    if epoch == seen.held_epoch:
        return gap.epoch_changed and gap.after_offset is not None and offset > gap.after_offset
    return gap.epoch_changed and _number(epoch) > _number(seen.held_epoch)


def _number(epoch: str) -> int:
    return int(epoch.removeprefix("e"))


def connect(subprotocol: Subprotocol) -> tuple[ServerConnection, ClientConnection, App]:
    server = ServerConnection(subprotocol, "sid-1")
    client = ClientConnection(subprotocol=subprotocol)
    client.connection_opened(0.0)
    server.welcome()
    return server, client, App(limit=10)


@pytest.mark.parametrize("subprotocol", list(Subprotocol))
def test_subscribe_publish_and_answer(subprotocol: Subprotocol) -> None:
    server, client, app = connect(subprotocol)
    identifier = client.subscribe("telemetry", topic="plant/#")
    refused = client.subscribe("secret")
    events = pump(server, client, app, 1.0, refuse=frozenset({"secret"}))
    assert [type(e).__name__ for e in events] == [
        "Welcomed",
        "SubscriptionConfirmed",
        "SubscriptionRejected",
    ]
    client.perform(identifier, "publish", {"topic": "plant/a/cmd", "payload": 1, "ref": "9"})
    row = app.publish(2.0)
    app.live(server, row)
    events = pump(server, client, app, 2.0)
    assert events == [
        RowsReceived(identifier, "telemetry", "e1", (row,), 0),
        Transmission(
            identifier,
            {"action": "publish_result", "topic": "plant/a/cmd", "payload": 1, "ref": "9"},
        ),
    ]
    assert client.subscriptions[refused].reason == "no channel 'secret'"


def test_a_rejected_subscription_is_not_retried_after_a_reconnect() -> None:
    server, client, app = connect(Subprotocol.IOTCABLE)
    identifier = client.subscribe("secret")
    events = pump(server, client, app, 0.0, refuse=frozenset({"secret"}))
    assert events[-1] == SubscriptionRejected(identifier, "no channel 'secret'")
    client.connection_lost(1.0)
    client.connection_opened(2.0)
    server = ServerConnection(Subprotocol.IOTCABLE, "sid-2")
    server.welcome()
    assert pump(server, client, app, 2.0) == [Welcomed("sid-2", False, ())]


def test_a_final_disconnect_ends_the_conversation() -> None:
    server, client, app = connect(Subprotocol.EXT)
    client.subscribe("telemetry")
    pump(server, client, app, 0.0)
    server.disconnect(DisconnectReason.TOKEN_EXPIRED, reconnect=False)
    events = pump(server, client, app, 1.0)
    assert events == [Disconnected("token_expired", False)]
    decision = client.connection_lost(1.0)
    assert (decision.reconnect, decision.reason) == (False, "token_expired")


def test_a_restart_reported_by_reject_history_is_one_gap_then_everything_kept() -> None:
    server, client, app = connect(Subprotocol.IOTCABLE)
    identifier = client.subscribe("telemetry")
    pump(server, client, app, 0.0)
    for t in range(3):
        app.live(server, app.publish(float(t)))
    pump(server, client, app, 3.0)
    client.connection_lost(4.0)
    app.restart(4.0)
    kept = [app.publish(5.0 + t) for t in range(4)]
    client.connection_opened(10.0)
    server = ServerConnection(Subprotocol.IOTCABLE, "sid-2")
    server.welcome()
    events = pump(server, client, app, 10.0)
    assert events == [
        Welcomed("sid-2", False, ()),
        SubscriptionConfirmed(identifier, {"format": "json"}),
        GapReported(identifier, "telemetry", "readings are gone; oldest kept: 0", True, 2, 0, "e2"),
        RowsReceived(identifier, "telemetry", "e2", tuple(kept), 0),
        HistoryConfirmed(identifier),
    ]


def test_a_restart_whose_kept_rows_come_before_the_reject_is_one_gap() -> None:
    # What the jupyter-iotcable server does: the rows it keeps, then reject_history.
    server, client, app = connect(Subprotocol.IOTCABLE)
    app.push_before_reject = True
    identifier = client.subscribe("telemetry")
    pump(server, client, app, 0.0)
    for t in range(3):
        app.live(server, app.publish(float(t)))
    pump(server, client, app, 3.0)
    client.connection_lost(4.0)
    app.restart(4.0)
    kept = [app.publish(5.0 + t) for t in range(4)]
    client.connection_opened(10.0)
    server = ServerConnection(Subprotocol.IOTCABLE, "sid-2")
    server.welcome()
    events = pump(server, client, app, 10.0)
    assert events == [
        Welcomed("sid-2", False, ()),
        SubscriptionConfirmed(identifier, {"format": "json"}),
        GapReported(
            identifier,
            "telemetry",
            "stream telemetry restarted (epoch e1 -> e2): "
            "readings after offset 2 of the old epoch may be missing",
            True,
            2,
            None,
            "e2",
        ),
        RowsReceived(identifier, "telemetry", "e2", tuple(kept), 0),
        # Asking again from available_from is harmless: those rows are held already.
        HistoryConfirmed(identifier),
    ]
