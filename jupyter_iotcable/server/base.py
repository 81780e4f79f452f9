"""Authentication and authorization shared by the iotcable handlers.

Jupyter's IdentityProvider authenticates as for every other endpoint. In addition the
iotcable handlers (and only they) accept the kernel token the extension minted, which
kernels inherit as ``IOTCABLE_TOKEN``. Authorization has two layers: the server's
Authorizer (resource ``iotcable``, actions ``read`` and ``write``, so a JupyterHub
custom scope can gate it) and the channel's principals.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from jupyter_server.auth import User
from jupyter_server.utils import ensure_async
from tornado import web

from .auth import Identity, allowed, identity_of, request_token

if TYPE_CHECKING:
    from .engine import CableEngine

RESOURCE = "iotcable"


class IoTCableAuthMixin:
    """Mixed into JupyterHandler subclasses that have ``self.engine``."""

    engine: CableEngine
    _via_kernel_token = False
    _identity: Identity | None = None

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        token = request_token(self.request)  # type: ignore[attr-defined]
        if self.engine.kernel_token.matches(token):
            if not self.check_host():  # type: ignore[attr-defined]
                raise web.HTTPError(403)
            self._via_kernel_token = True
            owner = self.settings["iotcable_owner"]  # type: ignore[attr-defined]
            user = User(username=owner, name=owner, display_name=owner)
            self.current_user = self._jupyter_current_user = user
            return None
        return await super().prepare(*args, **kwargs)  # type: ignore[misc]

    def skip_check_origin(self) -> bool:
        # A token in a header or the query cannot be forged cross-site; cookies can.
        if self._via_kernel_token:
            return True
        return super().skip_check_origin()  # type: ignore[misc, no-any-return]

    def check_xsrf_cookie(self) -> None:
        if self._via_kernel_token:
            return
        super().check_xsrf_cookie()  # type: ignore[misc]

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            settings = self.settings  # type: ignore[attr-defined]
            self._identity = identity_of(
                self.current_user,
                owner=settings["iotcable_owner"],
                under_hub=bool(os.environ.get("JUPYTERHUB_API_TOKEN")),
                configured_groups=settings.get("iotcable_groups", {}),
                via_kernel_token=self._via_kernel_token,
            )
        return self._identity

    def allowed(self, principals: tuple[str, ...] | list[str]) -> bool:
        return allowed(principals, self.identity)

    async def authorized_for(self, action: str) -> bool:
        """The server's Authorizer decision (the kernel token acts for the owner)."""
        if self._via_kernel_token:
            return True
        authorizer = self.authorizer  # type: ignore[attr-defined]
        decision = await ensure_async(
            authorizer.is_authorized(self, self.current_user, action, RESOURCE)
        )
        return bool(decision)
