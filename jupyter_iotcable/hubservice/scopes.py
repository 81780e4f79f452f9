"""JupyterHub custom scopes for channels: names, the hub's definitions, the checks (pure).

A channel ``NAME`` is gated by two custom scopes (JupyterHub >= 3, ``custom_scopes``):
``custom:iotcable:read:NAME`` and ``custom:iotcable:write:NAME``; the write scope has the
read scope as a subscope, so granting write grants read. JupyterHub allows only lowercase
ASCII letters, digits and ``-_:*`` in a custom scope, so a channel whose name has other
characters cannot be gated by a scope (its principals still apply): ``scope_for`` says so.

This module imports the standard library only: ``jupyterhub_config.py`` imports it to
write the hub's ``custom_scopes`` and roles without importing the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PREFIX = "custom:iotcable"
ACTIONS = ("read", "write")

# JupyterHub's own rule for a custom scope (jupyterhub/scopes.py).
_CUSTOM_SCOPE = re.compile(r"^custom:[a-z0-9][a-z0-9_\-\*:]+[a-z0-9_\*]$")
_CHANNEL_PART = re.compile(r"^[a-z0-9_\-]+$")


class ScopeNameError(ValueError):
    """A channel name that cannot be part of a JupyterHub custom scope."""


def scope_for(action: str, channel: str) -> str:
    """``custom:iotcable:ACTION:CHANNEL``; raises ScopeNameError for an unusable name."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    if not _CHANNEL_PART.match(channel):
        raise ScopeNameError(
            f"channel {channel!r} cannot be gated by a JupyterHub custom scope: a scope may "
            "hold only lowercase letters, digits, '-' and '_' there (rename the channel, or "
            "gate it with 'user:' and 'group:' principals only)"
        )
    scope = f"{PREFIX}:{action}:{channel}"
    assert _CUSTOM_SCOPE.match(scope), scope
    return scope


def scopable(channel: str) -> bool:
    return bool(_CHANNEL_PART.match(channel))


def custom_scopes(channels: Iterable[str]) -> dict[str, dict[str, object]]:
    """``c.JupyterHub.custom_scopes`` for these channels (write implies read).

    Channels whose names cannot be scopes are left out (see ``scope_for``).
    """
    scopes: dict[str, dict[str, object]] = {}
    for name in sorted(set(channels)):
        if not scopable(name):
            continue
        read, write = scope_for("read", name), scope_for("write", name)
        scopes[read] = {"description": f"Read the iotcable channel {name!r}"}
        scopes[write] = {
            "description": f"Publish to the iotcable channel {name!r}",
            "subscopes": [read],
        }
    return scopes


def granted(scopes: Iterable[str], action: str, channel: str) -> bool:
    """Whether a hub user model's ``scopes`` hold ACTION on CHANNEL.

    The hub expands subscopes before it answers (a write grant lists the read scope too),
    and filters (``!user=...``) never apply to custom scopes, so an exact match is the
    check; ``write`` also counts for ``read`` in case a hub answers unexpanded.
    """
    if not scopable(channel):
        return False
    held = set(scopes)
    if scope_for(action, channel) in held:
        return True
    return action == "read" and scope_for("write", channel) in held


def server_token_scopes(service: str, channels: Iterable[str]) -> list[str]:
    """``c.Spawner.server_token_scopes`` so a user's server may reach the service as them.

    The hub gives ``$JUPYTERHUB_API_TOKEN`` the subset of these that the user holds when
    the server starts, and drops at each request what the user no longer holds.
    """
    scopes = [
        "access:servers!server",
        "users:activity!user",
        f"access:services!service={service}",
    ]
    for name in sorted(set(channels)):
        if scopable(name):
            scopes += [scope_for("read", name), scope_for("write", name)]
    return scopes


def oauth_client_allowed_scopes(channels: Iterable[str]) -> list[str]:
    """The service's ``oauth_client_allowed_scopes``: the channel scopes a browser login
    to the service may carry (the hub keeps only those the user holds)."""
    return [s for name in sorted(set(channels)) if scopable(name) for s in _both(name)]


def _both(name: str) -> tuple[str, str]:
    return scope_for("read", name), scope_for("write", name)
