"""Who is asking, and what may they do: principals and the kernel-scoped token.

Authentication is Jupyter's (token or cookie, through the server's IdentityProvider);
this module adds two things:

- the *kernel token*: minted at start, exported to kernels as ``IOTCABLE_TOKEN``, and
  accepted by the iotcable handlers only. A kernel can then read telemetry without
  holding the server's full token (which would open kernels, files and terminals).
- *principals* on each channel (``*``, ``user:NAME``, ``group:NAME``), checked on top of
  the server's Authorizer (resource ``iotcable``, actions ``read``/``write``).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tornado.httputil import HTTPServerRequest

TOKEN_HEADER = re.compile(r"(?:token|bearer)\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    """The user as the channel rules see them."""

    username: str
    groups: frozenset[str]
    via_kernel_token: bool = False


class KernelToken:
    """A random secret that opens the iotcable endpoints and nothing else."""

    def __init__(self, value: str | None = None) -> None:
        self._value = value or secrets.token_urlsafe(32)

    @property
    def value(self) -> str:
        return self._value

    def matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self._value.encode()
        )

    def __repr__(self) -> str:
        return "KernelToken(***)"


def request_token(request: HTTPServerRequest) -> str | None:
    """The token a request carries: ``Authorization: token X`` or ``?token=X``."""
    match = TOKEN_HEADER.match(request.headers.get("Authorization", ""))
    if match:
        return match.group(1)
    values = request.query_arguments.get("token")
    if values:
        return values[-1].decode("utf-8", "replace")
    return None


def hub_groups(user: object) -> frozenset[str]:
    """Groups JupyterHub attached to the user model, when running under a hub."""
    hub_user = getattr(user, "hub_user", None)
    if isinstance(hub_user, Mapping):
        groups = hub_user.get("groups") or ()
        if isinstance(groups, Iterable):
            return frozenset(str(g) for g in groups)
    return frozenset()


def identity_of(
    user: object,
    *,
    owner: str,
    under_hub: bool,
    configured_groups: Mapping[str, Sequence[str]],
    via_kernel_token: bool = False,
) -> Identity:
    """Map a Jupyter user to the name and groups the channel principals use.

    On a single-user server everyone who authenticates (server token, login cookie or
    kernel token) is the server's owner, whose name is ``owner``. Under JupyterHub the
    hub's identity gives the real name and the hub groups.
    """
    if via_kernel_token or not under_hub:
        username = owner
    else:
        username = str(getattr(user, "username", "") or owner)
    groups = set(hub_groups(user)) if under_hub and not via_kernel_token else set()
    groups.update(g for g, members in configured_groups.items() if username in members)
    return Identity(username, frozenset(groups), via_kernel_token)


def allowed(principals: Sequence[str], who: Identity) -> bool:
    for p in principals:
        if p == "*":
            return True
        kind, _, name = p.partition(":")
        if kind == "user" and name == who.username:
            return True
        if kind == "group" and name in who.groups:
            return True
    return False
