"""The broker's socket as paho sees it: PUBLISH packets are read and routed here.

aiomqtt keeps the connection (CONNECT, SUBSCRIBE, pings, publishing, reconnect handling
in the bridge); the messages take a shorter way in. :func:`install` puts a
:class:`BrokerReader` in place of the socket paho reads from. When paho asks it for bytes,
it reads the socket in large pieces, splits them into packets
(:class:`~.mqtt_packets.PacketSplitter`), and

1. acknowledges a step's QoS 1 messages at once, in one ``send`` (paho sends one PUBACK per
   message, each through an event-loop writer callback): the broker holds only so many
   unacknowledged messages per client (mosquitto's ``max_inflight_messages``, 20 by
   default), so the sooner they are acknowledged, the sooner it sends the next ones;
2. hands the step's messages to ``deliver`` (the bridge's routing);
3. gives paho every other packet, whole and in order, to handle as it always does.

Acknowledging a message before it is routed changes nothing that matters: routed, it
lives in the server's memory, from which a crash loses it just the same. What is not yet
routed is not acknowledged: a connection lost in between leaves it with the broker.

Pacing (the reason for ``Pressure``). Routing a backlog faster than connections get to
write would fill their outboxes before they sent anything: a fast client of a
``disconnect`` channel would be told ``too_slow`` and a ``conflate`` one would lose readings
for the server's haste. So the reader reads at most ``TURN_BYTES`` and for ``TURN_SECONDS``
per turn of the event loop, and when an outbox filled to half its bound since it last
wrote (it raises ``pressure.raised``), it stops after the current step and goes on at the
next turn, after the connections' writes. An outbox that stays full (a client that does
not read) raises it once, not at every reading, so it does not slow everyone down.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from .mqtt_packets import PUBACK, PacketSplitter

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..hub import Pressure
    from .mqtt_packets import Publish

__all__ = ["READ_SIZE", "STEP", "TURN_BYTES", "TURN_SECONDS", "BrokerReader", "install"]

logger = logging.getLogger("jupyter_iotcable.bridge")

#: Bytes asked of the socket per read.
READ_SIZE = 64 * 1024
#: Bytes read per turn of the event loop at most: other connections get their turn.
TURN_BYTES = 256 * 1024
#: Seconds of reading and routing per turn at most: timers, client frames and writes
#: of every connection wait meanwhile.
TURN_SECONDS = 0.02
#: Messages acknowledged and routed together; pressure and time are looked at between steps.
STEP = 64

_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class BrokerReader:
    """Stands in for paho's socket (see the module's docstring); other calls go through."""

    __slots__ = (
        "_deliver",
        "_feed",
        "_feed_pos",
        "_loop",
        "_on_error",
        "_paho",
        "_paused",
        "_pressure",
        "_sock",
        "_splitter",
        "_starved",
        "_turn_bytes",
        "_turn_pending",
        "_turn_started",
        "eof",
    )

    def __init__(
        self,
        sock: Any,
        paho: Any,
        deliver: Callable[[list[Publish]], None],
        *,
        v5: bool,
        loop: asyncio.AbstractEventLoop,
        pressure: Pressure | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._sock = sock
        self._paho = paho
        self._deliver = deliver
        self._splitter = PacketSplitter(v5=v5)
        self._loop = loop
        self._pressure = pressure
        self._on_error = on_error
        self._feed = b""  # whole packets for paho, served by recv()
        self._feed_pos = 0
        self._paused = False  # pressure: going on at the next turn
        self._starved = False  # the last read found the socket empty
        self._turn_bytes = 0
        self._turn_pending = False
        self._turn_started = 0.0
        self.eof = False

    # -- what paho calls ----------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        if self._feed_pos < len(self._feed):
            return self._serve(size)
        splitter = self._splitter
        while not self._paused:
            if splitter.buffered:
                messages, acks, other = splitter.take(STEP)
                if acks:
                    self._acknowledge(acks)
                if messages:
                    self._deliver(messages)
                if other is not None:
                    self._feed, self._feed_pos = other, 0
                    return self._serve(size)
                if messages:
                    pressure = self._pressure
                    if pressure is not None and pressure.raised:
                        pressure.raised = False
                        self._pause()
                        break
                    if time.perf_counter() - self._turn_started > TURN_SECONDS:
                        self._pause()
                        break
                    continue
            # Nothing complete is buffered: read.
            if self.eof:
                return b""  # paho: the connection is lost
            if self._turn_bytes >= TURN_BYTES:
                # The next turn goes on, even if the socket does not say it is readable
                # again (TLS may hold bytes it decrypted already).
                self._pause()
                break
            try:
                data: bytes = self._sock.recv(READ_SIZE)
            except _WOULD_BLOCK:
                self._starved = True
                raise
            self._starved = False
            if not data:
                self.eof = True
                continue  # what is complete was handed out above; then b""
            self._count(len(data))
            splitter.feed(data)
            # paho's keepalive looks at when bytes last came in.
            self._paho._last_bytes_received = time.monotonic()
        raise BlockingIOError("the next turn of the event loop goes on")

    def pending(self) -> int:
        """Whether aiomqtt's reader should call paho again now (it asks after each packet)."""
        if self._feed_pos < len(self._feed):
            return len(self._feed) - self._feed_pos
        if self._paused or self._starved or self._turn_bytes >= TURN_BYTES:
            return 0
        if self._splitter.buffered or self.eof:
            return 1
        inner = getattr(self._sock, "pending", None)  # TLS: decrypted bytes held
        return inner() if inner is not None else 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    # -- inside -------------------------------------------------------------------------

    def _serve(self, size: int) -> bytes:
        start = self._feed_pos
        end = min(start + size, len(self._feed))
        self._feed_pos = end
        chunk = self._feed[start:end]
        if end >= len(self._feed):
            self._feed, self._feed_pos = b"", 0
        return chunk

    def _acknowledge(self, acks: bytes) -> None:
        """Send PUBACKs now, or after what paho has queued (never in the middle of it)."""
        paho = self._paho
        sent = 0
        if not paho.want_write():
            try:
                sent = self._sock.send(acks)
            except _WOULD_BLOCK:
                sent = 0
            except OSError:
                sent = 0  # paho's own write finds out, and reports the lost connection
        if sent < len(acks):
            paho._packet_queue(PUBACK, acks[sent:], 0, 0)

    def _count(self, nbytes: int) -> None:
        self._turn_bytes += nbytes
        if not self._turn_pending:
            self._turn_pending = True
            self._turn_started = time.perf_counter()
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_pending = False
        self._turn_bytes = 0

    def _pause(self) -> None:
        self._paused = True
        self._loop.call_soon(self._resume)
        # What the next turn reads counts afresh.
        self._turn_pending = False
        self._turn_bytes = 0

    def _resume(self) -> None:
        """Go on where pressure stopped, after the writes of this turn (they were queued
        first); the socket may have nothing new to say, so aiomqtt's reader would not."""
        self._paused = False
        paho = self._paho
        if paho._sock is not self:
            return  # the connection is gone
        try:
            while True:
                paho.loop_read()
                if self.pending() <= 0:
                    break
        except Exception as exc:
            if self._on_error is not None:
                self._on_error(exc)
            else:
                raise


def install(
    client: Any,
    deliver: Callable[[list[Publish]], None],
    *,
    v5: bool,
    pressure: Pressure | None = None,
) -> bool:
    """Read ``client``'s (an ``aiomqtt.Client``) messages through a :class:`BrokerReader`.

    Call on the event loop, before connecting. Returns False (and changes nothing) if this
    paho lacks what the reader relies on; messages then arrive through paho's
    ``on_message``, as before.
    """
    paho = getattr(client, "_client", None)  # aiomqtt exposes no hook for this
    if paho is None or not all(
        hasattr(paho, name)
        for name in ("_packet_queue", "_last_bytes_received", "want_write", "on_socket_open")
    ):
        logger.warning("this paho-mqtt has no place for the fast ingest path: using paho's own")
        return False
    loop = asyncio.get_running_loop()
    opened = paho.on_socket_open

    def on_error(exc: BaseException) -> None:
        # Where aiomqtt's own reader puts an error: the message iterator raises it.
        disconnected = getattr(client, "_disconnected", None)
        if disconnected is not None and not disconnected.done():
            disconnected.set_exception(exc)
        else:
            logger.error("reading from the broker failed: %s", exc)

    def on_socket_open(paho_client: Any, userdata: object, sock: Any) -> None:
        # Called on the thread that connects (aiomqtt runs paho's connect in an executor).
        reader = BrokerReader(
            sock, paho_client, deliver, v5=v5, loop=loop, pressure=pressure, on_error=on_error
        )
        paho_client._sock = reader
        if opened is not None:
            opened(paho_client, userdata, reader)

    paho.on_socket_open = on_socket_open
    return True
