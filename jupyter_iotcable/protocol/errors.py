"""Protocol errors, split like h11's: who broke the rules decides what happens next.

A :class:`RemoteProtocolError` means the peer sent something invalid. The connection
machines never let it escape ``receive_text``: they answer it on the wire (server) or
turn it into an event (client), so one bad frame never ends a connection. A
:class:`LocalProtocolError` means our own code misused a machine (confirming a
subscription nobody asked for, sending before the welcome...): that is a bug to fix, so
it is raised to the caller.
"""

from __future__ import annotations

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "describe",
    "excerpt",
]


class ProtocolError(Exception):
    """Base class of every error raised by ``jupyter_iotcable.protocol``."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow.

    ``code`` is a short snake_case word (the ``reason`` of an error frame);
    ``message`` says what was wrong and what is expected, for a human.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RemoteProtocolError({self.code!r}, {self.message!r})"


class LocalProtocolError(ProtocolError):
    """Our own code used a connection machine in a way the protocol does not allow."""


def excerpt(text: str, limit: int = 60) -> str:
    """Quote peer-supplied text inside an error message, safely and briefly.

    The result is always valid UTF-8 (lone surrogates, which JSON ``\\u`` escapes can
    smuggle in, become backslash escapes) so that an error frame quoting it can always be
    written to the socket, and it is cut to ``limit`` characters so a huge frame does not
    come back as a huge error.
    """
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def describe(value: object) -> str:
    """Name a decoded JSON value for an error message: ``null``, ``3.5``, ``an array``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return excerpt(repr(value))
    if isinstance(value, int):
        try:
            return excerpt(repr(value))
        except ValueError:  # past Python's int-to-text limit (4300 digits)
            return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, str):
        return f'the string "{excerpt(value)}"' if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
