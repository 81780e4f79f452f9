"""How to reach an MQTT broker: the URL, the credentials, the session and TLS options.

Everything here is validated when a ``BrokerSettings`` is built, so a typo in an admin's
config fails at start-up with a message that names the problem instead of turning into an
endless reconnect loop. The password never appears in ``repr``/``str`` of the settings, and
``redact`` is applied to every error text that leaves the bridge.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_PORTS",
    "PROTOCOLS",
    "BrokerConfigError",
    "BrokerSettings",
    "default_client_id",
    "parse_broker_url",
    "redact",
]

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
"""The IANA ports of MQTT over TCP and over TLS."""

PROTOCOLS = ("auto", "5", "3.1.1")
"""``auto`` tries MQTT 5 and falls back to 3.1.1 when the broker refuses it."""

MAX_SESSION_EXPIRY = 2**32 - 1
"""MQTT 5 encodes the session expiry interval as a four-byte integer."""

REDACTED = "***"


class BrokerConfigError(ValueError):
    """A broker setting that cannot work; the message says which one and why.

    ``fields`` names the ``BrokerSettings`` fields at fault, so that a caller with its own
    names for them (the server's ``c.IoTCableApp.broker_*``) can say which key to fix.
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


def default_client_id(user: str, host: str, place: str) -> str:
    """A client id for one server: the same on every restart, different for another server.

    MQTT brokers allow one connection per client id; a second client with the same id
    takes the session over, and two servers sharing an id would keep stealing it from
    each other (each receiving part of the readings). ``user``, ``host`` and ``place``
    (what tells two servers of one user on one host apart) are hashed, so the id is short
    and shows no paths; the user name stays readable for the broker's admin.
    """
    digest = hashlib.sha256("\0".join((user, host, place)).encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_-]", "", user)[:16] or "user"
    return f"jupyter-iotcable-{readable}-{digest}"


def _process_client_id() -> str:
    """The default for a ``BrokerSettings`` built without one: this user, host and directory."""
    return default_client_id(getpass.getuser(), socket.gethostname(), os.getcwd())


def _shown(url: str) -> str:
    """The URL as an error message may show it: any ``user:password@`` part hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """Split ``mqtt://host:port`` or ``mqtts://host:port`` into ``(host, port, tls)``.

    The port defaults to 1883 for ``mqtt`` and 8883 for ``mqtts``. Credentials in the URL are
    refused rather than silently used: they would end up in logs and status pages, so they
    belong in the ``username`` / ``password`` settings.
    """
    if not isinstance(url, str) or not url.strip():
        raise BrokerConfigError(
            "the broker URL is empty; expected mqtt://host:port or mqtts://host:port"
        )
    shown = _shown(url)
    if url != url.strip() or any(c.isspace() for c in url):
        raise BrokerConfigError(f"the broker URL {shown!r} contains whitespace")
    if "://" not in url:
        raise BrokerConfigError(
            f"the broker URL {shown!r} has no scheme; expected mqtt://{url} or mqtts://{url}"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BrokerConfigError(f"the broker URL {shown!r} is malformed ({exc})") from None
    try:
        port = parts.port
    except ValueError as exc:
        raise BrokerConfigError(
            f"the broker URL {shown!r} has an invalid port ({exc}); expected a number 1-65535"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BrokerConfigError(
            f"the broker URL {shown!r} has the scheme {parts.scheme!r}; "
            "expected mqtt:// (plain TCP) or mqtts:// (TLS)"
        )
    if parts.username is not None or parts.password is not None:
        raise BrokerConfigError(
            f"the broker URL {shown!r} contains credentials; "
            "set the broker username and password separately, not in the URL"
        )
    host = parts.hostname
    if not host:
        raise BrokerConfigError(f"the broker URL {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerConfigError(
            f"the broker URL {shown!r} has a path, query or fragment; "
            "expected only mqtt://host:port or mqtts://host:port"
        )
    if port == 0:
        raise BrokerConfigError(
            f"the broker URL {shown!r} has the port 0; expected a number 1-65535"
        )
    return host, port if port is not None else DEFAULT_PORTS[scheme], scheme == "mqtts"


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``.

    A secret is also looked for in its ``repr`` form (quotes and backslashes escaped), because
    library error messages often show values through ``repr``.
    """
    variants = {
        form for secret in secrets if secret for form in (secret, repr(secret)[1:-1]) if form
    }
    # Longest first, so that a secret containing another one is hidden whole.
    for form in sorted(variants, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how the bridge presents itself to it.

    ``client_id`` stays the same across restarts so that the broker keeps our session
    (subscriptions and the QoS 1 messages published while we were away) for
    ``session_expiry`` seconds; ``session_expiry=0`` asks for a clean session every time.
    Its default is derived from the user, the host and the working directory (see
    ``default_client_id``), never one fixed name that every process would share.
    ``protocol`` is ``auto`` (MQTT 5, falling back to 3.1.1 if the broker refuses it), ``5``
    or ``3.1.1``. ``timeout`` bounds the wait for the broker's answer to a CONNECT,
    SUBSCRIBE or PUBLISH.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = field(default_factory=_process_client_id)
    keepalive: int = 30
    session_expiry: int = 3600
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    protocol: str = "auto"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        try:
            _host, _port, tls = parse_broker_url(self.url)
        except BrokerConfigError as exc:
            raise BrokerConfigError(str(exc), "url") from None
        if self.password is not None and self.username is None:
            raise BrokerConfigError("a broker password was given without a username", "password")
        if self.username is not None and not self.username:
            raise BrokerConfigError(
                "the broker username is empty; leave it unset instead", "username"
            )
        if not self.client_id or len(self.client_id.encode()) > 65_535:
            raise BrokerConfigError(
                "the MQTT client id must be a non-empty string of at most 65,535 bytes",
                "client_id",
            )
        if isinstance(self.keepalive, bool) or not 5 <= self.keepalive <= 65_535:
            raise BrokerConfigError(
                f"keepalive must be between 5 and 65535 seconds, not {self.keepalive!r}",
                "keepalive",
            )
        if isinstance(self.session_expiry, bool) or not (
            0 <= self.session_expiry <= MAX_SESSION_EXPIRY
        ):
            raise BrokerConfigError(
                f"session_expiry must be between 0 and {MAX_SESSION_EXPIRY} seconds, "
                f"not {self.session_expiry!r}",
                "session_expiry",
            )
        if self.protocol not in PROTOCOLS:
            raise BrokerConfigError(
                f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}",
                "protocol",
            )
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise BrokerConfigError(
                f"timeout must be a positive number of seconds, not {self.timeout!r}",
                "timeout",
            )
        tls_options = [
            name
            for name in ("ca_certs", "certfile", "keyfile", "tls_insecure")
            if getattr(self, name)
        ]
        if tls_options and not tls:
            raise BrokerConfigError(
                f"{', '.join(tls_options)} only appl{'y' if len(tls_options) > 1 else 'ies'} "
                "to TLS connections; "
                f"use an mqtts:// URL instead of {_shown(self.url)!r}",
                *tls_options,
            )
        if self.keyfile and not self.certfile:
            raise BrokerConfigError("keyfile was given without certfile", "keyfile")

    @property
    def host(self) -> str:
        return parse_broker_url(self.url)[0]

    @property
    def port(self) -> int:
        return parse_broker_url(self.url)[1]

    @property
    def tls(self) -> bool:
        return parse_broker_url(self.url)[2]

    @property
    def address(self) -> str:
        """``host:port`` as logs and status show it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def redact(self, text: str) -> str:
        """``text`` with this broker's password hidden."""
        return redact(text, self.password)
