"""Channel identifiers: the opaque strings that name a subscription.

A client subscribes with an identifier such as ``{"channel":"telemetry","topic":"a/+"}``
and the server echoes that exact string in every frame about the subscription, so the
machines keep the string as the key and parse it only to learn the channel and params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .codec import JSON_CODEC, explain_decode_error
from .errors import LocalProtocolError, RemoteProtocolError, describe, excerpt
from .messages import ErrorCode

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_CHANNEL_LENGTH", "ChannelRef", "make_identifier", "parse_identifier"]

MAX_CHANNEL_LENGTH = 200
_EXAMPLE = '{"channel":"telemetry","topic":"plant/+/+/env"}'


@dataclass(frozen=True)
class ChannelRef:
    """What an identifier names: a channel and its string params (``topic``...)."""

    channel: str
    params: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        # Hashable so that the hub can group subscribers by what they subscribed to.
        return hash((self.channel, frozenset(self.params.items())))

    @property
    def topic(self) -> str | None:
        """The optional narrower MQTT filter inside the channel."""
        return self.params.get("topic")


def make_identifier(channel: str, **params: str) -> str:
    """Build an identifier the way the JS clients do (``JSON.stringify``, params in order)."""
    if not 1 <= len(channel) <= MAX_CHANNEL_LENGTH:
        raise LocalProtocolError(
            f"channel must be 1 to {MAX_CHANNEL_LENGTH} characters, got {len(channel)}"
        )
    _check_unicode(f'channel "{excerpt(channel)}"', channel)
    for key, value in params.items():
        _check_unicode(f'param name "{excerpt(key)}"', key)
        _check_unicode(f'param "{excerpt(key)}" ("{excerpt(value)}")', value)
    return json.dumps({"channel": channel, **params}, separators=(",", ":"), ensure_ascii=False)


def _check_unicode(what: str, text: str) -> None:
    """Refuse a lone surrogate now: the identifier could never be sent (the frame holding
    it cannot be encoded as UTF-8), and the error would surface later, at the socket."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = f"\\u{ord(text[exc.start]):04x}"
        raise LocalProtocolError(
            f"{what} holds a lone surrogate ({code} at character {exc.start}), which cannot "
            "be sent as UTF-8; pass valid Unicode text"
        ) from None


def parse_identifier(identifier: str) -> ChannelRef:
    """Read the channel and params of an identifier; ``RemoteProtocolError("bad_identifier")``."""
    try:
        value = JSON_CODEC.loads(identifier)
    except (ValueError, RecursionError) as exc:
        raise _bad(
            f"identifier must be a JSON object string like {_EXAMPLE}, "
            f"got {excerpt(identifier)} ({explain_decode_error(exc)})"
        ) from None
    if not isinstance(value, dict):
        raise _bad(
            f"identifier must be a JSON object string like {_EXAMPLE}, got {describe(value)}"
        )
    channel = value.get("channel")
    if not isinstance(channel, str) or not 1 <= len(channel) <= MAX_CHANNEL_LENGTH:
        raise _bad(
            f'identifier needs a "channel" string of 1 to {MAX_CHANNEL_LENGTH} characters, '
            f"got {describe(channel)}"
        )
    params: dict[str, str] = {}
    for key, param in value.items():
        if key == "channel":
            continue
        if not isinstance(param, str):
            raise _bad(f'identifier param "{excerpt(key)}" must be a string, got {describe(param)}')
        params[key] = param
    return ChannelRef(channel=channel, params=params)


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_IDENTIFIER, message)
