"""The running channel server: hub + bridge + connections, owned by the extension.

Everything that is not one websocket's business lives here: the bridge's lifecycle,
routing MQTT messages into the hub, the ActionCable pings, history trimming, sessions
kept for resume, broker health events, publishing, status and shutdown. Websocket
handlers are thin adapters that register with the engine (see :mod:`.websocket`).

The engine knows its bridge through :mod:`jupyter_iotcable.bridge.interface` only: it is
the bridge's :class:`~jupyter_iotcable.bridge.BridgeSink`, and whoever assembles the server
gives it a :data:`~jupyter_iotcable.bridge.BridgeFactory` (the extension: an
``MqttBridge``, or an ``EmbeddedBridge`` without ``broker_url``; tests: a
``MemoryBridge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._version import __version__
from ..bridge.interface import Bridge, BridgeError, BridgeFactory
from ..hub import DEFAULT_SERVER_HISTORY_BYTES, Hub
from ..protocol import BrokerState, ChannelRef
from . import metrics
from .codec import orjson_bytes
from .config import ChannelConfig
from .publish import Refusal, check_topic, encode_payload

if TYPE_CHECKING:
    from .access import Access
    from .session import CableSession

log = logging.getLogger("jupyter_iotcable.server")


@dataclass(frozen=True)
class EngineSettings:
    max_message_size: int = 64 * 1024
    max_subscriptions: int = 100
    publish_rate: float = 10.0
    publish_burst: int = 20
    outbox_bytes: int = 1 << 20
    batch_interval: float = 0.02  # unused: rows go when the socket is free (session.py)
    batch_max: int = 500
    ping_interval: float = 3.0
    session_ttl: float = 120.0
    resume_hold: float = 5.0
    # Every frame repeats a subscription's identifier and sessions keep it: bounded.
    max_identifier_bytes: int = 1024
    # Sessions kept for resume, oldest evicted first: at most max_subscriptions x
    # max_identifier_bytes each.
    max_sessions: int = 256
    max_sessions_per_user: int = 32
    # Seconds a too_slow client has to read what was already sent before its disconnect
    # frame goes out; after that the socket is dropped.
    too_slow_grace: float = 10.0
    # Memory the history of every channel may take together (Entry.memory).
    history_bytes: int = DEFAULT_SERVER_HISTORY_BYTES


@dataclass
class SavedSession:
    """Subscriptions of a dropped connection, kept ``session_ttl`` seconds for resume."""

    username: str
    refs: dict[str, ChannelRef]
    expires_at: float


@dataclass
class BrokerHealth:
    state: BrokerState = BrokerState.CONNECTING
    detail: str = ""
    since: float = field(default_factory=time.time)
    outages: int = 0
    last_outage_at: float | None = None


class CableEngine:
    def __init__(
        self,
        channels: Mapping[str, ChannelConfig],
        settings: EngineSettings,
        bridge: BridgeFactory,
    ) -> None:
        self.channels = dict(channels)
        self.settings = settings
        self.epoch = f"{int(time.time()):x}{secrets.token_hex(3)}"
        self.started_at = time.time()
        self.hub = Hub(
            [c.spec() for c in self.channels.values()],
            self.epoch,
            self.started_at,
            dumps=orjson_bytes,
            history_bytes=settings.history_bytes,
        )
        self.connections: set[CableSession] = set()
        self.sessions: dict[str, SavedSession] = {}
        self.health = BrokerHealth()
        # The bridge paces its reading of the broker by it (bridge/fast_ingest.py).
        self.pressure = self.hub.pressure
        self.bridge: Bridge = bridge(self.hub.filters, self)
        self._tasks: list[asyncio.Task[None]] = []
        self.publishes_ok = 0
        self.publishes_refused = 0
        # Per channel: the oversize and flagged counts already added to the metrics.
        self._exported: dict[str, tuple[int, int]] = {}
        self.sessions_lost = 0

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.bridge.start()
        self._tasks.append(asyncio.create_task(self._heartbeat()))

    async def stop(self) -> None:
        from ..protocol import DisconnectReason

        for conn in list(self.connections):
            conn.shutdown(DisconnectReason.SERVER_RESTART, reconnect=True)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.bridge.stop()

    async def _heartbeat(self) -> None:
        """ActionCable pings, history trimming and session expiry on one timer."""
        # The server has started by now (its extensions loaded, its routes set).
        await asyncio.sleep(min(self.settings.ping_interval, 2.0))
        freeze_startup_objects()
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            now = time.time()
            for conn in list(self.connections):
                conn.ping(now)
            self.hub.trim(now)
            self._export_stream_metrics()
            for sid in [s for s, saved in self.sessions.items() if saved.expires_at < now]:
                del self.sessions[sid]
            export_bridge_metrics(self.bridge.status())

    # -- MQTT side: the bridge's sink -------------------------------------------------

    def on_message(self, topic: str, payload: bytes, received_at: float) -> None:
        for stream in self.hub.ingest(topic, payload, received_at, time.time()):
            metrics.MESSAGES_IN.labels(stream.name).inc()

    def _export_stream_metrics(self) -> None:
        """Copy the streams' oversize/flagged counts and history bytes into the metrics."""
        for name, stream in self.hub.streams.items():
            oversize, flagged = self._exported.get(name, (0, 0))
            if stream.oversize > oversize:
                metrics.OVERSIZE.labels(name).inc(stream.oversize - oversize)
            if stream.flagged > flagged:
                metrics.FLAGGED.labels(name).inc(stream.flagged - flagged)
            self._exported[name] = (stream.oversize, stream.flagged)
            metrics.CHANNEL_HISTORY_BYTES.labels(name).set(stream.ring_memory)
        metrics.HISTORY_BYTES.set(self.hub.budget.used)

    def on_state(self, state: BrokerState, detail: str) -> None:
        previous = self.health.state
        now = time.time()
        if previous is BrokerState.CONNECTED and state is not BrokerState.CONNECTED:
            self.health.outages += 1
            self.health.last_outage_at = now
        self.health = BrokerHealth(
            state, detail, now, self.health.outages, self.health.last_outage_at
        )
        metrics.BROKER_CONNECTED.set(1 if state is BrokerState.CONNECTED else 0)
        for conn in list(self.connections):
            conn.broker_event(state, detail)

    def on_session_lost(self, detail: str) -> None:
        """What the broker held for us during the outage is gone: every stream records a
        gap from its last reading before the outage to its first after and goes on in a
        new epoch, which every client sees (live and in history) and reports."""
        self.sessions_lost += 1
        metrics.SESSIONS_LOST.inc()
        opened = self.hub.lose_continuity(detail, time.time())
        for stream in opened:
            metrics.CONTINUITY_GAPS.labels(stream.name).inc()
        log.warning(
            "iotcable: %s; %d stream(s) continue in a new epoch with a gap over the outage",
            detail,
            len(opened),
        )

    async def publish(self, channel: ChannelConfig, topic: object, payload: object) -> str:
        """Check and send one publish; raises Refusal with the user's reason."""
        try:
            checked = check_topic(channel, topic)
            data = encode_payload(channel, payload)
            try:
                await self.bridge.publish(checked, data, qos=1)
            except BridgeError as e:
                raise Refusal(str(e), status=503) from e
        except Refusal:
            self.publishes_refused += 1
            metrics.PUBLISHES.labels("refused").inc()
            raise
        self.publishes_ok += 1
        metrics.PUBLISHES.labels("ok").inc()
        return checked

    # -- sessions ---------------------------------------------------------------------

    def register(self, conn: CableSession) -> None:
        self.connections.add(conn)
        metrics.CONNECTIONS.set(len(self.connections))

    def unregister(self, conn: CableSession, username: str, refs: dict[str, ChannelRef]) -> None:
        """A connection closed: keep its subscriptions ``session_ttl`` seconds for resume."""
        self.connections.discard(conn)
        metrics.CONNECTIONS.set(len(self.connections))
        if refs:
            self.sessions[conn.sid] = SavedSession(
                username, dict(refs), time.time() + self.settings.session_ttl
            )
            self._evict_sessions(username)

    def _evict_sessions(self, username: str) -> None:
        """Keep at most the newest sessions, per user and overall (dicts keep their order).

        A client coming back with an evicted ``sid`` gets a plain welcome and subscribes
        again with history: nothing is lost but the shortcut.
        """
        settings = self.settings
        mine = [sid for sid, saved in self.sessions.items() if saved.username == username]
        for sid in mine[: max(0, len(mine) - settings.max_sessions_per_user)]:
            del self.sessions[sid]
        for sid in list(self.sessions)[: max(0, len(self.sessions) - settings.max_sessions)]:
            del self.sessions[sid]

    def take_session(self, sid: str, username: str) -> dict[str, ChannelRef] | None:
        """The subscriptions ``username`` had on the connection ``sid``, once."""
        saved = self.sessions.get(sid)
        if saved is None or saved.expires_at < time.time() or saved.username != username:
            return None
        del self.sessions[sid]
        return saved.refs

    # -- what users see ---------------------------------------------------------------

    def channel_list(self, access: Access) -> list[dict[str, object]]:
        """The channels this user may read or write, with what they may do."""
        result = []
        for channel in self.channels.values():
            can_read = access.can_read(channel) is None
            can_write = access.can_write(channel) is None
            if can_read or can_write:
                info = channel.public()
                info["read"] = can_read
                info["write"] = can_write
                if can_write:
                    # What a publish topic must match: the sidebar's publish form offers it.
                    info["write_topics"] = list(channel.write_topics)
                result.append(info)
        return result

    def status(self) -> dict[str, object]:
        now = time.time()
        bridge_status = self.bridge.status()
        broker: dict[str, object] = {
            "state": self.health.state.value,
            "detail": self.health.detail,
            "since": self.health.since,
            "outages": self.health.outages,
            "last_outage_at": self.health.last_outage_at,
            # Reconnects after which the broker no longer had the bridge's session: each
            # is a gap in every stream (see channels' "continuity").
            "sessions_lost": self.sessions_lost,
            "embedded": "embedded_broker" in bridge_status,
        }
        for key in (
            "broker",
            "connects",
            "disconnects",
            "last_error",
            "messages_in",
            "messages_out",
            "backlog",
            "backlog_max_seen",
            "max_backlog",
            # Back-pressure towards the broker: readings the bridge had to drop when
            # its queue was full, and the share of time spent routing them.
            "dropped",
            "load",
            "overloaded",
            # Which session the broker keeps for us, and whether another client is
            # taking it over (two servers configured with one client id).
            "client_id",
            "client_id_conflict",
            # Whether the broker had the bridge's session on the last connect.
            "session_present",
            "protocol",
            "tls",
            "embedded_broker",
        ):
            if key in bridge_status:
                broker[key] = bridge_status[key]
        channels: dict[str, object] = {}
        for name, stream in self.hub.streams.items():
            channels[name] = {
                "offset": stream.offset,
                "messages_in": stream.messages_in,
                "rate": stream.meter.rate(now),
                "subscribers": stream.subscriber_count,
                "history": {
                    "size": len(stream.ring),
                    "oldest": stream.oldest,
                    "evicted": stream.evicted,
                    "bytes": stream.ring_memory,
                    "max_bytes": stream.spec.history_bytes,
                },
                # Readings kept with an error, and those of them kept without their
                # payload because it was larger than max_reading_bytes.
                "flagged": stream.flagged,
                "oversize": stream.oversize,
                "max_reading_bytes": stream.spec.max_reading_bytes,
                "epoch": stream.epoch,
                # Readings lost upstream: the gaps opened, the newest one's interval.
                "continuity": {
                    "gaps": stream.continuity_gaps,
                    "last": stream.continuity[-1].public() if stream.continuity else None,
                },
            }
        return {
            "version": __version__,
            "epoch": self.epoch,
            "uptime": now - self.started_at,
            "broker": broker,
            "connections": len(self.connections),
            "sessions": len(self.sessions),
            "publishes": {"ok": self.publishes_ok, "refused": self.publishes_refused},
            "unrouted": self.hub.unrouted,
            "history": {
                "bytes": self.hub.budget.used,
                "max_bytes": self.hub.budget.max_bytes,
                "evicted": self.hub.budget.evicted,
            },
            "channels": channels,
        }


_frozen = False


def freeze_startup_objects() -> None:
    """Leave what the server allocated at start-up out of every later garbage collection.

    A Jupyter server holds some 200,000 objects once started; each full collection walks
    them all (about 0.2 s on a small machine), and routing readings to many websockets
    allocates enough to trigger one every few seconds: that was most of the server's CPU
    and its worst latencies under load. ``gc.freeze()`` moves the objects alive now to a
    generation the collector ignores (garbage is collected first); what is allocated later
    is collected as before. Once per process.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def export_bridge_metrics(status: Mapping[str, object]) -> None:
    """Copy the bridge's back-pressure figures into the Prometheus gauges."""
    for gauge, key in (
        (metrics.BRIDGE_BACKLOG, "backlog"),
        (metrics.BRIDGE_DROPPED, "dropped"),
        (metrics.BRIDGE_LOAD, "load"),
        (metrics.BRIDGE_OVERLOADED, "overloaded"),
    ):
        value = status.get(key, 0)
        gauge.set(float(value) if isinstance(value, int | float) else 0.0)
