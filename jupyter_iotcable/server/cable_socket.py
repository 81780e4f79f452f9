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
from typing import Any

from tornado.httputil import HTTPHeaders
from tornado.iostream import StreamClosedError
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
        self._wake_handle: asyncio.Handle | None = None
        self._wake_when = 0.0
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
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        handle = self._wake_handle
        if handle is not None:
            if self._wake_when <= when:
                return
            handle.cancel()
        self._wake_when = when
        self._wake_handle = (
            loop.call_soon(self._advance) if delay <= 0 else loop.call_at(when, self._advance)
        )

    def _advance(self) -> None:
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
        frames = session.data_to_send()
        if frames:
            try:
                future, size = self._write_frames(frames)
            except (WebSocketClosedError, StreamClosedError):
                return
            future.add_done_callback(functools.partial(self._written, size))
        if session.drop:
            connection = self.ws_connection
            if connection is not None and connection.stream is not None:
                connection.stream.close()
        elif session.close_code is not None:
            self.close(session.close_code, session.close_reason)

    def _write_frames(self, frames: list[str | bytes]) -> tuple[asyncio.Future[None], int]:
        """Write text frames in one go; the future completes when the socket took them.

        Tornado's ``write_message`` costs a task per frame (it wraps the stream's future
        to translate its error); a server frame is only a header and the payload (no mask,
        no compression here), so the frames are framed here and written to the stream at
        once: one write and one future per pump, whatever the number of frames.
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
        return stream.write(wire), len(wire)

    def _written(self, size: int, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # a closed socket is on_close's business, not a log line
        session = self.session
        if session is None or session.closed:
            return
        session.written(size, time.time())
        drained = self._drained
        if drained is not None and not session.backlogged:
            self._drained = None
            if not drained.done():
                drained.set_result(None)
        self._pump()

    def on_close(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self.session is not None:
            self.session.closed_by_peer()
