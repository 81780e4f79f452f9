"""The service's handlers: the extension's, with a :class:`~.access.HubAccess` per request.

The REST handlers ask the hub about the request's credential anyway (cached); the
websocket keeps asking while it is open: at each command the client sends (the I/O
layer awaits ``Access.refresh`` first) and every ``recheck_interval`` seconds, when the
session drops the readings of a channel the user may no longer read
(:meth:`~jupyter_iotcable.server.session.CableSession.recheck_access`).
"""

from __future__ import annotations

from typing import Any

from tornado.ioloop import PeriodicCallback

from ..server.access import Access, Identity
from ..server.auth import identity_of
from ..server.handlers import ChannelsHandler, PublishHandler
from ..server.websocket import CableHandler
from .access import HubAccess


class HubAccessMixin:
    """``access_of_user`` answered by the hub, and asked again on ``refresh``."""

    async def access_of_user(self) -> Access:
        if getattr(self, "_via_kernel_token", False):  # no kernels here; as the extension
            return await super().access_of_user()  # type: ignore[misc, no-any-return]
        hub_auth = self.identity_provider.hub_auth  # type: ignore[attr-defined]
        token = hub_auth.get_token(self, in_cookie=True)
        session_id = hub_auth.get_session_id(self)
        settings = self.settings  # type: ignore[attr-defined]

        async def lookup() -> Identity | None:
            from jupyterhub.singleuser.extension import JupyterHubUser

            if not token:
                return None
            model = await hub_auth.user_for_token(token, session_id=session_id, sync=False)
            if not model or not hub_auth.check_scopes(hub_auth.access_scopes, model):
                return None
            return identity_of(
                JupyterHubUser(model),
                owner=settings["iotcable_owner"],
                under_hub=True,
                configured_groups=settings.get("iotcable_groups", {}),
            )

        return HubAccess(
            self.identity,  # type: ignore[attr-defined]
            lookup,
            authorized_read=await self.authorized_for("read"),  # type: ignore[attr-defined]
            authorized_write=await self.authorized_for("write"),  # type: ignore[attr-defined]
        )


class ServiceChannelsHandler(HubAccessMixin, ChannelsHandler):  # type: ignore[misc]
    pass


class ServicePublishHandler(HubAccessMixin, PublishHandler):  # type: ignore[misc]
    pass


class ServiceCableHandler(HubAccessMixin, CableHandler):  # type: ignore[misc]
    """The cable, re-checking the user's grants while it is open."""

    recheck: PeriodicCallback | None = None

    def initialize(self, engine: Any, recheck_interval: float = 5.0) -> None:
        super().initialize(engine)
        self.recheck_interval = recheck_interval

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        if self.session is not None and not self.session.closing:
            self.recheck = PeriodicCallback(self._recheck, self.recheck_interval * 1000)
            self.recheck.start()

    async def _recheck(self) -> None:
        session = self.session
        if session is None or session.closing:
            return
        await self.access.refresh()
        if session.recheck_access():
            self._pump()

    def on_close(self) -> None:
        if self.recheck is not None:
            self.recheck.stop()
            self.recheck = None
        super().on_close()
