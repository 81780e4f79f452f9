"""One client connection of the channel server, without I/O: grants, history, flush, policy.

A :class:`CableSession` is to :mod:`.websocket` what python-websockets' ``Protocol`` is to
its asyncio layer: it holds the state of one connection and makes every decision, and the
I/O layer only moves bytes and time in and out. It is driven by

- :meth:`~CableSession.receive_text`: a frame the client sent (then the I/O layer performs
  the publishes it asks for, :meth:`~CableSession.take_publishes`, and reports each
  outcome with :meth:`~CableSession.published`);
- :meth:`~CableSession.written`: the socket took bytes handed out earlier (what gathered
  meanwhile goes now);
- :meth:`~CableSession.advance`: the wake-up the session asked for through
  :meth:`Transport.wake` (at once, or when time passed): send what is due, release resume
  holds, end a ``too_slow``;
- the engine: rows pushed into the session's :class:`~jupyter_iotcable.hub.Outbox` by the
  hub, pings, broker events, shutdown;

and the I/O layer writes :meth:`~CableSession.data_to_send`, then closes the socket when
:attr:`~CableSession.close_code` is set, or drops it when :attr:`~CableSession.drop` is.

When rows go out (DESIGN §10): as soon as the socket is free, never on a timer. A row
queued while nothing is in flight is sent at once (the transport's next turn of the event
loop, so that a burst of readings routed in one turn leaves together); while a write is
pending, rows gather in the outbox and leave together when :meth:`~CableSession.written`
says the socket took everything (one ``batch`` frame of up to ``batch_max`` rows per
subscription with ``iotcable-v1-json``). Latency at low load is a bare server's; batching
comes from load, not from a delay.

Memory per connection stays bounded whatever the client does:

- live rows wait in the outbox (bounded; the channel's policy applies when it is full)
  while the socket has not taken what was written;
- a history answer is a cursor over the ring (:class:`~jupyter_iotcable.hub.Replay`),
  sent in chunks under the same back-pressure, one at a time per subscription;
- a client that does not read is not read either: the I/O layer reads the next frame only
  once :attr:`~CableSession.backlogged` is false;
- on overflow under the ``disconnect`` policy no more data is queued; the ``too_slow``
  frame goes out once the client has read what was already written (or the socket is
  dropped after ``too_slow_grace``).

Who may do what is asked of an :class:`~.access.Access` at every decision. Nothing here
imports tornado or jupyter_server (the hub service of issue 13 runs the same sessions).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..hub import Entry, Outbox, Subscriber, utf8_len
from ..protocol import (
    ChannelRef,
    DisconnectReason,
    HistoryRequest,
    HistoryRequested,
    PerformRequested,
    ServerConnection,
    ServerEvent,
    Subprotocol,
    SubscribeRequested,
    UnsubscribeRequested,
)
from ..topics import TopicError, matches, validate_filter
from . import metrics
from .codec import ORJSON_CODEC
from .limits import TokenBucket

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..protocol import BrokerState
    from .access import Access
    from .config import ChannelConfig
    from .engine import CableEngine

__all__ = ["MAX_WAITING_HISTORY", "CableSession", "PublishRequest", "Transport"]

#: History requests a subscription may have waiting behind the one being answered;
#: more are refused with ``reject_history`` (each answer can be a whole ring).
MAX_WAITING_HISTORY = 4


class Transport(Protocol):
    """What a session needs from its I/O layer."""

    def wake(self, delay: float) -> None:
        """Call :meth:`CableSession.advance` within ``delay`` seconds, then write
        :meth:`CableSession.data_to_send` (an earlier wake-up wins)."""

    # Optional: ``keepalive(now)``, called on the engine's heartbeat (every
    # ``ping_interval``) for the transport's own liveness check (websocket ping/pong).


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """A publish the I/O layer performs (it awaits the broker), then reports."""

    identifier: str
    channel: ChannelConfig
    topic: object
    payload: object
    ref: object


@dataclass(slots=True)
class Grant:
    """One confirmed identifier on this connection and what it may do."""

    ref: ChannelRef
    channel: ChannelConfig
    can_read: bool
    can_write: bool
    sub: Subscriber | None  # None when the user may write but not read
    # History requests that came while one was being answered, answered in turn
    # (created on the first one: most subscriptions never have any).
    waiting: deque[HistoryRequest] | None = None


class CableSession:
    """The state and decisions of one client connection (see the module docstring)."""

    def __init__(
        self,
        engine: CableEngine,
        access: Access,
        subprotocol: Subprotocol,
        sid: str,
        transport: Transport,
        now: float,
    ) -> None:
        settings = engine.settings
        self.engine = engine
        self.access = access
        self.sid = sid
        self.transport = transport
        self.conn = ServerConnection(
            subprotocol, sid, max_subscriptions=settings.max_subscriptions, codec=ORJSON_CODEC
        )
        self.outbox = Outbox(
            settings.outbox_bytes, wake=self._rows_queued, pressure=engine.hub.pressure
        )
        self.bucket = TokenBucket(settings.publish_rate, settings.publish_burst, now)
        self.grants: dict[str, Grant] = {}
        # Identifiers whose history is being sent (a dict: an empty one is a third of an
        # empty set, and most connections never ask for history).
        self.replaying: dict[str, None] = {}
        self.closing = False  # no more data or answers: saying goodbye, or closed
        self.closed = False
        #: Set when the socket must be closed (after writing what is to send).
        self.close_code: int | None = None
        self.close_reason = ""
        #: Set when the socket must be dropped without a goodbye.
        self.drop = False
        self._out: list[str | bytes] = []
        self._publishes: list[PublishRequest] = []
        self._holds: dict[Subscriber, float] = {}  # resumed subscriptions: release time
        self._goodbye_at: float | None = None  # too_slow: drop the socket at this time
        self._woken = False  # an immediate advance() was asked of the transport
        # The transport's own liveness check (websocket ping/pong), on the engine's beat.
        self._keepalive: Callable[[float], None] | None = getattr(transport, "keepalive", None)

    # -- opening ------------------------------------------------------------------------

    def open(self, now: float, resume: str | None = None) -> None:
        """Welcome the client (restoring the session ``resume`` names, if it can) and tell
        it how the broker is doing."""
        restored = self._restore(resume, now) if resume else {}
        self.conn.welcome(restored)
        health = self.engine.health
        self.conn.broker_event(health.state, health.detail)
        self.engine.register(self)
        self._wake(0)

    def _restore(self, sid: str, now: float) -> dict[str, ChannelRef]:
        """Subscribers of an earlier connection of this user, still allowed."""
        if not self.conn.subprotocol.extended:
            return {}
        refs = self.engine.take_session(sid, self.access.identity.username)
        restored: dict[str, ChannelRef] = {}
        for identifier, ref in (refs or {}).items():
            channel = self.engine.channels.get(ref.channel)
            if channel is None:
                continue
            can_read = self.access.can_read(channel) is None
            can_write = self.access.can_write(channel) is None
            if not (can_read or can_write):
                continue
            grant = self._grant(identifier, ref, channel, can_read, can_write)
            if grant.sub is not None:
                # Live rows wait until the client says where it is (its history request)
                # so that what it missed comes first; not forever.
                grant.sub.held = True
                self._holds[grant.sub] = now + self.engine.settings.resume_hold
                self._wake(self.engine.settings.resume_hold)
            restored[identifier] = ref
        return restored

    # -- input --------------------------------------------------------------------------

    def receive_text(self, text: str | bytes, now: float) -> None:
        """Handle one frame from the client; answers go to :meth:`data_to_send`."""
        if self.closing:
            return
        self.conn.receive_text(text)
        # Handling an event may queue more (a confirm releases the history a pending
        # duplicate subscribe carried): handle until the machine has nothing left.
        while events := self.conn.events_received():
            for event in events:
                self._handle(event, now)

    def take_publishes(self) -> list[PublishRequest]:
        """Publishes to perform, in order; report each with :meth:`published`."""
        publishes, self._publishes = self._publishes, []
        return publishes

    def published(self, request: PublishRequest, refused: str | None) -> None:
        """The outcome of a publish: ``refused`` says why it was not, else it was."""
        reply: dict[str, object] = {
            "action": "publish_result",
            "ref": request.ref if isinstance(request.ref, str | int) else None,
            "topic": request.topic if isinstance(request.topic, str) else None,
        }
        if refused is None:
            reply["ok"] = True
        else:
            reply.update(ok=False, reason=refused)
        if not self.closing:
            self.conn.transmit(request.identifier, reply)

    def written(self, nbytes: int, now: float) -> None:
        """The socket took ``nbytes`` of what :meth:`data_to_send` handed out."""
        outbox = self.outbox
        outbox.flushed(nbytes)
        if self._goodbye_at is not None:
            if outbox.in_flight == 0:
                self._say_goodbye(DisconnectReason.TOO_SLOW, reconnect=True)
            return
        if self.closing:
            return
        # The socket is free: what gathered while it was busy goes now, in one batch per
        # subscription. A history answer goes on as long as half the bound is free.
        if (outbox.pending_rows and outbox.in_flight == 0) or (
            self.replaying and outbox.in_flight <= outbox.max_bytes // 2
        ):
            self._flush(now)

    @property
    def in_flight(self) -> int:
        """Bytes handed out to write and not yet taken by the socket."""
        return self.outbox.in_flight

    @property
    def backlogged(self) -> bool:
        """More is written than the socket took: read no more from the client for now."""
        return self.outbox.in_flight > self.outbox.max_bytes

    def _handle(self, event: ServerEvent, now: float) -> None:
        if isinstance(event, SubscribeRequested):
            self._subscribe(event, now)
        elif isinstance(event, UnsubscribeRequested):
            self._unsubscribe(event.identifier)
        elif isinstance(event, PerformRequested):
            self._perform(event, now)
        elif isinstance(event, HistoryRequested):
            self._history(event.identifier, event.request, now)

    def _subscribe(self, event: SubscribeRequested, now: float) -> None:
        ref, identifier = event.ref, event.identifier
        reason = self._refusal(ref, identifier)
        if reason is not None:
            self.conn.reject_subscription(identifier, reason)
            return
        channel = self.engine.channels[ref.channel]
        read_refused = self.access.can_read(channel)
        can_write = self.access.can_write(channel) is None
        if read_refused is not None and not can_write:
            # Neither: the subscription may have been meant for publishing, so say both.
            self.conn.reject_subscription(identifier, self.access.refused_both(channel))
            return
        can_read = read_refused is None
        self._grant(identifier, ref, channel, can_read, can_write)
        if not self.conn.subprotocol.batched:
            # Only iotcable-v1-json confirms carry meta: the others need none kept.
            self.conn.confirm_subscription(identifier, {})
        else:
            self._confirm(identifier, ref, channel, can_read, can_write)
        if event.history is not None:
            if read_refused is not None:
                self.conn.reject_history(identifier, read_refused)
            else:
                self._history(identifier, event.history, now)

    def _confirm(
        self,
        identifier: str,
        ref: ChannelRef,
        channel: ChannelConfig,
        can_read: bool,
        can_write: bool,
    ) -> None:
        """The iotcable confirm: what a client needs to know about the channel."""
        self.conn.confirm_subscription(
            identifier,
            {
                "columns": channel.columns.pattern if channel.columns else None,
                "format": channel.format.value,
                "units": dict(channel.units),
                "time_field": channel.decoder.time_field,
                "topics": self._topics_seen(channel.name, ref.topic, can_read),
                "read": can_read,
                "write": can_write,
                "stream_id": channel.name,
                "epoch": self.engine.hub.streams[channel.name].epoch,
            },
        )

    def _topics_seen(
        self, stream_id: str, topic_filter: str | None, can_read: bool
    ) -> dict[str, object]:
        """Whether the filter matches any topic the stream holds readings of, so that a
        client can say why a subscription stays empty; a reader also gets examples."""
        seen = self.engine.hub.streams[stream_id].recent_topics()
        matching = seen if topic_filter is None else [t for t in seen if matches(topic_filter, t)]
        topics: dict[str, object] = {"seen": len(seen), "matching": len(matching)}
        if can_read:
            topics["examples"] = seen[-3:]
        return topics

    def _refusal(self, ref: ChannelRef, identifier: str) -> str | None:
        """Why this subscribe cannot be confirmed whoever asks, or None."""
        limit = self.engine.settings.max_identifier_bytes
        size = utf8_len(identifier)
        if size > limit:
            # Every frame repeats the identifier, and sessions keep it for resume.
            return (
                f"identifier is {size} bytes; this server accepts identifiers of up to "
                f"{limit} bytes (a channel name and a topic filter)"
            )
        channel = self.engine.channels.get(ref.channel)
        if channel is None:
            return f"unknown channel {ref.channel!r}; see GET iotcable/api/channels"
        topic = ref.topic
        if topic is not None:
            try:
                validate_filter(topic)
            except TopicError as e:
                return f"topic {topic!r} is not a valid MQTT filter: {e}"
            if not channel.contains_topic_filter(topic):
                return (
                    f"topic {topic!r} is outside channel {channel.name!r}; it must be "
                    f"inside one of {list(channel.topics)}"
                )
        return None

    def _grant(
        self,
        identifier: str,
        ref: ChannelRef,
        channel: ChannelConfig,
        can_read: bool,
        can_write: bool,
    ) -> Grant:
        self._unsubscribe(identifier)
        sub = (
            self.engine.hub.subscribe(
                self.outbox,
                identifier,
                channel.name,
                ref.topic,
                batched=self.conn.subprotocol.batched,
                rows_per_frame=self.engine.settings.batch_max,
            )
            if can_read
            else None
        )
        grant = self.grants[identifier] = Grant(ref, channel, can_read, can_write, sub)
        return grant

    def _unsubscribe(self, identifier: str) -> None:
        self.replaying.pop(identifier, None)
        grant = self.grants.pop(identifier, None)
        if grant is not None and grant.sub is not None:
            self._holds.pop(grant.sub, None)
            self.engine.hub.unsubscribe(grant.sub)

    def _perform(self, event: PerformRequested, now: float) -> None:
        grant = self.grants.get(event.identifier)
        if grant is None:
            self.conn.error("not_subscribed", "perform needs a confirmed subscription")
            return
        if event.action != "publish":
            self.conn.error(
                "unknown_action",
                f"unknown action {event.action!r}; channels support the action 'publish'",
            )
            return
        data = event.data
        request = PublishRequest(
            event.identifier, grant.channel, data.get("topic"), data.get("payload"), data.get("ref")
        )
        if grant.can_write:
            # Asked again at each publish: an access may have learned that a grant is gone.
            refused = self.access.can_write(grant.channel)
        else:
            refused = f"you may not publish to channel {grant.channel.name!r}"
        if refused is None and not self.bucket.allow(now):
            settings = self.engine.settings
            refused = (
                f"publish rate limit reached ({settings.publish_rate:g}/s); "
                f"retry in {self.bucket.retry_after():.1f}s"
            )
        if refused is not None:
            self.published(request, refused)
            return
        self._publishes.append(request)

    # -- history ------------------------------------------------------------------------

    def _history(self, identifier: str, request: HistoryRequest, now: float) -> None:
        grant = self.grants.get(identifier)
        if grant is None or grant.sub is None:
            self.conn.reject_history(identifier, "not subscribed to a readable channel")
            return
        if identifier not in self.replaying:
            self._start_replay(identifier, grant.sub, request, now)
            return
        waiting = grant.waiting
        if waiting is None:
            waiting = grant.waiting = deque()
        if len(waiting) >= MAX_WAITING_HISTORY:
            self.conn.reject_history(
                identifier,
                f"{MAX_WAITING_HISTORY} history requests of this subscription are already "
                "waiting behind the one being sent; wait for their confirm_history or "
                "reject_history, then ask again",
            )
            return
        # Keep only what this stream's answer needs: a request may name many streams.
        stream = grant.sub.stream.name
        position = request.streams.get(stream)
        waiting.append(HistoryRequest(request.since, {stream: position} if position else {}))

    def _start_replay(
        self, identifier: str, sub: Subscriber, request: HistoryRequest, now: float
    ) -> None:
        sub.held = False  # the client said where it is: the resume hold has done its job
        self._holds.pop(sub, None)
        self.engine.hub.replay(sub, request, now)
        self.replaying[identifier] = None
        self._wake(0)

    def _advance_replays(self, budget: int, now: float) -> None:
        """Send history rows while the socket takes them; answer the finished requests."""
        outbox = self.outbox
        for identifier in list(self.replaying):
            grant = self.grants.get(identifier)
            sub = grant.sub if grant is not None else None
            while sub is not None and sub.replay is not None and outbox.in_flight <= budget:
                replay = sub.replay
                room = max(1, budget - outbox.in_flight)
                rows = replay.take(self.engine.settings.batch_max, room, sub.cost)
                self._send(sub, rows, 0, live=False)
                if replay.done:
                    assert grant is not None
                    self._answer_history(identifier, grant, sub, now)

    def _answer_history(self, identifier: str, grant: Grant, sub: Subscriber, now: float) -> None:
        assert sub.replay is not None
        gap, stream = sub.replay.gap, sub.stream
        sub.replay = None
        self.replaying.pop(identifier, None)
        if gap is None:
            self.conn.confirm_history(identifier)
        else:
            self.conn.reject_history(
                identifier,
                gap.reason,
                stream_id=stream.name,
                epoch=stream.epoch,
                available_from=gap.available_from,
            )
        self._collect()
        if grant.waiting:
            self._start_replay(identifier, sub, grant.waiting.popleft(), now)

    # -- output -------------------------------------------------------------------------

    def data_to_send(self) -> list[str | bytes]:
        """Frames to write, in order. Their bytes count as in flight until :meth:`written`."""
        self._collect()
        out, self._out = self._out, []
        return out

    def _collect(self) -> None:
        """Move what the protocol machine queued into the output, counting its bytes."""
        frames = self.conn.data_to_send()
        if frames:
            outbox = self.outbox
            for frame in frames:
                outbox.sent(wire_size(frame))
            self._out.extend(frames)

    def advance(self, now: float) -> None:
        """Time passed: release resume holds, end a too_slow, send the rows that are due."""
        self._woken = False
        if self.closed:
            return
        if self._goodbye_at is not None:
            if now >= self._goodbye_at and not self.drop:
                # The client read nothing for the whole grace period: drop the socket.
                self.drop = True
            else:
                self._wake(self._goodbye_at - now)
            return
        if self.closing:
            return
        for sub, until in list(self._holds.items()):
            if now >= until:
                del self._holds[sub]
                sub.held = False
            else:
                self._wake(until - now)
        self._flush(now)

    def _flush(self, now: float) -> None:
        outbox = self.outbox
        if outbox.overflowed:
            self._too_slow(now)
            return
        # Back-pressure: while the socket has not taken what we wrote, keep readings in
        # the outbox, where the bound and the conflate policy apply, and history in the
        # ring. written() wakes us when it has.
        budget = outbox.max_bytes // 2
        if outbox.in_flight > budget:
            return
        self._advance_replays(budget, now)
        for batch in outbox.take():
            self._send(batch.sub, batch.entries, batch.dropped)
            if batch.dropped:
                metrics.DROPPED.labels(batch.sub.stream.name).inc(batch.dropped)
        self._collect()

    def _send(
        self, sub: Subscriber, entries: list[Entry], dropped: int, *, live: bool = True
    ) -> None:
        if live:
            # A live row goes out once and in offset order: a history answer may have
            # sent it already. (A history answer skips what was sent by itself.)
            entries = sub.unsent(entries)
        dropped += sub.unreported_dropped
        sub.unreported_dropped = 0 if entries else dropped
        conn = self.conn
        if not entries or conn.closed or sub.identifier not in conn.subscriptions:
            return
        # Frames the protocol machine queued before these go first.
        self._collect()
        outbox, out = self.outbox, self._out
        for frame in sub.stream.frames(sub, entries, dropped, shared=live):
            # Counted at once: the history loop stops on what is in flight.
            outbox.sent(wire_size(frame))
            out.append(frame)
        sub.mark_sent(entries)
        metrics.READINGS_OUT.labels(sub.stream.name).inc(len(entries))

    def _rows_queued(self) -> None:
        """The hub queued a subscription's first rows since its last send (or the outbox
        overflowed): they go as soon as the socket is free.

        When nothing is in flight that is now (no timer: a reading to an idle connection
        leaves at once). While a write is pending, rows gather in the outbox, where its
        bound and the policies apply, and :meth:`written` sends them as one batch per
        subscription once the socket has taken what it was given.
        """
        if not self.closing and (self.outbox.in_flight == 0 or self.outbox.overflowed):
            self._wake(0)

    def _wake(self, delay: float) -> None:
        """Ask the transport for an :meth:`advance` within ``delay`` seconds (or sooner)."""
        if self._woken:
            return  # an immediate one is coming: it does everything that is due
        if delay <= 0:
            self._woken = True
            delay = 0.0
        self.transport.wake(delay)

    def recheck_access(self) -> bool:
        """The access may have changed while the connection is open (a hub grant taken
        away, asked again by the I/O layer): readings of a channel the user may no longer
        read stop now, and the connection closes (1008) so that the client reconnects,
        resumes what is still allowed and, subscribing again to the rest, is told why it
        is refused. Publishes need nothing: each one asks the access. Returns whether the
        connection closes."""
        if self.closing:
            return False
        lost = {
            identifier: grant.channel.name
            for identifier, grant in self.grants.items()
            if grant.sub is not None and self.access.can_read(grant.channel) is not None
        }
        if not lost:
            return False
        for identifier in lost:
            self._unsubscribe(identifier)
        names = ", ".join(repr(name) for name in sorted(set(lost.values())))
        self.closing = True
        self.close_code = 1008
        # A close reason has at most 123 bytes.
        self.close_reason = f"your access to channel {names} was withdrawn"[:120]
        self._wake(0)
        return True

    # -- the engine's calls -------------------------------------------------------------

    def ping(self, now: float) -> None:
        """The ActionCable ping (every ``ping_interval``)."""
        if self._keepalive is not None:
            self._keepalive(now)
        if self.closing:
            return
        # Queued behind a backlog a ping tells nothing new, and would grow it forever for
        # a client that never reads; rows reaching the client keep it fresh.
        if self.outbox.in_flight > self.outbox.max_bytes // 2:
            return
        self.conn.ping(now)
        self._wake(0)

    def broker_event(self, state: BrokerState, detail: str) -> None:
        if not self.closing:
            self.conn.broker_event(state, detail)
            self._wake(0)

    def shutdown(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        """Say ``disconnect`` and close now (the server is going away)."""
        if self.closed or self.close_code is not None:
            return
        self._goodbye_at = None
        self.closing = True
        self._say_goodbye(reason, reconnect=reconnect)

    def _say_goodbye(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        self._goodbye_at = None
        self.conn.disconnect(reason, reconnect=reconnect)
        self.close_code = 1001 if reason is DisconnectReason.SERVER_RESTART else 1000
        self.close_reason = reason.value
        self._wake(0)

    def _too_slow(self, now: float) -> None:
        """The outbox overflowed under the ``disconnect`` policy: queue no more data."""
        metrics.SLOW_DISCONNECTS.inc()
        self.closing = True
        # Written now, the frame would wait behind everything already buffered and the
        # close would time out first: it goes once the client has read the rest.
        self._goodbye_at = now + self.engine.settings.too_slow_grace
        if self.outbox.in_flight == 0:
            self._say_goodbye(DisconnectReason.TOO_SLOW, reconnect=True)
        else:
            self._wake(self.engine.settings.too_slow_grace)

    def closed_by_peer(self) -> None:
        """The socket closed: unsubscribe everything and keep the session for resume."""
        if self.closed:
            return
        self.closing = self.closed = True
        self.replaying.clear()
        self._holds.clear()
        refs = {identifier: grant.ref for identifier, grant in self.grants.items()}
        for grant in self.grants.values():
            if grant.sub is not None:
                self.engine.hub.unsubscribe(grant.sub)
        self.grants.clear()
        self.engine.unregister(self, self.access.identity.username, refs)


def wire_size(frame: str | bytes) -> int:
    """Bytes a text frame takes on the socket: UTF-8 payload plus the frame header."""
    size = len(frame) if isinstance(frame, bytes) else utf8_len(frame)
    return size + (2 if size < 126 else 4 if size < 1 << 16 else 10)
