"""Who is asking and what they may do: the question the engine and the sessions ask.

The engine and the per-connection sessions never look at a request, a cookie or a token:
they are given an :class:`Access` when a connection opens (or a REST call comes) and ask
it at every decision (subscribe, publish, resume, the channel list, the status). Whoever
serves the channels answers it in their own terms:

- inside a Jupyter server, :class:`PrincipalAccess`: the server's Authorizer decisions
  (resource ``iotcable``, actions ``read``/``write``, asked once by the handler) and each
  channel's principals (``*``, ``user:NAME``, ``group:NAME``);
- as a JupyterHub service (issue 13), the hub's users, groups and custom scopes,
  looked up again while a connection is open (``hubservice/access.py``, ``HubAccess``).

No jupyter_server here (a test enforces it), so the same engine runs outside Jupyter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .config import ChannelConfig

__all__ = ["Access", "Identity", "PrincipalAccess", "allowed"]


@dataclass(frozen=True)
class Identity:
    """The user as the channel rules see them."""

    username: str
    groups: frozenset[str]
    via_kernel_token: bool = False
    # The hub's scopes for the request: JupyterHub custom scopes gate channels through
    # ``scope:`` principals, which the hub service adds to its channels (issue 13).
    scopes: frozenset[str] = frozenset()


def allowed(principals: Sequence[str], who: Identity) -> bool:
    """Does one of ``principals`` (``*``, ``user:NAME``, ``group:NAME``, ``scope:SCOPE``)
    name ``who``?"""
    for p in principals:
        if p == "*":
            return True
        kind, _, name = p.partition(":")
        if kind == "user" and name == who.username:
            return True
        if kind == "group" and name in who.groups:
            return True
        if kind == "scope" and name in who.scopes:
            return True
    return False


class Access(Protocol):
    """What one user may do with the channels, asked at every decision.

    ``can_read`` and ``can_write`` return ``None`` when allowed, else the reason the
    user is shown (in a ``reject_subscription``, a ``publish_result``, a 403);
    ``refused_both`` is the reason when neither is allowed (a subscription is refused
    then: it serves reading and publishing alike).
    ``refresh`` is awaited by the I/O layer before each command is handled, so that an
    access that caches what it learned elsewhere (hub scopes) can look again; the
    decisions themselves stay synchronous.
    """

    @property
    def identity(self) -> Identity: ...

    # The server's Authorizer answers (resource ``iotcable``), asked when the request came:
    # a connection without either is refused before it opens.
    @property
    def authorized_read(self) -> bool: ...

    @property
    def authorized_write(self) -> bool: ...

    def can_read(self, channel: ChannelConfig) -> str | None: ...

    def can_write(self, channel: ChannelConfig) -> str | None: ...

    def refused_both(self, channel: ChannelConfig) -> str: ...

    async def refresh(self) -> None: ...


@dataclass(frozen=True)
class PrincipalAccess:
    """Access inside a Jupyter server: the Authorizer's two answers, then the principals."""

    identity: Identity
    authorized_read: bool = True
    authorized_write: bool = True

    def can_read(self, channel: ChannelConfig) -> str | None:
        if self.authorized_read and allowed(channel.read, self.identity):
            return None
        return f"you may not read channel {channel.name!r}"

    def can_write(self, channel: ChannelConfig) -> str | None:
        if self.authorized_write and allowed(channel.write, self.identity):
            return None
        return f"you may not publish to channel {channel.name!r}"

    def refused_both(self, channel: ChannelConfig) -> str:
        return f"you may not read or publish to channel {channel.name!r}"

    async def refresh(self) -> None:
        """Nothing to look up again: the Authorizer was asked when the request came."""
