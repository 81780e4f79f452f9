"""Who is asking inside a Jupyter server: Jupyter users as identities, the kernel token.

The engine's side of the question (``Identity``, ``allowed``, ``Access``) is in
:mod:`.access`, which does not depend on jupyter_server. Authentication is Jupyter's
(token or cookie, through the server's IdentityProvider); this module adds two things:

- the *kernel token*: minted at start, exported to kernels as ``IOTCABLE_TOKEN``, and
  accepted by the iotcable handlers only. A kernel can then read telemetry without
  holding the server's full token (which would open kernels, files and terminals).
- *principals* on each channel (``*``, ``user:NAME``, ``group:NAME``), checked on top of
  the server's Authorizer (resource ``iotcable``, actions ``read``/``write``).

Under JupyterHub, a request carries the hub's user model (name, groups, scopes). A
kernel-token request carries none, yet stands for the server's owner: ``HubOwner`` keeps
the owner's model (from the hub API at start, refreshed by each of the owner's own
requests) so that the kernel token gets the owner's hub groups and the server's
Authorizer sees the owner's scopes.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from jupyter_server.auth import User
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httputil import HTTPServerRequest

from .access import Identity, allowed

__all__ = [
    "HubOwner",
    "Identity",
    "KernelToken",
    "allowed",
    "fetch_hub_user",
    "hub_groups",
    "identity_of",
    "kernel_token_user",
    "model_groups",
    "request_token",
]

TOKEN_HEADER = re.compile(r"(?:token|bearer)\s+(\S+)", re.IGNORECASE)


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


_NOTHING: frozenset[str] = frozenset()


def request_token(request: HTTPServerRequest) -> str | None:
    """The token a request carries: ``Authorization: token X`` or ``?token=X``."""
    match = TOKEN_HEADER.match(request.headers.get("Authorization", ""))
    if match:
        return match.group(1)
    values = request.query_arguments.get("token")
    if values:
        return values[-1].decode("utf-8", "replace")
    return None


def model_groups(model: object) -> frozenset[str]:
    """The ``groups`` of a JupyterHub user model (empty when absent or malformed)."""
    if isinstance(model, Mapping):
        groups = model.get("groups") or ()
        if isinstance(groups, Iterable) and not isinstance(groups, str):
            return frozenset(str(g) for g in groups)
    return frozenset()


def hub_groups(user: object) -> frozenset[str]:
    """Groups JupyterHub attached to the user model, when running under a hub."""
    return model_groups(getattr(user, "hub_user", None))


def hub_scopes(user: object) -> frozenset[str]:
    """The ``scopes`` of the request's JupyterHub user model (empty when absent)."""
    model = getattr(user, "hub_user", None)
    if isinstance(model, Mapping):
        scopes = model.get("scopes") or ()
        if isinstance(scopes, Iterable) and not isinstance(scopes, str):
            return frozenset(str(s) for s in scopes)
    return frozenset()


class HubOwner:
    """What JupyterHub says about the server's owner: their user model, as last seen.

    A model lacking ``groups`` (a token without the ``read:users:groups`` scope) keeps
    the groups learned before; any other field is replaced by the newer model.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._model: dict[str, Any] | None = None

    def learn(self, model: object) -> bool:
        """Remember ``model`` if it is the owner's; return whether it was."""
        if not isinstance(model, Mapping) or model.get("name") != self.owner:
            return False
        merged = dict(model)
        if "groups" not in merged and self._model is not None and "groups" in self._model:
            merged["groups"] = self._model["groups"]
        self._model = merged
        return True

    @property
    def model(self) -> dict[str, Any] | None:
        return None if self._model is None else dict(self._model)

    @property
    def groups(self) -> frozenset[str]:
        return model_groups(self._model)


async def fetch_hub_user(api_url: str, token: str) -> tuple[object, str | None]:
    """``GET {api_url}/user`` with the server's hub token: its owner's model, or why not.

    The model has the owner's groups when the token may read them (``read:users:groups``),
    and the token's scopes. The problem text never contains the token.
    """
    request = HTTPRequest(
        url_path_join(api_url, "user"),
        headers={"Authorization": f"token {token}"},
        request_timeout=10,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
        return orjson.loads(response.body), None
    except Exception as e:  # any failure only delays learning the groups
        return None, f"{type(e).__name__}: {e}".replace(token, "***")


def kernel_token_user(owner: str, hub_owner: HubOwner | None) -> User:
    """The Jupyter user a kernel-token request acts as: the owner, with their hub model.

    JupyterHub's Authorizer reads ``user.hub_user`` (the scopes); without a known model the
    owner gets an empty one, so a hub Authorizer refuses rather than fails.
    """
    user = User(username=owner, name=owner, display_name=owner)
    if hub_owner is not None:
        model = hub_owner.model or {"name": owner, "groups": [], "scopes": []}
        # jupyter_server's User is a plain dataclass: the attribute rides along as
        # JupyterHub's own JupyterHubUser carries it.
        user.hub_user = model  # type: ignore[attr-defined]
    return user


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
    hub's identity gives the real name and the hub groups; a kernel-token user carries
    the owner's hub model (see ``kernel_token_user``), so it gets the owner's groups.
    """
    if via_kernel_token or not under_hub:
        username = owner
    else:
        username = str(getattr(user, "username", "") or owner)
    groups = set(hub_groups(user)) if under_hub else set()
    groups.update(g for g, members in configured_groups.items() if username in members)
    # A kernel-token request carries the owner's model as last seen, whose scopes are
    # those of another credential: only a request's own scopes count.
    scopes = hub_scopes(user) if under_hub and not via_kernel_token else _NOTHING
    # Every connection keeps its identity: the common empty sets are shared.
    return Identity(username, frozenset(groups) if groups else _NOTHING, via_kernel_token, scopes)
