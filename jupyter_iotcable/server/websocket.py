"""``{base_url}iotcable/cable`` in a Jupyter server: Jupyter's authentication over the cable.

What is Jupyter's lives here: the handler is a ``JupyterHandler`` (token or cookie, the
Origin check for cookie auth, ``@ws_authenticated``), accepts the kernel token, and asks
the server's Authorizer (resource ``iotcable``) once, when the socket opens. The answers
and the channels' principals become the connection's
:class:`~.access.PrincipalAccess`. Everything else is the tornado adapter
(:class:`~.cable_socket.CableSocket`) over the sans-I/O session
(:class:`~.session.CableSession`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WS_PING_INTERVAL, WebSocketMixin
from tornado import web

from .base import IoTCableAuthMixin
from .cable_socket import CableSocket
from .engine import CableEngine

__all__ = ["CableHandler"]


class CableHandler(WebSocketMixin, IoTCableAuthMixin, JupyterHandler, CableSocket):  # type: ignore[misc]
    engine: CableEngine

    # Jupyter's websocket keepalive settings (milliseconds), applied by the engine's
    # heartbeat (CableSocket.keepalive) rather than by a timer per connection.
    ping_interval = CableSocket.ping_interval
    on_pong = CableSocket.on_pong

    @property
    def keepalive_interval(self) -> float:  # type: ignore[override]
        interval: float = self.settings.get("ws_ping_interval", WS_PING_INTERVAL) / 1000
        return interval if interval > 0 else float("inf")

    @property
    def keepalive_timeout(self) -> float:  # type: ignore[override]
        interval = self.settings.get("ws_ping_interval", WS_PING_INTERVAL)
        timeout: float = self.settings.get("ws_ping_timeout", max(3 * interval, WS_PING_INTERVAL))
        return timeout / 1000

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        access = await self.access_of_user()
        if not (access.authorized_read or access.authorized_write):
            raise web.HTTPError(403, "not allowed to use iotcable channels")
        self.access = access
        await super().get(*args, **kwargs)
