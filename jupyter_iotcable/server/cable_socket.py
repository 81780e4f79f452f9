"""The tornado websocket adapter over a :class:`~.session.CableSession`.

It moves bytes and time, nothing else: frames from the client go to the session, the
publishes the session asks for are awaited here (the broker answers asynchronously), what
the session has to send is written, the socket's progress and the clock are reported back.
Every decision (grants, history, flushing, back-pressure, ``too_slow``) is the session's.

``CableSocket`` needs an engine (``initialize``) and an :class:`~.access.Access` set
before ``open()``; it knows nothing about how the user was authenticated. The Jupyter
server's handler (:class:`~.websocket.CableHandler`) adds Jupyter's authentication; a
JupyterHub service adds the hub's. No jupyter_server here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import struct
import time
import weakref
from typing import Any

from tornado.httputil import HTTPHeaders
from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..protocol import choose_subprotocol
from .access import Access
from .engine import CableEngine
from .publish import Refusal
from .session import CableSession, wire_size

__all__ = ["CableSocket"]

log = logging.getLogger("jupyter_iotcable.server")

# A server's text frame header: FIN + opcode 1, then the unmasked payload length.
_HEADER16 = struct.Struct("!BBH")
_HEADER64 = struct.Struct("!BBQ")

#: Writes in a row within one pump when the socket takes each one at once (the chunks of a
#: history answer); then the rest waits for the next turn, after the other connections.
SYNC_WRITES = 4

UNSUPPORTED = (
    "unsupported subprotocol; offer iotcable-v1-json, actioncable-v1-ext-json "
    "or actioncable-v1-json"
)


class CableSocket(WebSocketHandler):
    """``{base_url}iotcable/cable`` over tornado: a thin layer under a ``CableSession``."""

    engine: CableEngine
    access: Access  # set by the authenticating subclass before open()
    session: CableSession | None = None
    _offered: list[str] | None = None

    def initialize(self, engine: CableEngine) -> None:
        self.engine = engine
        self._pinged_at = self._pong_at = 0.0
        self._wake_handle: asyncio.TimerHandle | None = None
        self._wake_when = 0.0
        self._due = False  # in the next turn's list of connections to advance
        self._drained: asyncio.Future[None] | None = None

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

    # -- keepalive --------------------------------------------------------------------

    #: Seconds between websocket pings, and without a pong after which the socket is
    #: closed (a peer gone without a word: VPNs, suspended laptops).
    keepalive_interval = 30.0
    keepalive_timeout = 90.0

    @property
    def ping_interval(self) -> float:
        # No pinger per connection (tornado's is a task, Jupyter's a timer, each ~1 KiB):
        # the engine's heartbeat calls keepalive() on every connection instead.
        return 0

    def keepalive(self, now: float) -> None:
        """Ping the client every ``keepalive_interval``; close when it stopped answering."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        pinged_at = self._pinged_at
        if now - pinged_at < self.keepalive_interval:
            return
        # A late heartbeat (a suspended machine) is no reason to give up on the client.
        if now - pinged_at < 2 * self.keepalive_interval and (
            now - self._pong_at > self.keepalive_timeout
        ):
            log.warning("iotcable: no pong for %.0f s: closing the connection", now - self._pong_at)
            self.close()
            return
        try:
            self.ping(b"")
        except WebSocketClosedError:
            return
        self._pinged_at = now

    def on_pong(self, data: bytes) -> None:
        self._pong_at = time.time()

    # -- opening ----------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self._forget_handshake()
        self._pinged_at = self._pong_at = time.time()
        choice = choose_subprotocol(self._offered or [])
        if choice is None:
            self.close(1002, UNSUPPORTED)
            return
        now = time.time()
        session = CableSession(
            self.engine, self.access, choice, secrets.token_urlsafe(12), self, now
        )
        self.session = session
        session.open(now, resume=self.get_query_argument("sid", None))
        self._pump()

    def _forget_handshake(self) -> None:
        """Let go of what the 101 answer needed (sent by now): its headers and the login
        cookie Jupyter set on it. A connection lives for hours; this is ~2 KiB of each."""
        self._headers = HTTPHeaders()
        self.__dict__.pop("_new_cookie", None)

    # -- from the client --------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None or session.closing:
            return
        await self.access.refresh()
        session.receive_text(message, time.time())
        for request in session.take_publishes():
            try:
                await self.engine.publish(request.channel, request.topic, request.payload)
            except Refusal as e:
                session.published(request, e.reason)
            else:
                session.published(request, None)
        self._pump()
        # Tornado reads the next frame once this returns: a client that does not read
        # our answers waits for them to drain, in TCP, instead of piling up answers here.
        if session.backlogged and not session.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    # -- to the client ----------------------------------------------------------------

    def wake(self, delay: float) -> None:
        """The session wants :meth:`_advance` within ``delay`` seconds (0: right after
        what the loop is doing now, e.g. routing a burst of readings)."""
        if self._due:
            return  # an advance at the next turn is coming: it does what is due
        loop = asyncio.get_running_loop()
        handle = self._wake_handle
        if delay <= 0:
            if handle is not None:
                handle.cancel()
                self._wake_handle = None
            self._due = True
            _next_turn(loop).add(self)
            return
        when = loop.time() + delay
        if handle is not None:
            if self._wake_when <= when:
                return
            handle.cancel()
        self._wake_when = when
        self._wake_handle = loop.call_at(when, self._advance)

    def _advance(self) -> None:
        self._due = False
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        session = self.session
        if session is not None:
            session.advance(time.time())
            self._pump()

    def _pump(self) -> None:
        """Write what the session has to send; close or drop the socket when it says so."""
        session = self.session
        if session is None or session.closed:
            return
        for _ in range(SYNC_WRITES):
            frames = session.data_to_send()
            if not frames:
                break
            try:
                future, size = self._write_frames(frames)
            except (WebSocketClosedError, StreamClosedError):
                return
            if future is not None:
                future.add_done_callback(functools.partial(self._written, size))
                break
            # The socket took everything at once: what the session sends next (the next
            # chunk of a history answer) may go now too.
            self._took(session, size)
            if session.closed:
                return
        else:
            self.wake(0)  # more to send: at the next turn, after the other connections
        if session.drop:
            connection = self.ws_connection
            if connection is not None and connection.stream is not None:
                connection.stream.close()
        elif session.close_code is not None:
            self.close(session.close_code, session.close_reason)

    def _write_frames(self, frames: list[str | bytes]) -> tuple[asyncio.Future[None] | None, int]:
        """Write text frames in one go; returns a future that completes when the socket
        took them (``None``: it took them at once) and their size on the wire.

        Tornado's ``write_message`` costs a task per frame (it wraps the stream's future
        to translate its error); a server frame is only a header and the payload (no mask,
        no compression here), so the frames are framed here and written at once: one write
        per pump, whatever the number of frames. When tornado holds nothing unwritten, the
        frames go straight to the socket, as tornado's own write would first try: most
        writes are taken whole, and then need no future and no callbacks (measured at
        1000 subscribers x 10 readings/s, they were a sixth of the server's CPU).
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise WebSocketClosedError()
        stream = getattr(connection, "stream", None)
        if stream is None or getattr(connection, "_compressor", None) is not None:
            # Not the plain server protocol this was written for: tornado's own way.
            size, last = 0, None
            for frame in frames:
                last = self.write_message(frame)
                size += wire_size(frame)
            assert last is not None
            return last, size
        parts: list[bytes] = []
        for frame in frames:
            data = frame if isinstance(frame, bytes) else frame.encode()
            n = len(data)
            if n < 126:
                parts.append(bytes((0x81, n)))
            elif n < 1 << 16:
                parts.append(_HEADER16.pack(0x81, 126, n))
            else:
                parts.append(_HEADER64.pack(0x81, 127, n))
            parts.append(data)
        wire = b"".join(parts)
        size = len(wire)
        if type(stream) is IOStream and not stream.writing() and not stream.closed():
            try:
                sent = stream.socket.send(wire)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # tornado's write finds out, and closes the stream
            if sent == size:
                return None, size
            if sent:
                wire = wire[sent:]
        return stream.write(wire), size

    def _written(self, size: int, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # a closed socket is on_close's business, not a log line
        session = self.session
        if session is None or session.closed:
            return
        self._took(session, size)
        self._pump()

    def _took(self, session: CableSession, size: int) -> None:
        """The socket took ``size`` bytes: tell the session; read the client again if it
        waited for that."""
        session.written(size, time.time())
        drained = self._drained
        if drained is not None and not session.backlogged:
            self._drained = None
            if not drained.done():
                drained.set_result(None)

    def on_close(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self.session is not None:
            self.session.closed_by_peer()


class _NextTurn:
    """The connections that want to advance at the next turn of the event loop, run by one
    callback in the order they asked.

    A reading for 1000 connections asked for 1000 ``call_soon`` (an asyncio ``Handle`` each,
    a seventh of the server's CPU at 1000 subscribers x 10 readings/s); now it is one.
    """

    __slots__ = ("_due", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[CableSocket] = []
        self._scheduled = False

    def add(self, socket: CableSocket) -> None:
        self._due.append(socket)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        due, self._due = self._due, []
        for socket in due:
            try:
                socket._advance()
            except Exception:
                # One connection's failure must not cost the others their turn.
                log.exception("iotcable: advancing a connection failed")


_NEXT_TURN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _NextTurn] = (
    weakref.WeakKeyDictionary()
)


def _next_turn(loop: asyncio.AbstractEventLoop) -> _NextTurn:
    queue = _NEXT_TURN.get(loop)
    if queue is None:
        queue = _NEXT_TURN[loop] = _NextTurn(loop)
    return queue
