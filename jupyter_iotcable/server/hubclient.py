"""A user's server as a client of the iotcable hub service: same endpoints, no broker.

Under JupyterHub with the channel server running as a hub service
(``c.IoTCableApp.service_url``), a user's server holds no broker setting and runs no
bridge. It serves the same ``iotcable/cable`` and ``iotcable/api/...`` endpoints as
always, so the sidebar, ``connect()`` in a kernel (``IOTCABLE_URL``/``IOTCABLE_TOKEN``, a
kernel token as always) and the CLI need nothing new; behind them it relays to the
service, authenticated with the server's own ``$JUPYTERHUB_API_TOKEN``, which the hub
issued to this server's owner. The service resolves the owner, their groups and scopes
from the hub and decides every subscribe and publish; this server only authenticates
the local caller (the owner's browser, or a kernel's token) as for any other endpoint.

The websocket is relayed as bytes once both handshakes are done (the protocol is end to
end between client and service, which decides every command): see `CableProxy`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient
from tornado.websocket import WebSocketHandler, WebSocketProtocol13

from ..protocol import choose_subprotocol
from .base import IoTCableAuthMixin

log = logging.getLogger("jupyter_iotcable.server")

#: Largest frame relayed either way (the service enforces its own limit on what it reads).
MAX_FRAME = 64 << 20


@dataclass
class ServiceLink:
    """Where the service is and the credential this server uses there."""

    url: str  # the service's base URL, ending with "/"
    hub_token: str

    def http_url(self, path: str) -> str:
        return self.url + path

    def cable_url(self, query: dict[str, str]) -> str:
        parts = urlsplit(self.url + "iotcable/cable")
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.hub_token}"}

    def header_lines(self) -> list[str]:
        return [f"{name}: {value}" for name, value in self.headers().items()]

    def __repr__(self) -> str:
        return f"ServiceLink({self.url!r}, hub_token=***)"


def normalize_service_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "c.IoTCableApp.service_url must be the service's http(s) base URL, e.g. "
            f"http://127.0.0.1:10101/services/iotcable/, not {url!r}"
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _unreachable(link: ServiceLink, error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace(link.hub_token, "***")
    return f"the iotcable hub service at {link.url} is unreachable ({text})"


class ServiceAPIProxy(IoTCableAuthMixin, APIHandler):  # type: ignore[misc]
    """``iotcable/api/...`` relayed to the service as this server's owner."""

    def initialize(self, link: ServiceLink, path: str) -> None:
        self.link = link
        self.path = path

    async def _relay(self, method: str, path: str, body: bytes | None = None) -> None:
        link = self.link
        request = HTTPRequest(
            link.http_url(f"iotcable/api/{path}"),
            method=method,
            headers={**link.headers(), "Content-Type": "application/json"},
            body=body,
            request_timeout=30,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (TimeoutError, OSError, HTTPClientError) as e:
            reason = _unreachable(link, e)
            log.warning("iotcable: %s", reason)
            self.set_status(502)
            self.finish({"ok": False, "reason": reason})
            return
        code = response.code
        if code == 599:  # tornado's "no HTTP answer" (refused, reset, timed out)
            reason = _unreachable(link, response.error or OSError("no answer"))
            self.set_status(502)
            self.finish({"ok": False, "reason": reason})
            return
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        if code in (301, 302, 303, 307, 308) or (code in (401, 403) and not response.body):
            # The hub refused the server's token (a redirect to log in, or a bare 403).
            self.set_status(403)
            self.finish(
                {
                    "ok": False,
                    "reason": "the iotcable hub service refused this server's hub token "
                    "(the admin must grant access:services!service=iotcable to users and "
                    "to their servers' tokens; see docs/jupyterhub.md)",
                }
            )
            return
        self.finish(response.body)


class ChannelsProxy(ServiceAPIProxy):
    @web.authenticated
    async def get(self) -> None:
        await self._relay("GET", "channels")


class StatusProxy(ServiceAPIProxy):
    @web.authenticated
    async def get(self) -> None:
        await self._relay("GET", "status")


class PublishProxy(ServiceAPIProxy):
    @web.authenticated
    async def post(self, name: str) -> None:
        await self._relay("POST", f"channels/{name}/publish", self.request.body or b"")


class CableProxy(WebSocketMixin, IoTCableAuthMixin, JupyterHandler, WebSocketHandler):  # type: ignore[misc]
    """``iotcable/cable`` relayed to the service's cable, as bytes.

    The caller is authenticated here (as for any endpoint of this server); the service
    decides every subscribe and publish, so once both handshakes are done the two sockets
    are spliced: whatever bytes one side sends are written to the other, frames and all,
    without decoding or re-encoding them (both legs are uncompressed websockets; the
    client's frames stay masked, the service's unmasked, as each receiver expects), and the
    service's close frames, its 1008 on a withdrawn grant among them, reach the client as
    the service sent them. Whatever arrived while a write was pending goes out in one
    write, and nothing more is read from a side while the other has not taken the last
    write (back-pressure both ways, down to TCP). The relay adds no pings of its own: the
    service's (and the protocol's) pass through.
    """

    def initialize(self, link: ServiceLink) -> None:
        self.link = link
        self._offered: list[str] = []

    @property
    def max_message_size(self) -> int:
        return MAX_FRAME

    @property
    def ping_interval(self) -> int:
        return 0  # nothing may be written into the spliced stream but the service's bytes

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        self._offered = subprotocols
        choice = choose_subprotocol(subprotocols)
        return choice.value if choice is not None and subprotocols else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # the frames are passed as they are: no per-message deflate

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """Connect to the service, then relay until either side closes.

        Tornado reads frames from the client only once ``open`` returns, so until then the
        client's socket is the relay's alone; it returns with both sockets closed.
        """
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        link = self.link
        choice = choose_subprotocol(self._offered)
        query = {}
        sid = self.get_query_argument("sid", None)
        if sid:
            query["sid"] = sid
        offer = [choice.value] if choice is not None else self._offered
        try:
            service = await asyncio.wait_for(connect_cable(link, query, offer), 30)
        except ServiceRefused as e:
            reason = (
                "the iotcable hub service refused this server's hub token"
                if e.code in (302, 401, 403)
                else f"the iotcable hub service answered HTTP {e.code}"
            )
            self.close(1008, reason)
            return
        except (TimeoutError, OSError, StreamClosedError, ValueError) as e:
            self.close(1011, _unreachable(link, e)[:120])
            return
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        await splice(self.ws_connection.stream, service)


class ServiceRefused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code


async def connect_cable(link: ServiceLink, query: dict[str, str], offer: list[str]) -> IOStream:
    """The websocket handshake with the service's cable; the stream is then the caller's."""
    parts = urlsplit(link.cable_url(query))
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    stream = await TCPClient().connect(
        host, port, ssl_options=ssl.create_default_context() if secure else None
    )
    try:
        stream.set_nodelay(True)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *link.header_lines(),
        ]
        if offer:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(offer))
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await stream.read_until_regex(b"\r?\n\r?\n", max_bytes=65536)
        first, _, rest = head.decode("latin-1").partition("\n")
        status = httputil.parse_response_start_line(first.strip())
        if status.code != 101:
            raise ServiceRefused(status.code)
        headers = httputil.HTTPHeaders.parse(rest)
        if headers.get("Sec-WebSocket-Accept") != WebSocketProtocol13.compute_accept_value(key):
            raise ValueError("the service's websocket handshake answered the wrong key")
        if headers.get("Sec-WebSocket-Extensions"):
            raise ValueError("the service chose a websocket extension none was offered")
    except BaseException:
        stream.close()
        raise
    return stream


#: Read at most this much from one side before writing it to the other.
CHUNK = 1 << 16


async def _pipe(src: IOStream, dst: IOStream, scanner: FrameScanner | None = None) -> bool:
    """Copy src to dst until src ends (True) or dst can take no more (False).

    Each read takes whatever has arrived (frames in any number, or parts of one), so what
    piled up while the previous write was pending goes out as one write; the next read
    waits until dst's socket has taken that write.
    """
    while True:
        try:
            data = await src.read_bytes(CHUNK, partial=True)
        except StreamClosedError:
            return True
        if scanner is not None:
            scanner.feed(data)
        try:
            await dst.write(data)
        except StreamClosedError:
            return False


#: What the client sees when the service's socket ends without a close frame.
GONE = 1011, "the iotcable hub service closed the cable"


async def splice(client: IOStream, service: IOStream) -> None:
    """Relay both ways until the service's side ends (or the client's), then close both."""
    upward = asyncio.ensure_future(_pipe(client, service))
    scanner = FrameScanner()
    downward = asyncio.ensure_future(_pipe(service, client, scanner))
    try:
        await asyncio.wait((upward, downward), return_when=asyncio.FIRST_COMPLETED)
        if upward.done() and upward.result():
            service.close()  # the client went away: so does the service's socket
        await downward
        if scanner.between_frames and not scanner.closed and not client.closed():
            # The service went without a close frame: say so, as the frame-by-frame
            # relay did, so the client knows to resume.
            with contextlib.suppress(StreamClosedError):
                await client.write(close_frame(*GONE))
    finally:
        client.close()
        service.close()
        upward.cancel()
        downward.cancel()


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame (server to client)."""
    payload = struct.pack(">H", code) + reason.encode()[:123]
    return bytes((0x88, len(payload))) + payload


class FrameScanner:
    """Follows the frame boundaries in one direction's bytes, reading headers only.

    It knows where each frame ends and whether a close frame went by; payloads are
    skipped, never copied.
    """

    def __init__(self) -> None:
        self.skip = 0  # bytes of the current frame still to come
        self.partial = b""  # a header cut by the end of a read
        self.closed = False  # a close frame went by

    @property
    def between_frames(self) -> bool:
        return self.skip == 0 and not self.partial

    def feed(self, data: bytes) -> None:
        n = len(data)
        if self.skip >= n:
            self.skip -= n
            return
        if self.partial:  # rare: join the cut header to what follows
            data = self.partial + data
            n = len(data)
            self.partial = b""
            i = 0
        else:
            i = self.skip
        while i < n:
            at = i + 2
            if at > n:
                break
            second = data[i + 1]
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(data[at : at + 2], "big")
                at += 2
            elif size == 127:
                size = int.from_bytes(data[at : at + 8], "big")
                at += 8
            if second & 0x80:
                at += 4  # the masking key
            if at > n:
                break
            if data[i] & 0x0F == 0x8:
                self.closed = True
            i = at + size
        else:
            self.skip = i - n
            return
        self.partial = data[i:]
        self.skip = 0
