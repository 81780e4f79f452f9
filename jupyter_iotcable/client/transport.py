"""The client's only socket code: a tornado websocket driving a sans-I/O ``ClientSession``.

``Transport.run`` owns the connection's life on the cable's event loop: open the
websocket (offering ``iotcable-v1-json``, token in the ``Authorization`` header so it
never lands in a URL or a log), pump frames both ways, drop the socket when the server
has gone quiet (``is_stale``), and after a loss ask the session what to do
(``connection_lost`` -> reconnect after a backoff delay with jitter, or stop), then
reconnect with ``resume_query()`` so the server restores the session. What the frames
mean is the session's business.

Failures of the very first attempt are final: a wrong URL or token should fail
``connect()`` at once with a clear message, not retry forever. Once a session has been
welcomed, every loss is retried, except a refused token, which no retry can fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Protocol

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketError, websocket_connect

from ..protocol import Subprotocol
from ..protocol.limits import MAX_FRAME_BYTES
from .errors import AuthenticationFailed, CableClosed, ConnectionFailed, IoTCableError

if TYPE_CHECKING:
    from ..protocol import ReconnectDecision
    from .discovery import Endpoint

log = logging.getLogger("jupyter_iotcable.client")

DEFAULT_MAX_MESSAGE_SIZE = MAX_FRAME_BYTES
"""Largest frame the client accepts (bytes): the frame cap the server writes within
(protocol/limits.py), so a reading too large for it reaches the client as a flagged
reading, never as a frame that closes the socket with 1009 (and again after each
reconnect). A smaller value risks exactly that loop."""

_STALE_CHECK_INTERVAL = 1.0


class Session(Protocol):
    """What the transport drives (``ClientSession``), always on the loop's thread."""

    @property
    def state(self) -> str: ...

    def connection_opened(self, now: float) -> None: ...

    def receive_text(self, text: str | bytes, now: float) -> None: ...

    def connection_lost(self, now: float) -> ReconnectDecision: ...

    def data_to_send(self) -> list[str]: ...

    def resume_query(self) -> dict[str, str]: ...

    def is_stale(self, now: float) -> bool: ...

    def transport_state(self, state: str) -> None: ...

    def transport_failed(self, error: IoTCableError) -> None: ...


class Transport:
    """One websocket at a time for one ``ClientSession``, reconnecting as it says."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: Session,
        *,
        connect_timeout: float,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.endpoint = endpoint
        self.session = session
        self._connect_timeout = connect_timeout
        self._max_message_size = max_message_size
        self._ws: WebSocketClientConnection | None = None
        # Per attempt: tornado may hand us the first frames (the welcome) before
        # ``websocket_connect`` returns, so the machine is opened by whichever comes first.
        self._opened = False
        self._closed = asyncio.Event()
        self._closing = False
        self._welcomed_once = False
        self._wakeup = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self._ws is not None

    async def run(self) -> None:
        """Connect, and keep reconnecting until closed or told to stop."""
        while not self._closing:
            self.session.transport_state("reconnecting" if self._welcomed_once else "connecting")
            try:
                ws = await self._open()
            except Exception as exc:
                error = describe_failure(exc, self.endpoint)
                if self._closing:
                    break
                if not self._welcomed_once or isinstance(error, AuthenticationFailed):
                    self.session.transport_failed(error)
                    break
                log.info("iotcable: reconnecting to %s failed: %s", self.endpoint.base_url, error)
            else:
                await self._serve(ws)
                if self._closing:
                    break
            decision = self.session.connection_lost(time.time())
            if not decision.reconnect:
                self.session.transport_failed(_final_loss(decision.reason, self.endpoint))
                break
            if self._welcomed_once:
                self.session.transport_state("reconnecting")
            await self._sleep(decision.delay)
        self.session.transport_state("closed")

    async def _open(self) -> WebSocketClientConnection:
        self._opened = False
        self._closed = asyncio.Event()
        query = self.session.resume_query() if self._welcomed_once else {}
        headers = {"Authorization": f"token {self.endpoint.token}"} if self.endpoint.token else {}
        request = HTTPRequest(
            self.endpoint.websocket_url(query),
            headers=headers,
            connect_timeout=self._connect_timeout,
            request_timeout=self._connect_timeout,
        )
        ws = await websocket_connect(
            request,
            on_message_callback=self._on_message,
            max_message_size=self._max_message_size,
            subprotocols=[Subprotocol.IOTCABLE.value],
        )
        if ws.selected_subprotocol != Subprotocol.IOTCABLE.value:
            ws.close()
            raise ConnectionFailed(
                f"the server at {self.endpoint.base_url} answered with subprotocol "
                f"{ws.selected_subprotocol!r} instead of {Subprotocol.IOTCABLE.value!r}: "
                "update jupyter-iotcable on the server so both sides speak the same protocol"
            )
        if ws.protocol is not None:
            # Nagle's algorithm would hold small frames back for up to 40 ms.
            ws.protocol.set_nodelay(True)
        return ws

    async def _serve(self, ws: WebSocketClientConnection) -> None:
        """Run one open websocket until it closes."""
        self._ws = ws
        self._mark_opened()
        self.flush()
        watchdog = asyncio.ensure_future(self._watch_staleness())
        try:
            await self._closed.wait()
        finally:
            watchdog.cancel()
            self._ws = None

    def _mark_opened(self) -> None:
        if not self._opened:
            self._opened = True
            self.session.connection_opened(time.time())

    def _on_message(self, message: str | bytes | None) -> None:
        if message is None:
            self._closed.set()
            return
        self._mark_opened()
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        try:
            self.session.receive_text(text, time.time())
        except Exception:
            # A bug of ours must not end the connection loop: log it, keep reading.
            log.exception("iotcable: handling a frame from %s failed", self.endpoint.base_url)
        if self.session.state == "connected":
            self._welcomed_once = True
        self.flush()

    def flush(self) -> None:
        """Send whatever the connection has queued (nothing while no socket is open)."""
        ws = self._ws
        if ws is None:
            return
        for text in self.session.data_to_send():
            try:
                ws.write_message(text).add_done_callback(_ignore_write_error)
            except WebSocketError:
                # Closed under us: the close callback will run the loss path.
                return

    async def _watch_staleness(self) -> None:
        while True:
            await asyncio.sleep(_STALE_CHECK_INTERVAL)
            if self.session.is_stale(time.time()):
                log.info("iotcable: no ping from %s, reconnecting", self.endpoint.base_url)
                self.drop()

    def drop(self) -> None:
        """Abort the socket without a closing handshake, as a network failure would."""
        ws = self._ws
        stream = ws.protocol.stream if ws is not None and ws.protocol is not None else None
        if stream is not None:
            stream.close()

    async def _sleep(self, delay: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

    def close(self) -> None:
        """Stop: close the socket with 1000 and end ``run`` (which reports ``closed``)."""
        self._closing = True
        self._wakeup.set()
        ws = self._ws
        if ws is not None:
            ws.close(1000, "client closed")


def _ignore_write_error(future: asyncio.Future[None]) -> None:
    # A write fails only when the socket is closing; the close callback handles that.
    if not future.cancelled():
        future.exception()


def _final_loss(reason: str, endpoint: Endpoint) -> IoTCableError:
    if reason in ("unauthorized", "token_expired"):
        return AuthenticationFailed(
            f"the server at {endpoint.base_url} ended the session ({reason})",
            'connect again with a valid token, as in connect(url, token="...")',
        )
    return CableClosed(f"the connection to {endpoint.base_url} ended for good ({reason})")


def describe_failure(exc: BaseException, endpoint: Endpoint) -> IoTCableError:
    """The error a user should see for a failed connection attempt or REST call."""
    url = endpoint.base_url
    if isinstance(exc, IoTCableError):
        return exc
    if isinstance(exc, HTTPClientError):
        if exc.code in (401, 403):
            return AuthenticationFailed(*_token_advice(exc.code, endpoint))
        if exc.code == 404:
            return ConnectionFailed(
                f"{url} has no iotcable endpoint (HTTP 404). Give the Jupyter server's base "
                "URL (like http://127.0.0.1:8888/, not a page such as .../lab), and check that "
                "the extension is enabled: jupyter server extension list"
            )
        if exc.code == 599:
            return ConnectionFailed(
                f"could not connect to {url}: {exc.message}{scheme_hint(endpoint)}"
            )
        return ConnectionFailed(f"the server at {url} answered HTTP {exc.code} ({exc.message})")
    if isinstance(exc, WebSocketError) and str(exc) == "Non-websocket response":
        return ConnectionFailed(
            f"{endpoint.websocket_url()} answered with a web page, not a websocket. Give the "
            "Jupyter server's base URL (like http://127.0.0.1:8888/, not a page such as .../lab)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed(
            f"could not connect to {url}: connection refused. Is the Jupyter server running "
            "at this address and port?"
        )
    if isinstance(exc, OSError | StreamClosedError | WebSocketError | TimeoutError):
        return ConnectionFailed(
            f"could not connect to {url}: {exc or type(exc).__name__}{scheme_hint(endpoint)}"
        )
    return ConnectionFailed(f"could not connect to {url}: {type(exc).__name__}: {exc}")


def scheme_hint(endpoint: Endpoint) -> str:
    """For an https URL that failed or got no answer: the server may speak plain http.

    Jupyter serves plain http by default, and an http server does not answer a TLS
    handshake: the attempt times out or breaks off, which reads like a busy server.
    """
    if not endpoint.base_url.startswith("https://"):
        return ""
    plain = "http://" + endpoint.base_url.removeprefix("https://")
    return (
        "; or the URL has the wrong scheme: a server that speaks plain http never "
        f"answers a TLS handshake, so try {plain}"
    )


def _token_advice(code: int, endpoint: Endpoint) -> tuple[str, str]:
    """What went wrong, and what to do in Python (the CLI says it with its options)."""
    if endpoint.token is None:
        return (
            f"the server at {endpoint.base_url} requires a token (HTTP {code}) and none was given",
            'connect(url, token="...") or set IOTCABLE_TOKEN',
        )
    return (
        f"the server at {endpoint.base_url} refused the token (HTTP {code}; token from "
        f"{endpoint.source})",
        'pass the server\'s token, as in connect(url, token="...")',
    )


async def get_json(endpoint: Endpoint, path: str, timeout: float) -> object:
    """GET ``{base}iotcable/api/{path}`` with the token; the decoded JSON body."""
    headers = {"Authorization": f"token {endpoint.token}"} if endpoint.token else {}
    client = AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(
            endpoint.api_url(path),
            headers=headers,
            connect_timeout=timeout,
            request_timeout=timeout,
        )
    except Exception as exc:
        raise describe_failure(exc, endpoint) from None
    finally:
        client.close()
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise ConnectionFailed(
            f"{endpoint.api_url(path)} did not answer JSON ({exc}): is this an iotcable server?"
        ) from None
