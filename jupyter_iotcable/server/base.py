"""Authentication and authorization shared by the iotcable handlers.

Jupyter's IdentityProvider authenticates as for every other endpoint. In addition the
iotcable handlers (and only they) accept the kernel token the extension minted, which
kernels inherit as ``IOTCABLE_TOKEN``; it acts as the server's owner. Authorization has
two layers, for every request whatever its credential: the server's Authorizer (resource
``iotcable``, actions ``read`` and ``write``, so a JupyterHub custom scope can gate it) and
the channel's principals.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jupyter_server.utils import ensure_async
from tornado import web
from tornado.log import app_log, gen_log

from .access import Access, Identity, PrincipalAccess, allowed
from .auth import HubOwner, KernelToken, identity_of, kernel_token_user, request_token

RESOURCE = "iotcable"

SECRET_PARAMS = ("token", "auth", "key", "code", "state", "xsrf", "password", "secret")
"""Query parameters whose values never reach a log line (any name holding one of these)."""


def scrub_uri(uri: str) -> str:
    """``uri`` with the value of every secret-looking query parameter replaced.

    Tornado's request summary (``METHOD URI (IP)``), which it logs for every ``HTTPError``
    with a log message and for every uncaught exception, holds the raw URI: a ``?token=``
    there (the kernel token, the server's own, or a wrong one that differs from the right
    one by a typo) would end up in the server's log. Unparseable queries are dropped whole.
    """
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return f"{path}?[scrubbed]"
    scrubbed = [
        (name, "[secret]" if any(word in name.lower() for word in SECRET_PARAMS) else value)
        for name, value in pairs
    ]
    return f"{path}?{urlencode(scrubbed, safe='[]/:+,')}"


class ScrubbedLogMixin:
    """Log lines about a request without its secrets: for every iotcable handler.

    Replaces tornado's ``_request_summary`` (the raw URI) and ``log_exception`` (which also
    logs ``repr(request)``, the raw URI again) with versions that scrub the query.
    """

    def _request_summary(self) -> str:
        request = self.request  # type: ignore[attr-defined]
        return f"{request.method} {scrub_uri(request.uri or '')} ({request.remote_ip})"

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, web.HTTPError):
            message = value.get_message()
            if message:
                gen_log.warning("%d %s: %s", value.status_code, self._request_summary(), message)
            return
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=value)


class IoTCableAuthMixin(ScrubbedLogMixin):
    """Mixed into JupyterHandler subclasses that have ``self.engine``."""

    _via_kernel_token = False
    _identity: Identity | None = None

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        token = request_token(self.request)  # type: ignore[attr-defined]
        kernel_token: KernelToken = self.settings["iotcable_kernel_token"]  # type: ignore[attr-defined]
        if kernel_token.matches(token):
            if not self.check_host():  # type: ignore[attr-defined]
                raise web.HTTPError(403)
            self._via_kernel_token = True
            owner = self.settings["iotcable_owner"]  # type: ignore[attr-defined]
            user = kernel_token_user(owner, self._hub_owner)
            self.current_user = self._jupyter_current_user = user
            return None
        result = await super().prepare(*args, **kwargs)  # type: ignore[misc]
        if self._hub_owner is not None:
            # The owner's own requests keep their hub model (groups, scopes) current for
            # the kernel token, which stands for them.
            self._hub_owner.learn(getattr(self.current_user, "hub_user", None))
        return result

    @property
    def _hub_owner(self) -> HubOwner | None:
        """The owner's JupyterHub model holder; None when not running under a hub."""
        hub_owner: HubOwner | None = self.settings.get("iotcable_hub_owner")  # type: ignore[attr-defined]
        return hub_owner

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
                under_hub=self._hub_owner is not None,
                configured_groups=settings.get("iotcable_groups", {}),
                via_kernel_token=self._via_kernel_token,
            )
        return self._identity

    def allowed(self, principals: tuple[str, ...] | list[str]) -> bool:
        return allowed(principals, self.identity)

    async def access_of_user(self) -> Access:
        """What this request's user may do: the Authorizer asked once per action."""
        return PrincipalAccess(
            self.identity, await self.authorized_for("read"), await self.authorized_for("write")
        )

    async def authorized_for(self, action: str) -> bool:
        """The server's Authorizer decision, for the kernel token too (as the owner).

        The kernel token must not be a way around an Authorizer that refuses the owner,
        e.g. a JupyterHub custom scope granting read but not write.
        """
        authorizer = self.authorizer  # type: ignore[attr-defined]
        decision = await ensure_async(
            authorizer.is_authorized(self, self.current_user, action, RESOURCE)
        )
        return bool(decision)
