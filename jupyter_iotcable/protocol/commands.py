"""Client commands: the envelope of every frame a client sends.

``decode_command`` checks only the envelope (an object, a known ``command``, a string
``identifier``); the nested parts have their own checks (``parse_identifier``,
``HistoryRequest.from_wire``, ``decode_action``) so that the server can answer a bad
nested part precisely (a ``reject_subscription``, a ``reject_history``) instead of with
a generic error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .codec import explain_decode_error
from .errors import RemoteProtocolError, describe, excerpt
from .messages import CommandName, ErrorCode

if TYPE_CHECKING:
    from .codec import Codec

__all__ = [
    "Command",
    "HistoryCommand",
    "MessageCommand",
    "PongCommand",
    "SubscribeCommand",
    "UnsubscribeCommand",
    "decode_action",
    "decode_command",
]


@dataclass(frozen=True)
class SubscribeCommand:
    identifier: str
    history: object = None
    """The raw ``history`` value (``None`` when absent), checked by ``from_wire``."""

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"command": "subscribe", "identifier": self.identifier}
        if self.history is not None:
            wire["history"] = self.history
        return wire


@dataclass(frozen=True)
class UnsubscribeCommand:
    identifier: str

    def to_wire(self) -> dict[str, object]:
        return {"command": "unsubscribe", "identifier": self.identifier}


@dataclass(frozen=True)
class MessageCommand:
    identifier: str
    data: object
    """The raw ``data`` value: a JSON string when well formed, see ``decode_action``."""

    def to_wire(self) -> dict[str, object]:
        return {"command": "message", "identifier": self.identifier, "data": self.data}


@dataclass(frozen=True)
class HistoryCommand:
    identifier: str
    history: object

    def to_wire(self) -> dict[str, object]:
        return {"command": "history", "identifier": self.identifier, "history": self.history}


@dataclass(frozen=True)
class PongCommand:
    """Sent by some AnyCable clients after a ping; accepted and ignored."""


Command = SubscribeCommand | UnsubscribeCommand | MessageCommand | HistoryCommand | PongCommand

_COMMAND_NAMES = frozenset(CommandName)
_COMMANDS = ", ".join(name.value for name in CommandName)
_FRAME_EXAMPLE = '{"command":"subscribe","identifier":"{\\"channel\\":\\"telemetry\\"}"}'
_DATA_EXAMPLE = '"{\\"action\\":\\"publish\\",\\"topic\\":\\"a/b\\",\\"payload\\":1}"'


def decode_command(frame: object) -> Command:
    """Check the envelope of a decoded client frame.

    Raises ``RemoteProtocolError`` with code ``invalid_command`` (not an object, no
    ``command`` string), ``unknown_command`` or ``bad_identifier`` (no ``identifier``
    string).
    """
    if not isinstance(frame, dict):
        raise RemoteProtocolError(
            ErrorCode.INVALID_COMMAND,
            f"every frame must be a JSON object like {_FRAME_EXAMPLE}, got {describe(frame)}",
        )
    name = frame.get("command")
    if not isinstance(name, str):
        raise RemoteProtocolError(
            ErrorCode.INVALID_COMMAND,
            f'frame needs a "command" string (one of {_COMMANDS}), got {describe(name)}',
        )
    if name not in _COMMAND_NAMES:
        raise RemoteProtocolError(
            ErrorCode.UNKNOWN_COMMAND,
            f'unknown command "{excerpt(name)}"; expected one of {_COMMANDS}',
        )
    if name == CommandName.PONG:
        return PongCommand()
    identifier = frame.get("identifier")
    if not isinstance(identifier, str):
        raise RemoteProtocolError(
            ErrorCode.BAD_IDENTIFIER,
            f'"{name}" needs an "identifier" string like "{{\\"channel\\":\\"telemetry\\"}}", '
            f"got {describe(identifier)}",
        )
    if name == CommandName.SUBSCRIBE:
        return SubscribeCommand(identifier, frame.get("history"))
    if name == CommandName.UNSUBSCRIBE:
        return UnsubscribeCommand(identifier)
    if name == CommandName.MESSAGE:
        return MessageCommand(identifier, frame.get("data"))
    return HistoryCommand(identifier, frame.get("history"))


def decode_action(data: object, codec: Codec) -> tuple[str, dict[str, object]]:
    """Split the ``data`` of a ``message`` command into its action and the other fields.

    Raises ``RemoteProtocolError("invalid_data")`` unless ``data`` is a JSON string
    encoding an object with a non-empty string ``action``.
    """
    if not isinstance(data, str):
        raise _invalid_data(f"got {describe(data)}")
    try:
        decoded = codec.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _invalid_data(f"got a string that is {explain_decode_error(exc)}") from None
    if not isinstance(decoded, dict):
        raise _invalid_data(f"got a string encoding {describe(decoded)}")
    fields = dict(decoded)
    action = fields.pop("action", None)
    if not isinstance(action, str) or not action:
        raise _invalid_data(f'got an object whose "action" is {describe(action)}')
    return action, fields


def _invalid_data(got: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        ErrorCode.INVALID_DATA,
        '"message" needs "data": a JSON string encoding an object with a string "action", '
        f"like {_DATA_EXAMPLE}; {got}",
    )
