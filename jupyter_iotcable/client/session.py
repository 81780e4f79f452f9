"""The cable thread's state and dispatch, without I/O.

A ``ClientSession`` wraps the protocol machine (``ClientConnection``) with what the Python
client adds: which identifier on the wire serves which subscription (its ``Inbox``) or
publish, what waits for which answer, the broker's health as the server reports it, and
the cable's state. The transport (the only socket code) feeds it socket events and
frames and writes ``data_to_send()``; the public ``Cable`` hands it commands on the
cable's thread and waits on the ``concurrent.futures.Future`` each command returns, from
any thread. Everything here runs on one thread and never blocks, so tests drive it in
memory: frames in, frames and resolved futures out.

Every ``Inbox`` has its own identifier on the wire, so each gets exactly the history it
asked for (the machine drops rows per identifier it already holds: shared, a second
subscription's backfill would be swallowed by the first one's rows). A second
subscription to the same channel and topic adds an ``instance`` param to its identifier;
the server reads only ``channel`` and ``topic`` and ignores other params.

The server answers a publish only on a subscription of its channel: a publish uses one the
session has, or opens one on the publish topic until the answer is in. A history request
counts as answered once the machine has no history request of that subscription in
flight (its own follow-ups and catch-ups after a reconnect included), so a caller waits
for the whole backfill.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..protocol import (
    BrokerStatus,
    ClientConnection,
    Disconnected,
    GapReported,
    HistoryConfirmed,
    HistoryRequest,
    RowsReceived,
    ServerError,
    Subprotocol,
    SubscriptionConfirmed,
    Transmission,
    Welcomed,
    make_identifier,
)
from ..protocol import SubscriptionRejected as Rejected
from ..protocol.payloads import PayloadRefused, publish_bytes
from .codec import FRAME_CODEC
from .errors import (
    CableClosed,
    ConnectionFailed,
    InvalidPayload,
    IoTCableError,
    SubscriptionRejected,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..protocol import ClientEvent, ReconnectDecision
    from .inbox import Inbox

__all__ = ["BrokerReport", "CableState", "ClientSession", "PublishResult"]

log = logging.getLogger("jupyter_iotcable.client")

T = TypeVar("T")
CableState = Literal["connecting", "connected", "reconnecting", "closed"]


@dataclass(frozen=True)
class PublishResult:
    """The server's answer to a publish; truthy when it was accepted."""

    ok: bool
    topic: str
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class BrokerReport:
    """The server's link to its MQTT broker, as the server last reported it.

    ``state`` is ``connected``, ``disconnected`` or ``reconnecting``; ``since`` (unix
    seconds) is when this client heard it.
    """

    state: str
    detail: str
    since: float


@dataclass
class _Publish:
    topic: str
    payload: object
    answer: concurrent.futures.Future[PublishResult]
    ref: str | None = None
    """Set once sent: the server's ``publish_result`` names it."""


@dataclass
class _Ask:
    """A history request a caller waits on."""

    since: float | None
    answer: concurrent.futures.Future[None]
    sent: bool


@dataclass
class _Wire:
    """One identifier subscribed on the wire, and who waits on it.

    It belongs to one ``inbox``, or to none when it was opened only to publish; once
    neither an inbox nor a publish uses it, it is unsubscribed, so that no hidden
    subscription keeps streaming rows.
    """

    channel: str
    topic: str | None
    inbox: Inbox | None = None
    state: Literal["pending", "confirmed"] = "pending"
    meta: Mapping[str, Any] = field(default_factory=dict)
    subscribed: concurrent.futures.Future[None] | None = None
    """The subscribe's answer: resolved once confirmed (and its history answered)."""
    asks: list[_Ask] = field(default_factory=list)
    publishes: list[_Publish] = field(default_factory=list)


def _future() -> concurrent.futures.Future[Any]:
    return concurrent.futures.Future()


def _settle(
    future: concurrent.futures.Future[T],
    result: T | None = None,
    error: BaseException | None = None,
) -> None:
    """Resolve ``future`` unless it is done (a caller that timed out cancelled it)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by the waiting thread in between


class ClientSession:
    """The state of one cable on its thread (see the module doc).

    ``url`` names the server in messages. ``wake`` is called when there are frames to
    send (the transport flushes); tests leave it out and read ``data_to_send()``.
    ``clock`` gives unix seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        connection: ClientConnection | None = None,
        wake: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.connection = connection or ClientConnection(
            subprotocol=Subprotocol.IOTCABLE, codec=FRAME_CODEC
        )
        self.wake = wake or (lambda: None)
        self._clock = clock
        self.state: CableState = "connecting"
        self.sid: str | None = None
        self.broker: BrokerReport | None = None
        self.error: IoTCableError | None = None
        self.last_server_error: str | None = None
        self.ready: concurrent.futures.Future[None] = _future()
        """Resolved at the first welcome; fails if the first connection fails."""
        self._wires: dict[str, _Wire] = {}
        self._refs = itertools.count(1)

    # -- what the cable shows ----------------------------------------------------------------

    @property
    def inboxes(self) -> list[Inbox]:
        """The inboxes of the live subscriptions, in the order they were made."""
        return [wire.inbox for wire in self._wires.values() if wire.inbox is not None]

    @property
    def identifiers(self) -> list[str]:
        """The identifiers subscribed on the wire (subscriptions, and publishes waiting)."""
        return list(self._wires)

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def _closed_error(self) -> IoTCableError:
        return self.error or CableClosed(f"the cable to {self.url} is closed")

    # -- commands (the cable's thread) -------------------------------------------------------

    def subscribe(
        self, inbox: Inbox, since: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Subscribe ``inbox`` (with history from ``since``, unix seconds); answered once the
        server confirmed and, with ``since``, the backfill is in."""
        answer: concurrent.futures.Future[None] = _future()
        if self.closed:
            answer.set_exception(self._closed_error())
            inbox.ended("closed", None if self.error is None else str(self.error))
            return answer
        history = HistoryRequest(since=since) if since is not None else None
        identifier = self.connection.subscribe(
            inbox.channel, history=history, **self._free_params(inbox.channel, inbox.topic)
        )
        inbox.identifier = identifier
        wire = self._wires[identifier] = _Wire(inbox.channel, inbox.topic, inbox=inbox)
        wire.subscribed = answer
        if since is not None:
            wire.asks.append(_Ask(since, answer, sent=True))
        self.wake()
        return answer

    def history(self, inbox: Inbox, since: float) -> concurrent.futures.Future[None]:
        """Backfill ``inbox`` from ``since``; answered once the backfill is in."""
        answer: concurrent.futures.Future[None] = _future()
        wire = self._wires.get(inbox.identifier)
        if wire is None or wire.inbox is not inbox:
            error = (
                self._closed_error()
                if self.closed
                else CableClosed(
                    f"the subscription to {inbox.channel!r} has ended: subscribe again first"
                )
            )
            answer.set_exception(error)
            return answer
        ask = _Ask(since, answer, sent=False)
        wire.asks.append(ask)
        if wire.state == "confirmed":
            self._send_ask(inbox.identifier, ask)
        # else: sent when the server confirms (again, after a reconnect)
        return answer

    def unsubscribe(self, inbox: Inbox) -> None:
        """Stop ``inbox`` receiving; the frame keeps what it has. Idempotent."""
        if inbox.active:
            inbox.ended("unsubscribed")
        wire = self._wires.get(inbox.identifier)
        if wire is None or wire.inbox is not inbox:
            return
        wire.inbox = None
        cancelled = CableClosed(f"the subscription to {inbox.channel!r} was unsubscribed")
        for ask in wire.asks:
            _settle(ask.answer, error=cancelled)
        wire.asks.clear()
        if wire.subscribed is not None:
            _settle(wire.subscribed, error=cancelled)
        self._release_if_unused(inbox.identifier, wire)

    def publish(
        self, channel: str, topic: str, payload: object
    ) -> concurrent.futures.Future[PublishResult]:
        """Publish ``payload`` to ``topic`` through ``channel``: the server's answer, or
        ``InvalidPayload`` (the channel's format cannot carry it: nothing was sent)."""
        answer: concurrent.futures.Future[PublishResult] = _future()
        if self.closed:
            answer.set_exception(self._closed_error())
            return answer
        identifier, wire = self._wire_to_publish_on(channel, topic)
        request = _Publish(topic, payload, answer)
        wire.publishes.append(request)
        if wire.state == "confirmed":
            self._perform(identifier, wire, request)
        return answer

    def forget_publish(self, answer: concurrent.futures.Future[PublishResult]) -> None:
        """A caller gave up waiting: stop tracking that publish (its answer is ignored)."""
        for identifier, wire in list(self._wires.items()):
            if any(p.answer is answer for p in wire.publishes):
                wire.publishes = [p for p in wire.publishes if p.answer is not answer]
                self._release_if_unused(identifier, wire)

    def close(self, error: IoTCableError | None = None) -> None:
        """The cable is closed for good: everything waiting fails, every inbox ends."""
        if error is not None and self.error is None:
            self.error = error
        self.state = "closed"
        failure = self._closed_error()
        for wire in self._wires.values():
            if wire.inbox is not None:
                wire.inbox.ended("closed", None if self.error is None else str(self.error))
            self._fail_wire(wire, failure)
        self._wires.clear()
        _settle(self.ready, error=failure)

    # -- what the transport drives (the cable's thread) --------------------------------------

    def connection_opened(self, now: float) -> None:
        self.connection.connection_opened(now)

    def receive_text(self, text: str | bytes, now: float) -> None:
        """One frame from the server: update the machine, then act on its events."""
        self.connection.receive_text(text, now)
        self.handle(self.connection.events_received())

    def connection_lost(self, now: float) -> ReconnectDecision:
        decision = self.connection.connection_lost(now)
        lost = ConnectionFailed(
            f"the connection to {self.url} dropped before the server answered this publish: "
            "it may or may not have reached the broker; check, then publish again if needed"
        )
        for identifier, wire in list(self._wires.items()):
            wire.state = "pending"  # nothing may be performed until confirmed again
            for ask in wire.asks:
                ask.sent = False
            for request in [p for p in wire.publishes if p.ref is not None]:
                _settle(request.answer, error=lost)
                wire.publishes.remove(request)
            if wire.inbox is not None:
                wire.inbox.connection_lost()
            self._release_if_unused(identifier, wire)
        self.handle(self.connection.events_received())
        return decision

    def data_to_send(self) -> list[str]:
        return self.connection.data_to_send()

    def resume_query(self) -> dict[str, str]:
        return self.connection.resume_query()

    def is_stale(self, now: float) -> bool:
        return self.connection.is_stale(now)

    def transport_state(self, state: str) -> None:
        """``connecting``, ``reconnecting`` or ``closed``, as the transport goes."""
        if state == "closed":
            self.close()
        elif state in ("connecting", "reconnecting"):
            self.state = state  # type: ignore[assignment]

    def transport_failed(self, error: IoTCableError) -> None:
        """The connection failed for good (a first attempt, a refused token)."""
        if not self.ready.done():
            self.error = error
            _settle(self.ready, error=error)
        else:
            self.error = error
            log.warning("iotcable: %s", error)

    # -- events ------------------------------------------------------------------------------

    def handle(self, events: list[ClientEvent]) -> None:
        """Act on the machine's events (in order), then settle answered history requests."""
        touched: set[str] = set()
        for event in events:
            self._dispatch(event, touched)
        for identifier in touched:
            wire = self._wires.get(identifier)
            if wire is not None:
                self._settle_history(identifier, wire)

    def _dispatch(self, event: ClientEvent, touched: set[str]) -> None:
        if isinstance(event, RowsReceived):
            wire = self._wires.get(event.identifier)
            if wire is not None and wire.inbox is not None:
                backfill = self.connection.replaying(event.identifier)
                wire.inbox.receive(event.rows, event.dropped, backfill=backfill)
        elif isinstance(event, Welcomed):
            self.state = "connected"
            self.sid = event.sid or None
            _settle(self.ready)
        elif isinstance(event, SubscriptionConfirmed):
            self._confirmed(event.identifier, event.meta)
            touched.add(event.identifier)
        elif isinstance(event, Rejected):
            self._rejected(event.identifier, event.reason)
        elif isinstance(event, Transmission):
            self._transmission(event.identifier, event.message)
        elif isinstance(event, HistoryConfirmed):
            touched.add(event.identifier)
        elif isinstance(event, GapReported):
            wire = self._wires.get(event.identifier)
            if wire is not None and wire.inbox is not None:
                wire.inbox.gap(event)
            touched.add(event.identifier)
        elif isinstance(event, BrokerStatus):
            self.broker = BrokerReport(event.state, event.detail, self._clock())
        elif isinstance(event, ServerError):
            self.last_server_error = f"{event.code}: {event.message}"
            log.warning("iotcable: the server reported %s", self.last_server_error)
        elif isinstance(event, Disconnected):
            log.info("iotcable: disconnected by the server (%s)", event.reason)

    def _confirmed(self, identifier: str, meta: Mapping[str, object]) -> None:
        wire = self._wires.get(identifier)
        if wire is None:
            return
        wire.state = "confirmed"
        wire.meta = dict(meta)
        if wire.inbox is not None:
            wire.inbox.confirmed(wire.meta)
        for ask in wire.asks:
            if not ask.sent:
                if ask.answer is wire.subscribed:
                    ask.sent = True  # the machine's resubscribe asked again for it
                else:
                    self._send_ask(identifier, ask)
        for request in [p for p in wire.publishes if p.ref is None]:
            self._perform(identifier, wire, request)

    def _settle_history(self, identifier: str, wire: _Wire) -> None:
        """Answer the history requests that are answered: nothing in flight any more."""
        if wire.state != "confirmed" or self.connection.replaying(identifier):
            return
        for ask in [a for a in wire.asks if a.sent]:
            _settle(ask.answer)
            wire.asks.remove(ask)
        if wire.subscribed is not None and not any(a.answer is wire.subscribed for a in wire.asks):
            _settle(wire.subscribed)
            wire.subscribed = None

    def _rejected(self, identifier: str, reason: str) -> None:
        wire = self._wires.pop(identifier, None)
        if wire is None:
            return
        self.connection.unsubscribe(identifier)  # forget it (a rejected one sends nothing)
        if wire.inbox is not None:
            wire.inbox.ended("rejected", reason)
        for request in wire.publishes:
            _settle(request.answer, PublishResult(False, request.topic, reason))
        wire.publishes.clear()
        self._fail_wire(wire, SubscriptionRejected(wire.channel, wire.topic, reason))

    def _transmission(self, identifier: str, message: Mapping[str, object]) -> None:
        if message.get("action") != "publish_result":
            return
        wire = self._wires.get(identifier)
        ref = message.get("ref")
        if wire is None or ref is None:
            return
        for request in wire.publishes:
            if request.ref == str(ref):
                wire.publishes.remove(request)
                reason = message.get("reason")
                _settle(
                    request.answer,
                    PublishResult(
                        message.get("ok") is True,
                        str(message.get("topic") or request.topic),
                        reason if isinstance(reason, str) else None,
                    ),
                )
                self._release_if_unused(identifier, wire)
                return

    # -- wires -------------------------------------------------------------------------------

    def _free_params(self, channel: str, topic: str | None) -> dict[str, str]:
        """Identifier params naming a new subscription: an ``instance`` when the plain
        identifier of this channel and topic is taken (its server side ignores it)."""
        params = {} if topic is None else {"topic": topic}
        instance = 1
        while make_identifier(channel, **params) in self._wires:
            instance += 1
            params = {**({} if topic is None else {"topic": topic}), "instance": str(instance)}
        return params

    def _wire_to_publish_on(self, channel: str, topic: str) -> tuple[str, _Wire]:
        for identifier, wire in self._wires.items():
            if wire.channel == channel:
                return identifier, wire
        params = self._free_params(channel, topic)
        identifier = self.connection.subscribe(channel, history=None, **params)
        wire = self._wires[identifier] = _Wire(channel, topic)
        self.wake()
        return identifier, wire

    def _perform(self, identifier: str, wire: _Wire, request: _Publish) -> None:
        """Check the payload against the channel's format, then send it."""
        fmt = wire.meta.get("format")
        if isinstance(fmt, str):
            try:
                publish_bytes(fmt, request.payload)
            except PayloadRefused as exc:
                wire.publishes.remove(request)
                _settle(request.answer, error=InvalidPayload(f"channel {wire.channel!r} {exc}"))
                self._release_if_unused(identifier, wire)
                return
        request.ref = str(next(self._refs))
        self.connection.perform(
            identifier,
            "publish",
            {"topic": request.topic, "payload": request.payload, "ref": request.ref},
        )
        self.wake()

    def _send_ask(self, identifier: str, ask: _Ask) -> None:
        self.connection.request_history(identifier, since=ask.since)
        ask.sent = True
        self.wake()

    def _release_if_unused(self, identifier: str, wire: _Wire) -> None:
        """Unsubscribe ``identifier`` once no inbox and no publish uses it."""
        if wire.inbox is not None or wire.publishes or self._wires.get(identifier) is not wire:
            return
        del self._wires[identifier]
        # Also while reconnecting: the machine would otherwise subscribe it again.
        self.connection.unsubscribe(identifier)
        self.wake()

    def _fail_wire(self, wire: _Wire, error: BaseException) -> None:
        for ask in wire.asks:
            _settle(ask.answer, error=error)
        wire.asks.clear()
        if wire.subscribed is not None:
            _settle(wire.subscribed, error=error)
        for request in wire.publishes:
            _settle(request.answer, error=error)
        wire.publishes.clear()
