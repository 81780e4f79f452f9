"""``{base_url}iotcable/cable``: the websocket, a thin adapter around the protocol core.

The sans-I/O :class:`~jupyter_iotcable.protocol.ServerConnection` decides what the wire
says; this handler authenticates (Jupyter's token/cookie, or the kernel token), makes
the authorization decisions, moves readings from the connection's :class:`Outbox` to
the socket, and accounts for bytes not yet flushed so that memory stays bounded.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..hub import Entry, Outbox, Subscription
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


class CableHandler(WebSocketMixin, IoTCableAuthMixin, JupyterHandler, WebSocketHandler):  # type: ignore[misc]
    engine: CableEngine

    def initialize(self, engine: CableEngine) -> None:
        self.engine = engine
        self.conn: ServerConnection | None = None
        self.outbox: Outbox | None = None
        self.grants: dict[str, ChannelGrant] = {}
        self._offered: list[str] = []
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._closing = False

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
        conn = self.conn
        if conn is None or conn.closed:
            return
        conn.receive_text(message)
        for event in conn.events_received():
            await self._handle(event)
        self._write()

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
        assert self.outbox is not None
        old = self.grants.pop(identifier, None)
        if old is not None and old.sub is not None:
            self.engine.hub.unsubscribe(old.sub)
        sub = (
            self.engine.hub.subscribe(self.outbox, identifier, channel.name, ref.topic)
            if can_read
            else None
        )
        grant = ChannelGrant(ref, channel, can_read, can_write, sub)
        self.grants[identifier] = grant
        return grant

    def _unsubscribe(self, identifier: str) -> None:
        grant = self.grants.pop(identifier, None)
        if grant is not None and grant.sub is not None:
            self.engine.hub.unsubscribe(grant.sub)

    def _history(self, identifier: str, request: HistoryRequest) -> None:
        assert self.conn is not None and self.outbox is not None
        grant = self.grants.get(identifier)
        if grant is None or grant.sub is None:
            self.conn.reject_history(identifier, "not subscribed to a readable channel")
            return
        sub = grant.sub
        stream = sub.stream
        sub.held = False
        # Live entries queued for this subscription are newer than or part of the
        # history answer: merge them so the client sees one ordered run, no duplicate.
        pending = self.outbox.remove(sub)
        result = stream.history(request, time.time(), sub.topic_filter)
        if isinstance(result, list):
            merged = self._merge(result, pending)
            self._send(sub, merged, 0)
            self.conn.confirm_history(identifier)
        else:
            # What is still kept goes first, then the reject that reports the gap: a
            # client blocked on its history request has the rows when it is answered.
            kept = [
                e
                for e in stream.ring
                if sub.topic_filter is None or _matches(sub.topic_filter, e.reading.topic)
            ]
            self._send(sub, self._merge(kept, pending), 0)
            self.conn.reject_history(
                identifier,
                result.reason,
                stream_id=stream.name,
                epoch=stream.epoch,
                available_from=result.available_from,
            )

    @staticmethod
    def _merge(a: list[Entry], b: list[Entry]) -> list[Entry]:
        by_offset = {e.offset: e for e in a}
        for e in b:
            by_offset.setdefault(e.offset, e)
        return [by_offset[k] for k in sorted(by_offset)]

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
        interval = self.engine.settings.batch_interval
        assert self.outbox is not None
        if self.outbox.overflowed or self.outbox.pending_rows >= self.engine.settings.batch_max:
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_later(interval, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None or conn.closed or self._closing:
            return
        if outbox.overflowed:
            metrics.SLOW_DISCONNECTS.inc()
            self.shutdown(DisconnectReason.TOO_SLOW, reconnect=True)
            return
        # Back-pressure: while the socket has not taken what we wrote, keep readings in
        # the outbox, where the bound and the conflate policy apply.
        if outbox.in_flight > outbox.max_bytes // 2:
            return
        for batch in outbox.take():
            self._send(batch.sub, batch.entries, batch.dropped)
            if batch.dropped:
                metrics.DROPPED.labels(batch.sub.stream.name).inc(batch.dropped)
        self._write()

    def _send(self, sub: Subscription, entries: list[Entry], dropped: int) -> None:
        assert self.conn is not None
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
        metrics.READINGS_OUT.labels(stream.name).inc(len(entries))

    def _write(self) -> None:
        conn, outbox = self.conn, self.outbox
        if conn is None or outbox is None:
            return
        for frame in conn.data_to_send():
            size = len(frame)
            try:
                future = self.write_message(frame)
            except WebSocketClosedError:
                return
            outbox.sent(size)
            future.add_done_callback(functools.partial(self._on_written, size))

    def _on_written(self, size: int, _future: object) -> None:
        if self.outbox is None:
            return
        self.outbox.flushed(size)
        if self.outbox.pending_rows and self._flush_handle is None:
            self._wake()

    # -- engine callbacks -------------------------------------------------------------

    def send_ping(self, now: float) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.ping(now)
            self._write()

    def send_broker_event(self, state: str, detail: str) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.broker_event(state, detail)
            self._write()

    def shutdown(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        if self.conn is None or self._closing:
            return
        self.conn.disconnect(reason, reconnect=reconnect)
        self._write()
        self._closing = True
        code = 1001 if reason is DisconnectReason.SERVER_RESTART else 1000
        self.close(code, reason.value)

    def on_close(self) -> None:
        self._closing = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        refs = {identifier: grant.ref for identifier, grant in self.grants.items()}
        for grant in self.grants.values():
            if grant.sub is not None:
                self.engine.hub.unsubscribe(grant.sub)
        self.grants.clear()
        if self.conn is not None:
            self.engine.unregister(self, self.conn.sid, self.identity, refs)
        super().on_close()


def _matches(topic_filter: str, topic: str) -> bool:
    from ..topics import matches

    return matches(topic_filter, topic)
