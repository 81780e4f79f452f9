"""The client side of a cable connection, without I/O, kept across reconnects.

The transport calls :meth:`ClientConnection.connection_opened` when a socket opens,
feeds every received frame to :meth:`~ClientConnection.receive_text`, writes
:meth:`~ClientConnection.data_to_send`, and calls
:meth:`~ClientConnection.connection_lost` when the socket closes, which says whether
and when to reconnect. The machine outlives its sockets: subscriptions and stream
positions are kept, so that after a reconnect it resubscribes (or, after a session
resume, asks for history) from the last positions, drops rows it already holds, and
reports as :class:`GapReported` events the losses the server tells it about.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeGuard

from .backoff import Backoff, ReconnectDecision
from .codec import JSON_CODEC
from .commands import HistoryCommand, MessageCommand, SubscribeCommand, UnsubscribeCommand
from .errors import LocalProtocolError, RemoteProtocolError, describe, excerpt
from .identifiers import ChannelRef, make_identifier
from .messages import (
    ErrorCode,
    HistoryRequest,
    MessageType,
    Row,
    StreamPosition,
    Subprotocol,
    decode_json,
    epoch_run,
    finite_float,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .codec import Codec

__all__ = [
    "BrokerStatus",
    "ClientConnection",
    "ClientEvent",
    "Disconnected",
    "GapReported",
    "HistoryConfirmed",
    "RowsReceived",
    "ServerError",
    "SubscriptionConfirmed",
    "SubscriptionRejected",
    "SubscriptionState",
    "SubscriptionStatus",
    "Transmission",
    "Welcomed",
]


@dataclass(frozen=True)
class Welcomed:
    """The server accepted the connection; ``sid`` is "" when the server gave none."""

    sid: str
    restored: bool
    restored_ids: tuple[str, ...]


@dataclass(frozen=True)
class SubscriptionConfirmed:
    """A subscription is live (also after a session resume restored it)."""

    identifier: str
    meta: Mapping[str, object]


@dataclass(frozen=True)
class SubscriptionRejected:
    identifier: str
    reason: str


@dataclass(frozen=True)
class RowsReceived:
    """New rows of a stream, duplicates already removed; ``dropped`` readings were
    conflated away by the server before these rows."""

    identifier: str
    stream_id: str
    epoch: str
    rows: tuple[Row, ...]
    dropped: int


@dataclass(frozen=True)
class Transmission:
    """A message for this subscription only (e.g. a ``publish_result``)."""

    identifier: str
    message: Mapping[str, object]


@dataclass(frozen=True)
class HistoryConfirmed:
    """All the requested history was delivered."""

    identifier: str


@dataclass(frozen=True)
class GapReported:
    """Readings were lost, as the server reported (a ``reject_history``) or as an epoch
    change shows; an offset that jumps is NOT a gap (narrower topics skip offsets).

    ``after_offset`` is the last offset held before the gap (in the old epoch when
    ``epoch_changed``; ``None`` when nothing was held), ``available_from`` the oldest
    offset the server still keeps, in ``epoch``: the stream's current epoch (``None``
    when the report is not about a stream). ``since`` is the time the answered history
    request asked from (``None`` when it asked from positions, or when the gap showed in
    rows): the gap then starts there, whatever the subscription held already.
    """

    identifier: str
    stream_id: str | None
    reason: str
    epoch_changed: bool
    after_offset: int | None
    available_from: int | None
    epoch: str | None = None
    since: float | None = None
    undecodable: bool = False
    """The gap is a frame of the stream this client could not decode (a foreign or older
    server, or a frame over the client's size cap), not a loss the server reported."""


@dataclass(frozen=True)
class Disconnected:
    """The server's last word on this connection."""

    reason: str
    reconnect: bool


@dataclass(frozen=True)
class ServerError:
    """An ``error`` frame, or a frame from the server this client could not understand
    (``malformed_frame``, ``unknown_message``)."""

    code: str
    message: str


@dataclass(frozen=True)
class BrokerStatus:
    """The health of the server's link to the MQTT broker."""

    state: str
    detail: str


ClientEvent = (
    Welcomed
    | SubscriptionConfirmed
    | SubscriptionRejected
    | RowsReceived
    | Transmission
    | HistoryConfirmed
    | GapReported
    | Disconnected
    | ServerError
    | BrokerStatus
)


class SubscriptionState(StrEnum):
    PENDING = "pending"
    """Wanted; waiting for the welcome or for the server's answer."""
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SubscriptionStatus:
    """A snapshot of one subscription, for callers to inspect."""

    identifier: str
    ref: ChannelRef
    state: SubscriptionState
    history: HistoryRequest | None
    """The history asked for when subscribing."""
    positions: Mapping[str, StreamPosition]
    meta: Mapping[str, object]
    reason: str | None
    """Why the server rejected it."""


@dataclass(frozen=True)
class _Asked:
    """A history request sent and not answered yet, with the positions held when it was
    sent: a gap it is rejected with starts there, even if the rows the server still keeps
    arrive before the reject and move the positions on."""

    request: HistoryRequest
    held: Mapping[str, StreamPosition]


@dataclass
class _Subscription:
    ref: ChannelRef
    history: HistoryRequest | None
    state: SubscriptionState = SubscriptionState.PENDING
    positions: dict[str, StreamPosition] = field(default_factory=dict)
    meta: Mapping[str, object] = field(default_factory=dict)
    reason: str | None = None
    # When the first confirm arrived (client clock): the backfill point after a
    # reconnect if no row came before the connection was lost.
    live_since: float | None = None
    # Whether the server heard of it on the current connection.
    sent: bool = False
    # History requests sent on this connection and not answered yet, oldest first.
    inflight: deque[_Asked] = field(default_factory=deque)
    # Lowest offset received per stream in the current epoch. Together with the last
    # offset it brackets what the client holds: rows above are new, rows below are a
    # backfill (``history`` by ``since`` on a live subscription), rows inside are
    # duplicates.
    floors: dict[str, int] = field(default_factory=dict)
    # Rows below the floor received while history answers are in flight, per stream, as
    # (lowest, highest): an answer comes in ascending chunks, so what it sent so far is
    # one range. It joins the held range (the floor drops to its lowest) once the answer
    # is complete; a connection lost mid-answer forgets it (the rest never came).
    backfill: dict[str, tuple[int, int]] = field(default_factory=dict)
    # A frame of this stream could not be decoded and history was asked again from the
    # offset held before it: (stream_id, that offset, why). Forgotten once the answer is
    # complete (the rows came), reported as a gap if the answer fails too or the
    # connection goes first. At most one: history is asked again only when none is in
    # flight.
    unread: tuple[str, int, str] | None = None

    def history_answered(self) -> None:
        """The oldest history request in flight is answered (confirmed or rejected)."""
        if self.inflight:
            self.inflight.popleft()
        if not self.inflight:
            self.unread = None  # answered without failing again: the rows came
        for stream_id, (lowest, _) in self.backfill.items():
            self.floors[stream_id] = min(self.floors.get(stream_id, lowest), lowest)
        self.backfill.clear()


class ClientConnection:
    """Protocol state of a client across its successive sockets.

    Every ``now`` argument is unix seconds (``time.time()``), not a monotonic clock: the
    time a subscription went live becomes the ``since`` of its catch-up history after a
    reconnect, and the server reads ``since`` as unix time."""

    def __init__(
        self,
        *,
        subprotocol: Subprotocol = Subprotocol.IOTCABLE,
        ping_interval: float = 3.0,
        backoff: Backoff | None = None,
        healthy_after: float | None = None,
        codec: Codec = JSON_CODEC,
    ) -> None:
        self.subprotocol = subprotocol
        self.ping_interval = ping_interval
        self.backoff = backoff if backoff is not None else Backoff()
        self.healthy_after = healthy_after if healthy_after is not None else 2 * ping_interval
        """Seconds a welcomed connection must last before its loss resets the backoff.

        A welcome alone proves little: a server that welcomes and then drops every
        connection must not be retried at the first, shortest delay forever. The default
        is the stale window (two ping intervals): a connection that outlived it carried
        traffic."""
        self.sid: str | None = None
        self.connected = False
        """Welcomed on the current socket."""
        self._codec = codec
        self._open = False
        self._welcomed_at: float | None = None
        self._last_received: float | None = None
        self._disconnect: Disconnected | None = None
        self._subs: dict[str, _Subscription] = {}
        self._events: list[ClientEvent] = []
        self._out: list[str] = []

    # -- state ---------------------------------------------------------------------------

    @property
    def subscriptions(self) -> Mapping[str, SubscriptionStatus]:
        """Every subscription asked for and not unsubscribed: identifier -> snapshot."""
        return MappingProxyType(
            {
                identifier: SubscriptionStatus(
                    identifier=identifier,
                    ref=sub.ref,
                    state=sub.state,
                    history=sub.history,
                    positions=MappingProxyType(dict(sub.positions)),
                    meta=sub.meta,
                    reason=sub.reason,
                )
                for identifier, sub in self._subs.items()
            }
        )

    def positions(self, identifier: str) -> Mapping[str, StreamPosition]:
        """The last position held in each stream of a subscription."""
        return MappingProxyType(dict(self._sub("positions", identifier).positions))

    def replaying(self, identifier: str) -> bool:
        """Whether a history request of this subscription awaits its answer.

        Rows received meanwhile are the answer (the server holds live rows back until it
        is complete), i.e. a backfill rather than new arrivals; the client counts only the
        latter in its rates. ``False`` for an identifier it does not know.
        """
        sub = self._subs.get(identifier)
        return sub is not None and bool(sub.inflight)

    def resume_query(self) -> dict[str, str]:
        """Query parameters for the reconnect URL: ``{"sid": ...}`` once welcomed."""
        return {"sid": self.sid} if self.sid else {}

    def is_stale(self, now: float) -> bool:
        """Nothing received for more than two ping intervals on an open socket."""
        if not self._open or self._last_received is None:
            return False
        return now - self._last_received > 2 * self.ping_interval

    def events_received(self) -> list[ClientEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    # -- socket lifecycle ----------------------------------------------------------------------

    def connection_opened(self, now: float) -> None:
        """A socket is open; subscriptions are sent once the server welcomes us."""
        if self._open:
            raise LocalProtocolError("connection_opened() twice without connection_lost()")
        self._open = True
        self.connected = False
        self._welcomed_at = None
        self._disconnect = None
        self._last_received = now

    def connection_lost(self, now: float) -> ReconnectDecision:
        """The socket closed: forget what belonged to it and decide about reconnecting.

        Subscriptions and positions are kept for the next connection. No reconnect after
        a ``disconnect`` that said ``reconnect: false``; otherwise wait the backoff delay,
        the shortest one again if this connection was welcomed and lasted
        ``healthy_after`` seconds.
        """
        if self._welcomed_at is not None and now - self._welcomed_at >= self.healthy_after:
            self.backoff.reset()
        self._open = False
        self.connected = False
        self._welcomed_at = None
        self._last_received = None
        self._out.clear()
        for identifier, sub in self._subs.items():
            if sub.unread is not None:
                # The answer that would have brought the undecodable frame's rows is lost.
                stream_id, after, why = sub.unread
                sub.unread = None
                self._report_undecodable(identifier, stream_id, sub, after, why, _LOST_BEFORE)
            sub.sent = False
            sub.inflight.clear()
            sub.backfill.clear()
            if sub.state is SubscriptionState.CONFIRMED:
                sub.state = SubscriptionState.PENDING
        said = self._disconnect
        self._disconnect = None
        if said is not None and not said.reconnect:
            return ReconnectDecision(reconnect=False, delay=0.0, reason=said.reason)
        reason = said.reason if said is not None else "connection_lost"
        return ReconnectDecision(reconnect=True, delay=self.backoff.next_delay(), reason=reason)

    # -- commands ----------------------------------------------------------------------------

    def subscribe(
        self, channel: str, *, history: HistoryRequest | None = None, **params: str
    ) -> str:
        """Subscribe (sent now if welcomed, else on the welcome); returns the identifier."""
        if history is not None and not self.subprotocol.extended:
            raise LocalProtocolError(
                f"history needs an extended subprotocol, not {self.subprotocol}"
            )
        identifier = make_identifier(channel, **params)
        existing = self._subs.get(identifier)
        if existing is not None and existing.state is not SubscriptionState.REJECTED:
            raise LocalProtocolError(f"already subscribed to {identifier}")
        sub = _Subscription(ref=ChannelRef(channel, params), history=history)
        self._subs[identifier] = sub
        if self.connected:
            self._send_subscribe(identifier, sub)
        return identifier

    def unsubscribe(self, identifier: str) -> None:
        """Stop a subscription; nothing more is reported for it."""
        sub = self._sub("unsubscribe", identifier)
        del self._subs[identifier]
        if sub.sent and sub.state is not SubscriptionState.REJECTED:
            self._send(UnsubscribeCommand(identifier).to_wire())

    def perform(self, identifier: str, action: str, data: Mapping[str, object]) -> None:
        """Run ``action`` on the server for a confirmed subscription (e.g. ``publish``)."""
        self._confirmed("perform", identifier)
        if "action" in data:
            raise LocalProtocolError('perform data must not hold "action": pass it as action')
        try:
            text = self._codec.dumps({"action": action, **data})
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"perform data cannot be encoded as JSON: {exc}") from exc
        self._send(MessageCommand(identifier, text).to_wire())

    def request_history(self, identifier: str, *, since: float | None = None) -> None:
        """Ask for readings after ``since`` (unix seconds), or after the last positions."""
        if not self.subprotocol.extended:
            raise LocalProtocolError(
                f"history needs an extended subprotocol, not {self.subprotocol}"
            )
        sub = self._confirmed("request_history", identifier)
        if since is not None:
            request = HistoryRequest(since=since)
        elif sub.positions:
            request = HistoryRequest(streams=sub.positions)
        else:
            raise LocalProtocolError(
                f"request_history({identifier!r}): no row received yet, so pass since"
            )
        self._send_history(identifier, sub, request)

    def _sub(self, method: str, identifier: str) -> _Subscription:
        sub = self._subs.get(identifier)
        if sub is None:
            raise LocalProtocolError(f"{method}({identifier!r}): no such subscription")
        return sub

    def _confirmed(self, method: str, identifier: str) -> _Subscription:
        sub = self._sub(method, identifier)
        if sub.state is not SubscriptionState.CONFIRMED:
            raise LocalProtocolError(
                f"{method}({identifier!r}): the subscription is {sub.state}, not confirmed"
            )
        return sub

    def _send_subscribe(self, identifier: str, sub: _Subscription) -> None:
        request = self._catch_up(sub)
        if request is not None:
            sub.inflight.append(_Asked(request, dict(sub.positions)))
        sub.state = SubscriptionState.PENDING
        sub.sent = True
        wire = request.to_wire() if request is not None else None
        self._send(SubscribeCommand(identifier, wire).to_wire())

    def _send_history(self, identifier: str, sub: _Subscription, request: HistoryRequest) -> None:
        sub.inflight.append(_Asked(request, dict(sub.positions)))
        self._send(HistoryCommand(identifier, request.to_wire()).to_wire())

    def _catch_up(self, sub: _Subscription) -> HistoryRequest | None:
        """The history that makes a (re)subscription lose nothing and repeat nothing."""
        if not self.subprotocol.extended:
            return None
        if sub.positions:
            return HistoryRequest(streams=sub.positions)
        if sub.history is not None:
            return sub.history
        if sub.live_since is not None:
            # Live before, but no row came: ask for what arrived since it went live.
            return HistoryRequest(since=sub.live_since)
        return None

    def _send(self, command: dict[str, object]) -> None:
        self._out.append(self._codec.dumps(command))

    # -- input -------------------------------------------------------------------------------

    def receive_text(self, text: str | bytes, now: float) -> None:
        """Process one frame from the server. Never raises on what the server sends:
        a frame it cannot understand becomes a :class:`ServerError` event."""
        if not self._open:
            raise LocalProtocolError("receive_text() before connection_opened()")
        self._last_received = now
        frame: object = None
        try:
            frame = decode_json(text, self._codec)
            if not isinstance(frame, dict):
                raise _malformed(f"a server frame must be a JSON object, got {describe(frame)}")
            self._dispatch(frame, now)
        except RemoteProtocolError as exc:
            found = _salvage(text, frame)
            if found is None:
                self._events.append(ServerError(ErrorCode.MALFORMED_FRAME, exc.message))
            else:
                self._undecodable(*found, exc.message)

    def _undecodable(
        self, identifier: str, stream_id: str | None, epoch: str | None, why: str
    ) -> None:
        """A data or batch frame of ``identifier`` that this client cannot decode.

        Its rows are a gap of the subscription, never a reason to drop anything else. When
        the stream's position is known (same epoch) and no history answer is in flight,
        history is asked again from that position: the server's answer may hold the rows
        in frames this client can read; the gap is reported only if it fails too (or the
        connection goes first). Asking is not repeated, so it cannot loop.
        """
        sub = self._subs.get(identifier)
        if sub is None:
            # Not ours (any more): nothing to attribute it to, a cable-level warning.
            self._events.append(ServerError(ErrorCode.MALFORMED_FRAME, why))
            return
        known = sub.positions.get(stream_id) if stream_id is not None else None
        if stream_id is None or epoch is None or known is None:
            after = known.offset if known is not None else None
            self._report_undecodable(identifier, stream_id, sub, after, why, "", epoch)
            return
        if known.epoch != epoch:
            # Undecodable rows of a new epoch: one gap, and the stream goes on in that
            # epoch (its change is not reported twice).
            self._report_undecodable(identifier, stream_id, sub, known.offset, why, "", epoch)
            _restart_stream(sub, stream_id, StreamPosition(epoch, -1))
            return
        if (
            self.subprotocol.extended
            and sub.state is SubscriptionState.CONFIRMED
            and not sub.inflight
        ):
            sub.unread = (stream_id, known.offset, why)
            # Rows after the frame may arrive before the answer: they start the held range
            # afresh, so that the answer's rows before them count as a backfill.
            sub.floors.pop(stream_id, None)
            self._send_history(identifier, sub, HistoryRequest(streams={stream_id: known}))
            return
        after, again = known.offset, ""
        if sub.unread is not None and sub.unread[0] == stream_id:
            _, after, _ = sub.unread
            sub.unread, again = None, _FAILED_AGAIN
        self._report_undecodable(identifier, stream_id, sub, after, why, again)

    def _report_undecodable(
        self,
        identifier: str,
        stream_id: str | None,
        sub: _Subscription,
        after: int | None,
        why: str,
        again: str,
        epoch: str | None = None,
    ) -> None:
        known = sub.positions.get(stream_id) if stream_id is not None else None
        if epoch is None and known is not None:
            epoch = known.epoch
        reason = _undecodable_reason(stream_id, after, why, again)
        self._events.append(
            GapReported(identifier, stream_id, reason, False, after, None, epoch, None, True)
        )

    def _dispatch(self, frame: dict[str, object], now: float) -> None:
        kind = frame.get("type")
        if kind is None:
            self._on_identified(frame)
        elif kind == MessageType.WELCOME:
            self._on_welcome(frame, now)
        elif kind == MessageType.PING:
            pass  # only keeps the connection fresh, which any frame does
        elif kind == MessageType.CONFIRM_SUBSCRIPTION:
            self._on_confirm(frame, now)
        elif kind == MessageType.REJECT_SUBSCRIPTION:
            self._on_reject(frame)
        elif kind == MessageType.CONFIRM_HISTORY:
            identifier = _str(frame, "identifier")
            sub = self._subs.get(identifier)
            if sub is not None:
                sub.history_answered()
                self._events.append(HistoryConfirmed(identifier))
        elif kind == MessageType.REJECT_HISTORY:
            self._on_reject_history(frame)
        elif kind == MessageType.DISCONNECT:
            reconnect = frame.get("reconnect", True)
            if not isinstance(reconnect, bool):
                raise _malformed(
                    f'disconnect "reconnect" must be true or false, got {describe(reconnect)}'
                )
            said = Disconnected(_str(frame, "reason"), reconnect)
            self._disconnect = said
            self.connected = False
            self._events.append(said)
        elif kind == MessageType.BROKER:
            self._events.append(BrokerStatus(_str(frame, "state"), _str(frame, "detail")))
        elif kind == MessageType.ERROR:
            self._events.append(ServerError(_str(frame, "reason"), _str(frame, "message")))
        elif isinstance(kind, str):
            self._events.append(
                ServerError(ErrorCode.UNKNOWN_MESSAGE, f'unknown message type "{excerpt(kind)}"')
            )
        else:
            raise _malformed(f'"type" must be a string, got {describe(kind)}')

    def _on_welcome(self, frame: dict[str, object], now: float) -> None:
        if self.connected:
            raise _malformed("a second welcome on one connection")
        sid = frame.get("sid", "")
        if not isinstance(sid, str):
            raise _malformed(f'welcome "sid" must be a string, got {describe(sid)}')
        restored = frame.get("restored") is True
        restored_ids: tuple[str, ...] = ()
        if restored:
            raw_ids = frame.get("restored_ids", [])
            if not isinstance(raw_ids, list) or not all(isinstance(i, str) for i in raw_ids):
                raise _malformed(
                    f'welcome "restored_ids" must be an array of strings, got {describe(raw_ids)}'
                )
            restored_ids = tuple(raw_ids)
        self.sid = sid or None
        self.connected = True
        self._welcomed_at = now
        self._events.append(Welcomed(sid, restored, restored_ids))
        kept = set(restored_ids)
        for identifier, sub in self._subs.items():
            if sub.state is SubscriptionState.REJECTED:
                continue
            if identifier in kept and sub.live_since is not None:
                # The server kept it: catch up on what the outage cost, no resubscribe.
                sub.state = SubscriptionState.CONFIRMED
                sub.sent = True
                self._events.append(SubscriptionConfirmed(identifier, sub.meta))
                request = self._catch_up(sub)
                if request is not None:
                    self._send_history(identifier, sub, request)
            else:
                # Restored but never confirmed to us: subscribe again to get the meta;
                # the server confirms a duplicate without bothering its application.
                self._send_subscribe(identifier, sub)
        for identifier in restored_ids:
            if identifier not in self._subs:
                self._send(UnsubscribeCommand(identifier).to_wire())

    def _on_confirm(self, frame: dict[str, object], now: float) -> None:
        identifier = _str(frame, "identifier")
        meta = frame.get("meta", {})
        if not isinstance(meta, dict):
            raise _malformed(f'confirm_subscription "meta" must be an object, got {describe(meta)}')
        sub = self._subs.get(identifier)
        # A confirm for something no longer pending answers a subscribe we have since
        # withdrawn (or duplicated): nothing to do.
        if sub is None or sub.state is not SubscriptionState.PENDING:
            return
        sub.state = SubscriptionState.CONFIRMED
        sub.meta = MappingProxyType(meta)
        if sub.live_since is None:
            sub.live_since = now
        self._events.append(SubscriptionConfirmed(identifier, sub.meta))

    def _on_reject(self, frame: dict[str, object]) -> None:
        identifier = _str(frame, "identifier")
        reason = frame.get("reason", "the server rejected the subscription without a reason")
        if not isinstance(reason, str):
            raise _malformed(
                f'reject_subscription "reason" must be a string, got {describe(reason)}'
            )
        sub = self._subs.get(identifier)
        if sub is None or sub.state is not SubscriptionState.PENDING:
            return
        sub.state = SubscriptionState.REJECTED
        sub.reason = reason
        sub.inflight.clear()
        sub.unread = None
        self._events.append(SubscriptionRejected(identifier, reason))

    def _on_reject_history(self, frame: dict[str, object]) -> None:
        identifier = _str(frame, "identifier")
        reason = _str(frame, "reason")
        stream_id = _opt_str(frame, "stream_id")
        epoch = _str(frame, "epoch") if stream_id is not None else None
        available_from = _opt_int(frame, "available_from")
        sub = self._subs.get(identifier)
        if sub is None:
            return
        asked = sub.inflight[0] if sub.inflight else None
        sub.history_answered()
        since = asked.request.since if asked is not None else None
        if stream_id is None or epoch is None:
            self._events.append(
                GapReported(identifier, None, reason, False, None, None, None, since)
            )
            return
        held = _gap_start(sub, asked, stream_id)
        self._report_rejected(
            identifier, sub, stream_id, epoch, held, reason, available_from, since
        )
        asked_from = asked.request.streams.get(stream_id) if asked is not None else None
        if available_from is None or sub.state is not SubscriptionState.CONFIRMED:
            return
        wanted = StreamPosition(epoch, available_from - 1)
        if (
            asked_from is not None
            and asked_from.epoch == epoch
            and asked_from.offset >= wanted.offset
        ):
            return  # that was already the request: asking again would loop
        self._send_history(identifier, sub, HistoryRequest(streams={stream_id: wanted}))

    def _report_rejected(
        self,
        identifier: str,
        sub: _Subscription,
        stream_id: str,
        epoch: str,
        held: StreamPosition | None,
        reason: str,
        available_from: int | None,
        since: float | None,
    ) -> None:
        """Record the gap a ``reject_history`` about a stream reports, once per restart.

        ``held`` is the position the gap starts after (``None``: nothing was held).
        """
        known = sub.positions.get(stream_id)
        epoch_changed = held is not None and held.epoch != epoch
        if epoch_changed and known is not None and known.epoch == epoch:
            # Rows of the new epoch came first (the server sends what it keeps, then the
            # reject) and _accept_rows has reported this restart: one restart, one gap.
            return
        after_offset = held.offset if held is not None else None
        self._events.append(
            GapReported(
                identifier,
                stream_id,
                reason,
                epoch_changed,
                after_offset,
                available_from,
                epoch,
                since,
            )
        )
        if epoch_changed:
            # What follows comes from the new epoch; do not report its change twice.
            start = available_from - 1 if available_from is not None else -1
            _restart_stream(sub, stream_id, StreamPosition(epoch, start))

    def _on_identified(self, frame: dict[str, object]) -> None:
        """A frame without ``type``: a batch, a data frame or a transmission."""
        identifier = _str(frame, "identifier")
        if "batch" in frame:
            stream_id, epoch, dropped = _stream_fields(frame)
            rows = _batch_rows(frame.get("batch"))
        elif "offset" in frame or "stream_id" in frame:
            stream_id, epoch, dropped = _stream_fields(frame)
            rows = (_data_row(frame),)
        else:
            message = frame.get("message")
            if not isinstance(message, dict):
                raise _malformed(
                    f'a transmission "message" must be an object, got {describe(message)}'
                )
            if identifier in self._subs:
                self._events.append(Transmission(identifier, MappingProxyType(message)))
            return
        sub = self._subs.get(identifier)
        if sub is not None:  # rows still in flight after an unsubscribe are dropped
            self._accept_rows(identifier, sub, stream_id, epoch, rows, dropped)

    def _accept_rows(
        self,
        identifier: str,
        sub: _Subscription,
        stream_id: str,
        epoch: str,
        rows: tuple[Row, ...],
        dropped: int,
    ) -> None:
        known = sub.positions.get(stream_id)
        if known is not None and known.epoch != epoch:
            self._events.append(
                GapReported(
                    identifier,
                    stream_id,
                    _epoch_change_reason(stream_id, known, epoch),
                    True,
                    known.offset,
                    None,
                    epoch,
                )
            )
            known = StreamPosition(epoch, -1)
            _restart_stream(sub, stream_id, known)
        if known is not None:
            rows = _new_rows(sub, stream_id, known.offset, rows)
        if rows:
            last = max(known.offset if known is not None else rows[-1][0], rows[-1][0])
            sub.positions[stream_id] = StreamPosition(epoch, last)
            _hold(sub, stream_id, rows)
        if rows or dropped:
            self._events.append(RowsReceived(identifier, stream_id, epoch, rows, dropped))


def _epoch_change_reason(stream_id: str, known: StreamPosition, epoch: str) -> str:
    if epoch_run(known.epoch) == epoch_run(epoch):
        return (
            f"stream {stream_id} lost continuity (epoch {known.epoch} -> {epoch}): the "
            "server's link to the MQTT broker came back without its session, readings "
            f"after offset {known.offset} until the first of the new epoch are missing"
        )
    return (
        f"stream {stream_id} restarted (epoch {known.epoch} -> {epoch}): "
        f"readings after offset {known.offset} of the old epoch may be missing"
    )


_FAILED_AGAIN = ", nor when asked again from history"
_LOST_BEFORE = ", and the connection was lost before history sent it again"


def _undecodable_reason(stream_id: str | None, after: int | None, why: str, again: str) -> str:
    where = f"stream {stream_id}" if stream_id is not None else "a stream"
    readings = f"its readings after offset {after}" if after is not None else "its readings"
    return (
        f"a frame of {where} could not be decoded by this client ({why}){again}: "
        f"{readings} up to the next one received are missing"
    )


def continuity_lost(event: GapReported) -> bool:
    """The gap is readings the server lost upstream (its broker session), not a restart:
    the new epoch continues a server run (``RUN.N``, see :func:`.messages.epoch_run`)."""
    return event.epoch_changed and event.epoch is not None and epoch_run(event.epoch) != event.epoch


def _new_rows(
    sub: _Subscription, stream_id: str, last: int, rows: tuple[Row, ...]
) -> tuple[Row, ...]:
    """The rows not held yet: above the last offset, or below the floor and outside what
    the history answers in flight have sent so far."""
    if not rows or rows[0][0] > last:
        return rows  # offsets increase within a frame: all new (the live case)
    floor = sub.floors.get(stream_id, last + 1)
    low, high = sub.backfill.get(stream_id, (0, -1))
    return tuple(
        row for row in rows if row[0] > last or (row[0] < floor and not low <= row[0] <= high)
    )


def _hold(sub: _Subscription, stream_id: str, rows: tuple[Row, ...]) -> None:
    """Widen what the subscription holds by ``rows`` (already filtered by ``_new_rows``)."""
    lowest = rows[0][0]  # a frame's offsets strictly increase
    floor = sub.floors.get(stream_id)
    if floor is None or not sub.inflight:
        sub.floors[stream_id] = lowest if floor is None else min(floor, lowest)
        return
    below = [row[0] for row in rows if row[0] < floor]
    if below:
        low, high = sub.backfill.get(stream_id, (min(below), max(below)))
        sub.backfill[stream_id] = (min(low, *below), max(high, *below))


def _gap_start(sub: _Subscription, asked: _Asked | None, stream_id: str) -> StreamPosition | None:
    """Where the gap a ``reject_history`` reports starts (``None``: nothing was held).

    After the position the request asked from, else after what was held when it was
    sent: rows the server sends just before its reject may have moved the position since.
    """
    if asked is None:  # a reject nobody asked for: all we know is the position now
        return sub.positions.get(stream_id)
    asked_from = asked.request.streams.get(stream_id)
    return asked_from if asked_from is not None else asked.held.get(stream_id)


def _restart_stream(sub: _Subscription, stream_id: str, position: StreamPosition) -> None:
    """Hold ``position`` of a new epoch, and nothing of the old one: offsets start again,
    so the old epoch's lowest offset must not make new rows look like duplicates."""
    sub.positions[stream_id] = position
    sub.floors.pop(stream_id, None)
    sub.backfill.pop(stream_id, None)


# -- undecodable frames -------------------------------------------------------------------------

_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
# How the server writes a data or batch frame (protocol/rows.py): the identifier first,
# then the rows ("message" or "batch"), then stream and epoch (and a data frame's offset,
# and "dropped") last. Only the ends of the text are searched: the middle may be huge.
_FRAME_HEAD = re.compile(r'\{"identifier":(' + _JSON_STRING + r'),"(?:batch|message)":')
_FRAME_TAIL = re.compile(
    r',"stream_id":(' + _JSON_STRING + r'),"epoch":(' + _JSON_STRING + r")"
    r'(?:,"offset":-?\d+)?(?:,"dropped":\d+)?\}\Z'
)
_SALVAGE_CHARS = 4096


def _salvage(text: str | bytes, frame: object) -> tuple[str, str | None, str | None] | None:
    """The identifier, stream and epoch of a data or batch frame that could not be decoded,
    when they can still be read: from the decoded object, else from the text's two ends.
    ``None`` for any other frame (its identifier is unknown, or it carries no rows)."""
    if isinstance(frame, dict):
        if frame.get("type") is not None or not (
            "batch" in frame or "offset" in frame or "stream_id" in frame
        ):
            return None
        identifier, stream_id, epoch = (frame.get(k) for k in ("identifier", "stream_id", "epoch"))
        if not isinstance(identifier, str):
            return None
        return (
            identifier,
            stream_id if isinstance(stream_id, str) else None,
            epoch if isinstance(epoch, str) else None,
        )
    if frame is not None:
        return None
    if isinstance(text, bytes):
        head = text[:_SALVAGE_CHARS].decode("utf-8", "replace")
        tail = text[-_SALVAGE_CHARS:].decode("utf-8", "replace")
    else:
        head, tail = text[:_SALVAGE_CHARS], text[-_SALVAGE_CHARS:]
    start = _FRAME_HEAD.match(head)
    end = _FRAME_TAIL.search(tail)
    try:
        identifier = json.loads(start.group(1)) if start is not None else None
        names = (json.loads(end.group(1)), json.loads(end.group(2))) if end else (None, None)
    except ValueError:
        return None
    if not isinstance(identifier, str):
        return None
    return identifier, names[0], names[1]


# -- field checks: each raises RemoteProtocolError("malformed_frame") -------------------------


def _malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED_FRAME, message)


def _what(frame: Mapping[str, object]) -> str:
    kind = frame.get("type")
    if isinstance(kind, str):
        return f"{kind} frame"
    if "batch" in frame:
        return "batch frame"
    if "offset" in frame or "stream_id" in frame:
        return "data frame"
    return "frame"


def _str(frame: Mapping[str, object], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str):
        raise _malformed(f'{_what(frame)} "{key}" must be a string, got {describe(value)}')
    return value


def _opt_str(frame: Mapping[str, object], key: str) -> str | None:
    return None if frame.get(key) is None else _str(frame, key)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_int(frame: Mapping[str, object], key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if not _is_int(value):
        raise _malformed(f'{_what(frame)} "{key}" must be an integer, got {describe(value)}')
    return value


def _stream_fields(frame: Mapping[str, object]) -> tuple[str, str, int]:
    dropped = _opt_int(frame, "dropped") or 0
    if dropped < 0:
        raise _malformed(f'"dropped" must be >= 0, got {dropped}')
    return _str(frame, "stream_id"), _str(frame, "epoch"), dropped


def _data_row(frame: Mapping[str, object]) -> Row:
    offset = frame.get("offset")
    if not _is_int(offset):
        raise _malformed(f'data frame "offset" must be an integer, got {describe(offset)}')
    message = frame.get("message")
    if not isinstance(message, dict):
        raise _malformed(f'data frame "message" must be an object, got {describe(message)}')
    time = message.get("time")
    seconds = finite_float(time)
    if seconds is None:
        raise _malformed(f'data frame "message.time" must be unix seconds, got {describe(time)}')
    topic = message.get("topic")
    if not isinstance(topic, str):
        raise _malformed(f'data frame "message.topic" must be a string, got {describe(topic)}')
    if "payload" not in message:
        raise _malformed('data frame "message" needs a "payload"')
    error = message.get("error")
    if error is not None and not isinstance(error, str):
        raise _malformed(f'data frame "message.error" must be a string, got {describe(error)}')
    return (offset, seconds, topic, message["payload"], error)


def _batch_rows(batch: object) -> tuple[Row, ...]:
    if not isinstance(batch, list):
        raise _malformed(f'"batch" must be an array of rows, got {describe(batch)}')
    rows: list[Row] = []
    append = rows.append
    previous = -1 << 64  # lower than any offset
    for index, raw in enumerate(batch):
        # The common row first: checked with exact types, without a call per field.
        if type(raw) is list and len(raw) == 4:
            offset, time, topic, payload = raw
            if (
                type(offset) is int
                and type(time) is float
                and time - time == 0.0  # finite: NaN and infinities give NaN
                and type(topic) is str
                and offset > previous
            ):
                append((offset, time, topic, payload, None))
                previous = offset
                continue
        row = _batch_row(index, raw)
        if row[0] <= previous:
            raise _malformed(
                f"batch offsets must strictly increase: {row[0]} after {previous} (row {index})"
            )
        append(row)
        previous = row[0]
    return tuple(rows)


def _batch_row(index: int, raw: object) -> Row:
    shape = "[offset, time, topic, payload] or [offset, time, topic, payload, error]"
    if not isinstance(raw, list) or len(raw) not in (4, 5):
        raise _malformed(f"batch row {index} must be {shape}, got {describe(raw)}")
    offset, time, topic, payload = raw[:4]
    error = raw[4] if len(raw) == 5 else None
    if not _is_int(offset):
        raise _malformed(f"batch row {index}: offset must be an integer, got {describe(offset)}")
    seconds = finite_float(time)
    if seconds is None:
        raise _malformed(f"batch row {index}: time must be unix seconds, got {describe(time)}")
    if not isinstance(topic, str):
        raise _malformed(f"batch row {index}: topic must be a string, got {describe(topic)}")
    if error is not None and not isinstance(error, str):
        raise _malformed(f"batch row {index}: error must be a string, got {describe(error)}")
    return (offset, seconds, topic, payload, error)
