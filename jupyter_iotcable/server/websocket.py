"""``{base_url}iotcable/cable``: the websocket, a thin adapter around the protocol core.

The sans-I/O :class:`~jupyter_iotcable.protocol.ServerConnection` decides what the wire
says; this handler authenticates (Jupyter's token/cookie, or the kernel token), makes
the authorization decisions, moves readings from the connection's :class:`Outbox` to
the socket, and accounts for bytes not yet flushed so that memory stays bounded.

Memory per connection stays bounded whatever the client does:

- live rows wait in the outbox (bounded; the channel's policy applies when it is full)
  while the socket has not taken what was written;
- a history answer is a cursor over the ring (:class:`~jupyter_iotcable.hub.Replay`),
  sent in chunks under the same back-pressure, one at a time per subscription;
- a client that does not read is not read either: the next command is read only once
  the answers to the previous ones are on their way, so answers cannot pile up;
- on overflow under the ``disconnect`` policy no more data is queued; the ``too_slow``
  frame goes out once the client has read what was already written (or the socket is
  dropped after a grace period).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..hub import Entry, Outbox, Subscription, utf8_len
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
    choose_subprotocol,
)
from ..topics import TopicError, validate_filter
from . import metrics
from .base import IoTCableAuthMixin
from .codec import ORJSON_CODEC
from .config import ChannelConfig
from .engine import CableEngine
from .limits import TokenBucket
from .publish import PublishRefused


@dataclass
class ChannelGrant:
    """One confirmed identifier on this connection and what it may do."""

    ref: ChannelRef
    channel: ChannelConfig
    can_read: bool
    can_write: bool
    sub: Subscription | None  # None when the user may write but not read
    # History requests that came while one was being answered, answered in turn.
    waiting: deque[HistoryRequest] = field(default_factory=deque)


#: History requests a subscription may have waiting behind the one being answered;
#: more are refused with ``reject_history`` (each answer can be a whole ring).
MAX_WAITING_HISTORY = 4


class CableHandler(WebSocketMixin, IoTCableAuthMixin, JupyterHandler, WebSocketHandler):  # type: ignore[misc]
    engine: CableEngine

    def initialize(self, engine: CableEngine) -> None:
        self.engine = engine
        self.conn: ServerConnection | None = None
        self.outbox: Outbox | None = None
        self.grants: dict[str, ChannelGrant] = {}
        self._offered: list[str] = []
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._closing = False  # no more data or answers: saying goodbye, or closed
        self._closed = False
        self._replaying: set[str] = set()  # identifiers whose history is being sent
        self._drain_waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._goodbye: asyncio.Future[None] | None = None

    # -- handshake --------------------------------------------------------------------

    @property
    def max_message_size(self) -> int:
        # Tornado closes with 1009 when a frame is larger: only for this endpoint, the
        # server's own websockets (kernels, terminals) keep their settings.
        return self.engine.settings.max_message_size

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        self._offered = subprotocols
        choice = choose_subprotocol(subprotocols)
        # No offer: answer without a header (plain ActionCable). An offer with none of
        # ours is refused in open() with a close reason the client can show.
        return choice.value if choice is not None and subprotocols else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        read_ok = await self.authorized_for("read")
        write_ok = await self.authorized_for("write")
        if not (read_ok or write_ok):
            raise web.HTTPError(403, "not allowed to use iotcable channels")
        self._authz = (read_ok, write_ok)
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        choice = choose_subprotocol(self._offered)
        if choice is None:
            self.close(
                1002,
                "unsupported subprotocol; offer iotcable-v1-json, actioncable-v1-ext-json "
                "or actioncable-v1-json",
            )
            return
        sid = secrets.token_urlsafe(12)
        self.conn = ServerConnection(
            choice,
            sid,
            max_subscriptions=self.engine.settings.max_subscriptions,
            codec=ORJSON_CODEC,
        )
        self.outbox = Outbox(self.engine.settings.outbox_bytes, wake=self._wake)
        self.bucket = TokenBucket(
            self.engine.settings.publish_rate, self.engine.settings.publish_burst, time.time()
        )
        restored = self._restore_session(choice)
        self.conn.welcome(restored)
        self.engine.register(self)
        self._write()

    def _restore_session(self, subprotocol: Subprotocol) -> dict[str, ChannelRef]:
        """Subscriptions of an earlier connection, when the client resumes with ``sid``."""
        sid = self.get_query_argument("sid", None)
        if not sid or subprotocol is Subprotocol.PLAIN:
            return {}
        refs = self.engine.take_session(sid, self.identity)
        if not refs:
            return {}
        restored: dict[str, ChannelRef] = {}
        read_ok, write_ok = self._authz
        for identifier, ref in refs.items():
            channel = self.engine.channels.get(ref.channel)
            if channel is None:
                continue
            can_read = read_ok and self.allowed(channel.read)
            can_write = write_ok and self.allowed(channel.write)
            if not (can_read or can_write):
                continue
            grant = self._grant(identifier, ref, channel, can_read, can_write)
            if grant.sub is not None:
                grant.sub.held = True
                asyncio.get_running_loop().call_later(
                    self.engine.settings.resume_hold, self._release, grant.sub
                )
            restored[identifier] = ref
        return restored

    def _release(self, sub: Subscription) -> None:
        if sub.held:
            sub.held = False
            self._wake()

    # -- incoming frames --------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None or conn.closed or self._closing:
            return
        conn.receive_text(message)
        # Handling an event may queue more (a confirm releases the history a pending
        # duplicate subscribe carried): handle until the machine has nothing left.
        while events := conn.events_received():
            for event in events:
                await self._handle(event)
        self._write()
        # Tornado reads the next frame once this returns: a client that does not read
        # our answers waits for them to drain, in TCP, instead of piling up answers here.
        await self._drained_to(outbox.max_bytes)

    async def _handle(self, event: ServerEvent) -> None:
        if isinstance(event, SubscribeRequested):
            await self._subscribe(event)
        elif isinstance(event, UnsubscribeRequested):
            self._unsubscribe(event.identifier)
        elif isinstance(event, PerformRequested):
            await self._perform(event)
        elif isinstance(event, HistoryRequested):
            self._history(event.identifier, event.request)

    async def _subscribe(self, event: SubscribeRequested) -> None:
        assert self.conn is not None
        ref, identifier = event.ref, event.identifier
        limit = self.engine.settings.max_identifier_bytes
        size = utf8_len(identifier)
        if size > limit:
            # Every frame repeats the identifier, and sessions keep it for resume.
            self.conn.reject_subscription(
                identifier,
                f"identifier is {size} bytes; this server accepts identifiers of up to "
                f"{limit} bytes (a channel name and a topic filter)",
            )
            return
        channel = self.engine.channels.get(ref.channel)
        if channel is None:
            self.conn.reject_subscription(
                identifier, f"unknown channel {ref.channel!r}; see GET iotcable/api/channels"
            )
            return
        topic = ref.topic
        if topic is not None:
            try:
                validate_filter(topic)
            except TopicError as e:
                self.conn.reject_subscription(
                    identifier, f"topic {topic!r} is not a valid MQTT filter: {e}"
                )
                return
            if not channel.contains_topic_filter(topic):
                self.conn.reject_subscription(
                    identifier,
                    f"topic {topic!r} is outside channel {channel.name!r}; it must be "
                    f"inside one of {list(channel.topics)}",
                )
                return
        read_ok, write_ok = self._authz
        can_read = read_ok and self.allowed(channel.read)
        can_write = write_ok and self.allowed(channel.write)
        if not (can_read or can_write):
            self.conn.reject_subscription(identifier, f"you may not read channel {channel.name!r}")
            return
        grant = self._grant(identifier, ref, channel, can_read, can_write)
        self.conn.confirm_subscription(
            identifier,
            {
                "columns": channel.columns.pattern if channel.columns else None,
                "format": channel.format.value,
                "units": dict(channel.units),
                "read": can_read,
                "write": can_write,
                "stream_id": channel.name,
                "epoch": self.engine.epoch,
            },
        )
        if event.history is not None:
            if grant.sub is None:
                self.conn.reject_history(identifier, f"you may not read channel {channel.name!r}")
            else:
                self._history(identifier, event.history)

    def _grant(
        self,
        identifier: str,
        ref: ChannelRef,
        channel: ChannelConfig,
        can_read: bool,
        can_write: bool,
    ) -> ChannelGrant:
        assert self.outbox is not None and self.conn is not None
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
        grant = ChannelGrant(ref, channel, can_read, can_write, sub)
        self.grants[identifier] = grant
        return grant

    def _unsubscribe(self, identifier: str) -> None:
        self._replaying.discard(identifier)
        grant = self.grants.pop(identifier, None)
        if grant is not None and grant.sub is not None:
            self.engine.hub.unsubscribe(grant.sub)

    def _history(self, identifier: str, request: HistoryRequest) -> None:
        assert self.conn is not None
        grant = self.grants.get(identifier)
        if grant is None or grant.sub is None:
            self.conn.reject_history(identifier, "not subscribed to a readable channel")
            return
        if identifier not in self._replaying:
            self._start_replay(identifier, grant.sub, request)
            return
        if len(grant.waiting) >= MAX_WAITING_HISTORY:
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
        grant.waiting.append(HistoryRequest(request.since, {stream: position} if position else {}))

    def _start_replay(self, identifier: str, sub: Subscription, request: HistoryRequest) -> None:
        sub.held = False  # the client said where it is: the resume hold has done its job
        self.engine.hub.replay(sub, request, time.time())
        self._replaying.add(identifier)
        self._wake()

    def _advance_replays(self, budget: int) -> None:
        """Send history rows while the socket takes them; answer the finished requests."""
        outbox = self.outbox
        assert outbox is not None
        for identifier in list(self._replaying):
            grant = self.grants.get(identifier)
            sub = grant.sub if grant is not None else None
            while sub is not None and sub.replay is not None and outbox.in_flight <= budget:
                replay = sub.replay
                room = max(1, budget - outbox.in_flight)
                rows = replay.take(self.engine.settings.batch_max, room, sub.cost)
                self._send(sub, rows, 0, live=False)
                self._write()
                if replay.done:
                    assert grant is not None
                    self._answer_history(identifier, grant, sub)

    def _answer_history(self, identifier: str, grant: ChannelGrant, sub: Subscription) -> None:
        assert self.conn is not None and sub.replay is not None
        gap, stream = sub.replay.gap, sub.stream
        sub.replay = None
        self._replaying.discard(identifier)
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
        if grant.waiting:
            self._start_replay(identifier, sub, grant.waiting.popleft())

    async def _perform(self, event: PerformRequested) -> None:
        assert self.conn is not None
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
        ref = event.data.get("ref")
        topic = event.data.get("topic")
        reply: dict[str, object] = {
            "action": "publish_result",
            "ref": ref if isinstance(ref, str | int) else None,
            "topic": topic if isinstance(topic, str) else None,
        }
        try:
            if not grant.can_write:
                raise PublishRefused(f"you may not publish to channel {grant.channel.name!r}")
            if not self.bucket.allow(time.time()):
                raise PublishRefused(
                    f"publish rate limit reached ({self.engine.settings.publish_rate:g}/s); "
                    f"retry in {self.bucket.retry_after():.1f}s",
                    status=429,
                )
            await self.engine.publish(grant.channel, topic, event.data.get("payload"))
        except PublishRefused as e:
            reply.update(ok=False, reason=e.reason)
        else:
            reply["ok"] = True
        if not self.conn.closed:
            self.conn.transmit(event.identifier, reply)

    # -- outgoing frames --------------------------------------------------------------

    def _wake(self) -> None:
        if self._flush_handle is not None or self._closing:
            return
        loop = asyncio.get_running_loop()
        outbox = self.outbox
        assert outbox is not None
        urgent = (
            outbox.overflowed
            or outbox.pending_rows >= self.engine.settings.batch_max
            or bool(self._replaying)
        )
        if urgent:
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_later(self.engine.settings.batch_interval, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None or conn.closed or self._closing:
            return
        if outbox.overflowed:
            self._too_slow()
            return
        # Back-pressure: while the socket has not taken what we wrote, keep readings in
        # the outbox, where the bound and the conflate policy apply, and history in the
        # ring. _on_written wakes us when it has.
        budget = outbox.max_bytes // 2
        if outbox.in_flight > budget:
            return
        self._advance_replays(budget)
        for batch in outbox.take():
            self._send(batch.sub, batch.entries, batch.dropped)
            if batch.dropped:
                metrics.DROPPED.labels(batch.sub.stream.name).inc(batch.dropped)
        self._write()

    def _send(
        self, sub: Subscription, entries: list[Entry], dropped: int, *, live: bool = True
    ) -> None:
        assert self.conn is not None
        if live:
            # A live row goes out once and in offset order: a history answer may have
            # sent it already. (A history answer skips what was sent by itself.)
            entries = sub.unsent(entries)
        dropped += sub.unreported_dropped
        sub.unreported_dropped = 0 if entries else dropped
        if not entries:
            return
        stream = sub.stream
        grant = self.grants.get(sub.identifier)
        template = grant.channel.columns if grant is not None else None
        columns = (lambda t: template.extract(t) or {}) if template is not None else None
        step = self.engine.settings.batch_max
        for i in range(0, len(entries), step):
            chunk = entries[i : i + step]
            self.conn.send_rows(
                sub.identifier,
                stream.name,
                stream.epoch,
                [e.row() for e in chunk],
                dropped=dropped if i == 0 else 0,
                columns=columns,
            )
        sub.mark_sent(entries)
        metrics.READINGS_OUT.labels(stream.name).inc(len(entries))

    def _write(self) -> None:
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None:
            return
        for frame in conn.data_to_send():
            size = _wire_size(frame)
            try:
                future = self.write_message(frame)
            except WebSocketClosedError:
                return
            outbox.sent(size)
            future.add_done_callback(functools.partial(self._on_written, size))

    def _on_written(self, size: int, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # a closed socket is on_close's business, not a log line
        outbox = self.outbox
        if outbox is None:
            return
        outbox.flushed(size)
        if self._drain_waiters:
            self._release_drain_waiters(outbox.in_flight)
        if (outbox.pending_rows or self._replaying) and self._flush_handle is None:
            self._wake()

    async def _drained_to(self, limit: int) -> bool:
        """Wait until at most ``limit`` written bytes are unsent; False if the socket closed."""
        outbox = self.outbox
        if outbox is None or outbox.in_flight <= limit:
            return True
        if self._closed:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append((limit, waiter))
        return await waiter

    def _release_drain_waiters(self, in_flight: int | None) -> None:
        """Wake the waiters whose limit is reached (all of them, with False, on close)."""
        waiting = []
        for limit, waiter in self._drain_waiters:
            if waiter.done():
                continue
            if in_flight is None:
                waiter.set_result(False)
            elif in_flight <= limit:
                waiter.set_result(True)
            else:
                waiting.append((limit, waiter))
        self._drain_waiters = waiting

    # -- engine callbacks -------------------------------------------------------------

    def send_keepalive(self, now: float) -> None:
        """The ActionCable ping (named apart from WebSocketMixin's own ``send_ping``)."""
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None or conn.closed or self._closing:
            return
        # Queued behind a backlog a ping tells nothing new, and would grow it forever for
        # a client that never reads; rows reaching the client keep it fresh.
        if outbox.in_flight > outbox.max_bytes // 2:
            return
        conn.ping(now)
        self._write()

    def send_broker_event(self, state: str, detail: str) -> None:
        if self.conn is not None and not self.conn.closed and not self._closing:
            self.conn.broker_event(state, detail)
            self._write()

    def shutdown(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        """Say ``disconnect`` and close now (the server is going away)."""
        if self.conn is None or self.conn.closed or self._closed:
            return
        if self._goodbye is not None:
            self._goodbye.cancel()
        self._closing = True
        self._say_goodbye(reason, reconnect=reconnect)

    def _say_goodbye(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        assert self.conn is not None
        self.conn.disconnect(reason, reconnect=reconnect)
        self._write()
        code = 1001 if reason is DisconnectReason.SERVER_RESTART else 1000
        self.close(code, reason.value)

    def _too_slow(self) -> None:
        """The outbox overflowed under the ``disconnect`` policy: queue no more data."""
        metrics.SLOW_DISCONNECTS.inc()
        self._closing = True
        self._goodbye = asyncio.ensure_future(self._disconnect_when_drained())

    async def _disconnect_when_drained(self) -> None:
        # Written now, the frame would wait behind everything already buffered and the
        # close would time out first: send it once the client has read the rest.
        try:
            drained = await asyncio.wait_for(
                self._drained_to(0), self.engine.settings.too_slow_grace
            )
        except TimeoutError:
            drained = False
        if self._closed:
            return
        if drained:
            self._say_goodbye(DisconnectReason.TOO_SLOW, reconnect=True)
            return
        # The client read nothing for the whole grace period: drop the socket.
        connection = self.ws_connection
        if connection is not None and connection.stream is not None:
            connection.stream.close()

    def on_close(self) -> None:
        self._closing = True
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._release_drain_waiters(None)
        self._replaying.clear()
        refs = {identifier: grant.ref for identifier, grant in self.grants.items()}
        for grant in self.grants.values():
            if grant.sub is not None:
                self.engine.hub.unsubscribe(grant.sub)
        self.grants.clear()
        if self.conn is not None:
            self.engine.unregister(self, self.conn.sid, self.identity, refs)
        super().on_close()


def _wire_size(frame: str) -> int:
    """Bytes a text frame takes on the socket: UTF-8 payload plus the frame header."""
    size = utf8_len(frame)
    return size + (2 if size < 126 else 4 if size < 1 << 16 else 10)
