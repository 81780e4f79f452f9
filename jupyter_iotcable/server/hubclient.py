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

The websocket is relayed frame for frame (the protocol is end to end between client and
service), with back-pressure both ways: the next frame is read from one side only once
the other side's socket has taken the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketHandler,
    websocket_connect,
)

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
    """``iotcable/cable`` relayed to the service's cable, frame for frame."""

    def initialize(self, link: ServiceLink) -> None:
        self.link = link
        self.upstream: WebSocketClientConnection | None = None
        self._offered: list[str] = []
        self._pump: asyncio.Task[None] | None = None

    @property
    def max_message_size(self) -> int:
        return MAX_FRAME

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        self._offered = subprotocols
        choice = choose_subprotocol(subprotocols)
        return choice.value if choice is not None and subprotocols else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        link = self.link
        choice = choose_subprotocol(self._offered)
        query = {}
        sid = self.get_query_argument("sid", None)
        if sid:
            query["sid"] = sid
        request = HTTPRequest(link.cable_url(query), headers=link.headers(), request_timeout=30)
        offer = [choice.value] if choice is not None else self._offered
        try:
            self.upstream = await websocket_connect(
                request, subprotocols=offer or None, max_message_size=MAX_FRAME
            )
        except HTTPClientError as e:
            reason = (
                "the iotcable hub service refused this server's hub token"
                if e.code in (302, 401, 403)
                else f"the iotcable hub service answered HTTP {e.code}"
            )
            self.close(1008, reason)
            return
        except (TimeoutError, OSError) as e:
            self.close(1011, _unreachable(link, e)[:120])
            return
        self._pump = asyncio.ensure_future(self._downstream(self.upstream))

    async def _downstream(self, upstream: WebSocketClientConnection) -> None:
        """Service -> client, one frame at a time (the next once the client took it)."""
        while True:
            message = await upstream.read_message()
            if message is None:
                code = upstream.close_code or 1011
                reason = upstream.close_reason or "the iotcable hub service closed the cable"
                with contextlib.suppress(WebSocketClosedError):
                    self.close(code if code != 1005 else 1000, reason)
                return
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except WebSocketClosedError:
                upstream.close()
                return

    async def on_message(self, message: str | bytes) -> None:
        upstream = self.upstream
        if upstream is None:
            return
        try:
            await upstream.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            self.close(1011, "the iotcable hub service closed the cable")

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        super().on_close()
