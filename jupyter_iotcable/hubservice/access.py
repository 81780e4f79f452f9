"""What a hub user may do on the service, looked up again while their connection lasts.

A websocket outlives the hub's answer it was opened with: the user's groups and custom
scopes can change while it is open. :class:`HubAccess` keeps the credential the
connection was opened with (the user's API token, or the OAuth token in the service's
cookie) and :meth:`HubAccess.refresh` asks the hub again who that is, through
``HubOAuth.user_for_token``, whose answers are cached ``HubOAuth.cache_max_age`` seconds:
so a grant taken away reaches an open connection within that time (at the next command,
or at the service's periodic re-check, whichever comes first). A credential the hub no
longer accepts leaves the user nothing.

Refusals say which scope grants the channel, so that a user can ask the hub's admin for
it (see :func:`scopes.scope_for`; a channel whose name cannot be a scope has no hint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..server.access import Identity, allowed
from .scopes import scopable, scope_for

if TYPE_CHECKING:
    from ..server.config import ChannelConfig

__all__ = ["HubAccess", "Lookup"]

log = logging.getLogger("jupyter_iotcable.server")

#: Looks the connection's credential up again: who it is now, or None when the hub no
#: longer accepts it (or no longer lets it reach the service).
Lookup = Callable[[], Awaitable[Identity | None]]


def _hint(action: str, channel: str) -> str:
    if not scopable(channel):
        return ""
    return f" (a hub admin can grant it with the scope {scope_for(action, channel)})"


@dataclass
class HubAccess:
    """Access on the hub service: the channels' principals over the hub's current answer.

    ``refresh`` looks the credential up at most every ``interval`` seconds (the hub's
    own cache answers in between anyway); the decisions read the last answer.
    """

    identity: Identity
    lookup: Lookup
    authorized_read: bool = True
    authorized_write: bool = True
    interval: float = 1.0
    _checked: float = field(default_factory=time.monotonic)
    #: False once the hub no longer accepts the credential: nothing is allowed then.
    valid: bool = True

    def can_read(self, channel: ChannelConfig) -> str | None:
        if self.valid and self.authorized_read and allowed(channel.read, self.identity):
            return None
        return f"you may not read channel {channel.name!r}" + _hint("read", channel.name)

    def can_write(self, channel: ChannelConfig) -> str | None:
        if self.valid and self.authorized_write and allowed(channel.write, self.identity):
            return None
        return f"you may not publish to channel {channel.name!r}" + _hint("write", channel.name)

    def refused_both(self, channel: ChannelConfig) -> str:
        hint = ""
        if scopable(channel.name):
            hint = (
                f" (a hub admin can grant reading with the scope "
                f"{scope_for('read', channel.name)}, publishing with "
                f"{scope_for('write', channel.name)})"
            )
        return f"you may not read or publish to channel {channel.name!r}{hint}"

    async def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return
        self._checked = now
        name = self.identity.username
        try:
            identity = await self.lookup()
        except Exception as e:  # the hub unreachable: keep the last answer
            log.warning("iotcable: could not ask the hub about %s again: %s", name, e)
            return
        if identity is None or identity.username != name:
            if self.valid:
                log.info("iotcable: the hub no longer accepts %s's credential", name)
            self.valid = False
            return
        self.identity = identity
