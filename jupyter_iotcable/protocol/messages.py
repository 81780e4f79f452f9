"""The protocol's vocabulary: subprotocols, wire literals, history requests and rows.

Every literal that appears on the wire is a ``StrEnum`` member here, so the server,
the client and the TypeScript mirror (labextension/src/protocol) share one spelling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from .codec import explain_decode_error
from .errors import LocalProtocolError, RemoteProtocolError, describe

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .codec import Codec

__all__ = [
    "PLAIN_HISTORY_REASON",
    "PREFERENCE",
    "BrokerState",
    "CommandName",
    "DisconnectReason",
    "ErrorCode",
    "HistoryRequest",
    "MessageType",
    "Row",
    "StreamPosition",
    "Subprotocol",
    "choose_subprotocol",
    "decode_json",
    "epoch_run",
    "finite_float",
]


class Subprotocol(StrEnum):
    """The websocket subprotocols we speak, named as on the wire."""

    IOTCABLE = "iotcable-v1-json"
    EXT = "actioncable-v1-ext-json"
    PLAIN = "actioncable-v1-json"

    @property
    def extended(self) -> bool:
        """Offsets, epochs, ``history`` and session resume are available."""
        return self is not Subprotocol.PLAIN

    @property
    def batched(self) -> bool:
        """Rows travel as one ``batch`` frame instead of one data frame per row."""
        return self is Subprotocol.IOTCABLE


PREFERENCE: tuple[Subprotocol, ...] = (Subprotocol.IOTCABLE, Subprotocol.EXT, Subprotocol.PLAIN)


def choose_subprotocol(offered: Sequence[str]) -> Subprotocol | None:
    """Pick the subprotocol to answer a client's ``Sec-WebSocket-Protocol`` offer with.

    An empty offer means a client that predates subprotocols: it gets the plain protocol
    and the caller sends no header back. An offer naming none of ours returns ``None``:
    the caller refuses the connection (``actioncable-unsupported`` is never selected,
    that would make ``@rails/actioncable`` close for good).
    """
    if not offered:
        return Subprotocol.PLAIN
    for candidate in PREFERENCE:
        if candidate.value in offered:
            return candidate
    return None


class CommandName(StrEnum):
    """The ``command`` of a client frame."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MESSAGE = "message"
    HISTORY = "history"
    PONG = "pong"


class MessageType(StrEnum):
    """The ``type`` of a server frame (data frames and transmissions have none)."""

    WELCOME = "welcome"
    PING = "ping"
    CONFIRM_SUBSCRIPTION = "confirm_subscription"
    REJECT_SUBSCRIPTION = "reject_subscription"
    DISCONNECT = "disconnect"
    CONFIRM_HISTORY = "confirm_history"
    REJECT_HISTORY = "reject_history"
    BROKER = "broker"
    ERROR = "error"


class DisconnectReason(StrEnum):
    """The ``reason`` of a ``disconnect`` frame."""

    UNAUTHORIZED = "unauthorized"
    INVALID_REQUEST = "invalid_request"
    SERVER_RESTART = "server_restart"
    TOO_SLOW = "too_slow"
    TOKEN_EXPIRED = "token_expired"

    @property
    def required_reconnect(self) -> bool | None:
        """The ``reconnect`` flag the spec fixes for this reason (``None``: free)."""
        return _REQUIRED_RECONNECT.get(self)


_REQUIRED_RECONNECT = {
    DisconnectReason.UNAUTHORIZED: False,
    DisconnectReason.TOKEN_EXPIRED: False,
    DisconnectReason.SERVER_RESTART: True,
    DisconnectReason.TOO_SLOW: True,
}


class BrokerState(StrEnum):
    """The health of the server's MQTT link: one vocabulary for the bridge, the status
    page and the ``state`` of a ``broker`` frame.

    ``connecting`` is the first attempt after the server started (clients connect later,
    so a ``broker`` frame says it only if the bridge restarts); ``disconnected`` is a
    bridge that was stopped (the server is shutting down).
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


class ErrorCode(StrEnum):
    """Codes of :class:`~.errors.RemoteProtocolError` and of ``error`` frames.

    The server puts the first group in the ``reason`` of an error frame; the client
    reports the last group in ``ServerError`` events.
    """

    MALFORMED_JSON = "malformed_json"
    INVALID_COMMAND = "invalid_command"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_IDENTIFIER = "bad_identifier"
    NOT_SUBSCRIBED = "not_subscribed"
    INVALID_DATA = "invalid_data"
    BAD_HISTORY = "bad_history"
    # client side: what the server sent could not be understood
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_MESSAGE = "unknown_message"


PLAIN_HISTORY_REASON = "history needs the actioncable-v1-ext-json or iotcable-v1-json subprotocol"

Row = tuple[int, float, str, object, str | None]
"""One reading on a stream: ``(offset, time, topic, payload, error)``.

``time`` is unix seconds; ``error`` says why ``payload`` could not be decoded (then
``payload`` is the raw text), else ``None``.
"""


@dataclass(frozen=True)
class StreamPosition:
    """Where a reader is in a stream: it holds everything up to and including ``offset``.

    ``offset`` -1 means "nothing of this epoch yet".
    """

    epoch: str
    offset: int


def _frozen(mapping: Mapping[str, StreamPosition]) -> Mapping[str, StreamPosition]:
    return MappingProxyType(dict(mapping))


_HISTORY_EXAMPLE = (
    '{"since": 1700000000} or {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}'
)


@dataclass(frozen=True)
class HistoryRequest:
    """What a client asks to be replayed: readings after ``since`` and/or after positions.

    ``streams`` maps a stream id to the position the client already holds; the server
    sends what comes after it, or rejects the request when part of it is gone.
    """

    since: float | None = None
    streams: Mapping[str, StreamPosition] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.since is not None and not _is_unix_time(self.since):
            # Caught here, not when the command fails to encode as JSON later.
            raise LocalProtocolError(
                f"history since must be unix seconds (a finite number >= 0), got {self.since!r}"
            )
        object.__setattr__(self, "streams", _frozen(self.streams))

    def to_wire(self) -> dict[str, object]:
        """The ``history`` value of a command, keys in spec order."""
        wire: dict[str, object] = {}
        if self.since is not None:
            wire["since"] = self.since
        if self.streams:
            wire["streams"] = {
                stream_id: {"offset": pos.offset, "epoch": pos.epoch}
                for stream_id, pos in self.streams.items()
            }
        return wire

    @classmethod
    def from_wire(cls, value: object) -> HistoryRequest:
        """Check and convert a ``history`` value; ``RemoteProtocolError("bad_history")``."""
        if not isinstance(value, dict):
            raise _bad_history(
                f"history must be an object like {_HISTORY_EXAMPLE}, got {describe(value)}"
            )
        since = value.get("since")
        if since is not None and not _is_unix_time(since):
            raise _bad_history(
                'history "since" must be unix seconds (a finite number >= 0), '
                f"got {describe(since)}"
            )
        streams = value.get("streams", {})
        if not isinstance(streams, dict):
            raise _bad_history(
                'history "streams" must be an object {STREAM_ID: {"offset": int, "epoch": str}}, '
                f"got {describe(streams)}"
            )
        if since is None and not streams:
            raise _bad_history(
                f'history needs "since" and/or non-empty "streams", e.g. {_HISTORY_EXAMPLE}'
            )
        return cls(
            since=None if since is None else float(since),
            streams={sid: _position_from_wire(sid, pos) for sid, pos in streams.items()},
        )


EPOCH_CONTINUATION = "."
"""Separates a server run's epoch from the number of a later epoch of the same run."""


def epoch_run(epoch: str) -> str:
    """The server run an epoch belongs to.

    A server start opens epoch ``RUN`` of every stream; when a stream loses continuity
    within that run (the server's bridge came back without its broker session, so what
    was published meanwhile is gone), it goes on in ``RUN.2``, ``RUN.3``... A client that
    sees the epoch change within one run knows the server did not restart: the readings
    between were lost upstream.
    """
    return epoch.split(EPOCH_CONTINUATION, 1)[0]


def finite_float(value: object) -> float | None:
    """A JSON number as a finite float, or ``None`` if it is not a number or is too big.

    Never raises: a codec other than ours may hand over NaN, infinities or integers of
    hundreds of digits, on which ``float()`` and ``math.isfinite`` raise ``OverflowError``.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _is_unix_time(value: object) -> bool:
    seconds = finite_float(value)
    return seconds is not None and seconds >= 0


def _position_from_wire(stream_id: str, value: object) -> StreamPosition:
    where = f'history "streams"["{stream_id}"]'
    if not isinstance(value, dict):
        raise _bad_history(
            f'{where} must be an object {{"offset": int, "epoch": str}}, got {describe(value)}'
        )
    offset = value.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < -1:
        raise _bad_history(f'{where}["offset"] must be an integer >= -1, got {describe(offset)}')
    epoch = value.get("epoch")
    if not isinstance(epoch, str) or not epoch:
        raise _bad_history(f'{where}["epoch"] must be a non-empty string, got {describe(epoch)}')
    return StreamPosition(epoch=epoch, offset=offset)


def _bad_history(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_HISTORY, message)


def decode_json(text: str | bytes, codec: Codec) -> object:
    """Decode one frame; ``RemoteProtocolError("malformed_json")`` says why it is not JSON."""
    try:
        return codec.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(
            ErrorCode.MALFORMED_JSON, f"frame is {explain_decode_error(exc)}"
        ) from None
