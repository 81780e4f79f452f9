"""The server side of one websocket connection, without I/O.

Feed every received frame to :meth:`ServerConnection.receive_text`, act on
:meth:`~ServerConnection.events_received` (the application decides: confirm or reject a
subscription, answer a history request, perform an action), and write
:meth:`~ServerConnection.data_to_send` to the socket in order.

The machine owns the rules clients depend on: every ``subscribe`` gets exactly one
confirm or reject (duplicates included), bad input is answered on the wire and never
raised, and nothing is sent after ``disconnect``. The application owns the decisions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from .codec import JSON_CODEC
from .commands import (
    HistoryCommand,
    MessageCommand,
    SubscribeCommand,
    UnsubscribeCommand,
    decode_action,
    decode_command,
)
from .errors import LocalProtocolError, RemoteProtocolError, excerpt
from .identifiers import parse_identifier
from .messages import (
    PLAIN_HISTORY_REASON,
    BrokerState,
    CommandName,
    DisconnectReason,
    ErrorCode,
    HistoryRequest,
    MessageType,
    decode_json,
)
from .rows import EncodedRows

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .codec import Codec
    from .identifiers import ChannelRef
    from .messages import Row, Subprotocol
    from .rows import ColumnsFor

__all__ = [
    "HistoryRequested",
    "PerformRequested",
    "ServerConnection",
    "ServerEvent",
    "SubscribeRequested",
    "UnsubscribeRequested",
]


@dataclass(frozen=True)
class SubscribeRequested:
    """A client asks to subscribe: answer with ``confirm_subscription`` or ``reject_subscription``.

    ``history`` (extended subprotocols only) is to be answered right after the confirm,
    with rows then ``confirm_history`` or with ``reject_history``.
    """

    identifier: str
    ref: ChannelRef
    history: HistoryRequest | None


@dataclass(frozen=True)
class UnsubscribeRequested:
    """A confirmed subscription ended: stop sending to it (no reply is due)."""

    identifier: str


@dataclass(frozen=True)
class PerformRequested:
    """A ``message`` command: run ``action`` with ``data`` (the other fields of the data)."""

    identifier: str
    action: str
    data: Mapping[str, object]


@dataclass(frozen=True)
class HistoryRequested:
    """Replay history for a subscription, then ``confirm_history`` or ``reject_history``."""

    identifier: str
    request: HistoryRequest


ServerEvent = SubscribeRequested | UnsubscribeRequested | PerformRequested | HistoryRequested

_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]*")


def _parse_restored(identifiers: Sequence[str]) -> dict[str, ChannelRef]:
    refs: dict[str, ChannelRef] = {}
    for identifier in identifiers:
        try:
            refs[identifier] = parse_identifier(identifier)
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"restored identifier is invalid: {exc.message}") from None
    return refs


@dataclass
class _Pending:
    """A subscribe the application has not answered yet."""

    ref: ChannelRef
    # One entry per subscribe command waiting for the answer (duplicates included): the
    # reason of a reject_history the machine itself owes right after the confirm (the
    # subscribe carried a history that is invalid or needs an extended subprotocol).
    waiters: list[str | None] = field(default_factory=list)
    # Valid histories of duplicates: asked of the application once confirmed, dropped if
    # rejected (a HistoryRequested must not outlive the subscription it belongs to).
    histories: list[HistoryRequest] = field(default_factory=list)
    # The client unsubscribed before the answer came: the answer is still sent (every
    # subscribe gets one) but a confirm no longer makes the subscription active.
    cancelled: bool = False


class ServerConnection:
    """Protocol state of one client connection, server side.

    Sending methods that address a subscription (``send_rows``, ``transmit``, history
    answers) return ``False`` and send nothing when the identifier is not (or no longer)
    subscribed, or the connection is closed: the application may race with an
    ``unsubscribe``. Addressing a subscription that still waits for its confirm raises
    :class:`LocalProtocolError`: that frame would reach the client before the confirm.
    """

    def __init__(
        self,
        subprotocol: Subprotocol,
        sid: str,
        *,
        max_subscriptions: int = 100,
        codec: Codec = JSON_CODEC,
    ) -> None:
        self.subprotocol = subprotocol
        self.sid = sid
        self.max_subscriptions = max_subscriptions
        self.closed = False
        self._codec = codec
        self._welcomed = False
        self._refs: dict[str, ChannelRef] = {}
        self._meta: dict[str, Mapping[str, object]] = {}
        self._pending: dict[str, _Pending] = {}
        self._history_owed: dict[str, int] = {}
        self._events: list[ServerEvent] = []
        self._out: list[str] = []

    # -- state ---------------------------------------------------------------------------

    @property
    def subscriptions(self) -> Mapping[str, ChannelRef]:
        """Confirmed (or restored) subscriptions: identifier -> what it names. Read-only."""
        return MappingProxyType(self._refs)

    @property
    def welcomed(self) -> bool:
        return self._welcomed

    def events_received(self) -> list[ServerEvent]:
        """Events produced since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Frames to write, in order; the buffer is cleared."""
        out, self._out = self._out, []
        return out

    # -- input ---------------------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> None:
        """Process one received frame. Never raises for any input.

        Invalid input is answered on the wire (an ``error`` frame, a
        ``reject_subscription`` or a ``reject_history``) and the connection stays usable.
        Frames received after ``disconnect`` are ignored. Calling it before
        :meth:`welcome` is a :class:`LocalProtocolError` (answers would precede the
        welcome).
        """
        if self.closed:
            return
        self._require_welcomed("receive_text")
        try:
            command = decode_command(decode_json(text, self._codec))
        except RemoteProtocolError as exc:
            self._error_frame(exc.code, exc.message)
            return
        if isinstance(command, SubscribeCommand):
            self._on_subscribe(command)
        elif isinstance(command, UnsubscribeCommand):
            self._on_unsubscribe(command)
        elif isinstance(command, MessageCommand):
            self._on_message(command)
        elif isinstance(command, HistoryCommand):
            self._on_history(command)
        # PongCommand: accepted and ignored.

    def _on_subscribe(self, command: SubscribeCommand) -> None:
        identifier = command.identifier
        try:
            ref = parse_identifier(identifier)
        except RemoteProtocolError as exc:
            self._send_reject_subscription(identifier, exc.message)
            return
        history, history_problem = self._subscribe_history(command.history)
        if identifier in self._refs:
            # Already confirmed: confirm again without bothering the application.
            self._send_confirm(identifier)
            self._follow_with_history(identifier, history, history_problem)
            return
        pending = self._pending.get(identifier)
        if pending is not None:
            # Answered together with the subscribe it duplicates.
            pending.cancelled = False
            pending.waiters.append(history_problem)
            if history is not None:
                pending.histories.append(history)
            return
        if len(self._refs) + len(self._pending) >= self.max_subscriptions:
            limit = self.max_subscriptions
            self._send_reject_subscription(
                identifier, f"too many subscriptions on this connection (the limit is {limit})"
            )
            return
        self._pending[identifier] = _Pending(ref, [history_problem])
        if history is not None:
            self._history_owed[identifier] = 1
        self._events.append(SubscribeRequested(identifier, ref, history))

    def _subscribe_history(self, raw: object) -> tuple[HistoryRequest | None, str | None]:
        """The history a subscribe carries, or why the machine must reject it itself."""
        if raw is None:
            return None, None
        if not self.subprotocol.extended:
            return None, PLAIN_HISTORY_REASON
        try:
            return HistoryRequest.from_wire(raw), None
        except RemoteProtocolError as exc:
            return None, exc.message

    def _follow_with_history(
        self, identifier: str, history: HistoryRequest | None, problem: str | None
    ) -> None:
        if problem is not None:
            self._send_reject_history(identifier, problem)
        elif history is not None:
            self._request_history(identifier, history)

    def _request_history(self, identifier: str, request: HistoryRequest) -> None:
        self._history_owed[identifier] = self._history_owed.get(identifier, 0) + 1
        self._events.append(HistoryRequested(identifier, request))

    def _on_unsubscribe(self, command: UnsubscribeCommand) -> None:
        identifier = command.identifier
        if identifier in self._refs:
            self._forget(identifier)
            self._events.append(UnsubscribeRequested(identifier))
            return
        pending = self._pending.get(identifier)
        if pending is not None and not pending.cancelled:
            pending.cancelled = True
            return
        self._not_subscribed("unsubscribe", identifier)

    def _on_message(self, command: MessageCommand) -> None:
        if command.identifier not in self._refs:
            self._not_subscribed("message", command.identifier)
            return
        try:
            action, data = decode_action(command.data, self._codec)
        except RemoteProtocolError as exc:
            self._error_frame(exc.code, exc.message)
            return
        self._events.append(PerformRequested(command.identifier, action, MappingProxyType(data)))

    def _on_history(self, command: HistoryCommand) -> None:
        identifier = command.identifier
        if identifier not in self._refs:
            self._not_subscribed("history", identifier)
            return
        if not self.subprotocol.extended:
            self._send_reject_history(identifier, PLAIN_HISTORY_REASON)
            return
        try:
            request = HistoryRequest.from_wire(command.history)
        except RemoteProtocolError as exc:
            self._send_reject_history(identifier, exc.message)
            return
        self._request_history(identifier, request)

    def _not_subscribed(self, command: str, identifier: str) -> None:
        pending = self._pending.get(identifier)
        if pending is not None and not pending.cancelled:
            state = "is still waiting for confirm_subscription"
        else:
            state = "is not subscribed on this connection"
        if command == CommandName.UNSUBSCRIBE:
            # Waiting too long is not the problem here: there is nothing to stop.
            advice = (
                "there is nothing to unsubscribe (it was never subscribed here, "
                "or is unsubscribed already)"
            )
        else:
            advice = "send it after confirm_subscription"
        self._error_frame(
            ErrorCode.NOT_SUBSCRIBED,
            f'"{command}" for identifier "{excerpt(identifier)}", which {state}; {advice}',
        )

    def _forget(self, identifier: str) -> None:
        del self._refs[identifier]
        self._meta.pop(identifier, None)
        self._history_owed.pop(identifier, None)

    # -- output: connection ----------------------------------------------------------------

    def welcome(
        self,
        restored: Mapping[str, ChannelRef] | Sequence[str] = (),
        *,
        meta: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """Send the welcome; it must be the first frame.

        ``restored`` (extended subprotocols only) names the subscriptions a session
        resume brought back, as identifiers or as identifier -> ``ChannelRef``: they count
        as confirmed from now on and the welcome says ``restored`` and lists them.
        ``meta`` gives their confirm meta (iotcable), repeated when a duplicate subscribe
        is confirmed again.
        """
        if self.closed:
            return
        if self._welcomed:
            raise LocalProtocolError("welcome() was already sent on this connection")
        if restored and not self.subprotocol.extended:
            raise LocalProtocolError(
                f"a restored welcome needs an extended subprotocol, not {self.subprotocol}"
            )
        refs = dict(restored) if isinstance(restored, Mapping) else _parse_restored(restored)
        self._refs.update(refs)
        for identifier in refs:
            if meta and identifier in meta:
                self._meta[identifier] = meta[identifier]
        self._welcomed = True
        frame: dict[str, object] = {"type": MessageType.WELCOME, "sid": self.sid}
        if refs:
            frame["restored"] = True
            frame["restored_ids"] = list(refs)
        self._send(frame)

    def ping(self, now: float) -> None:
        """The keep-alive every ping interval: ``message`` is ``now`` in whole unix seconds."""
        self._send_after_welcome("ping", {"type": MessageType.PING, "message": int(now)})

    def broker_event(self, state: str, detail: str) -> None:
        """Tell the client how the server's MQTT link is doing."""
        try:
            checked = BrokerState(state)
        except ValueError:
            raise LocalProtocolError(
                f"broker state must be one of {', '.join(BrokerState)}, got {state!r}"
            ) from None
        self._send_after_welcome(
            "broker_event", {"type": MessageType.BROKER, "state": checked, "detail": detail}
        )

    def error(self, code: str, message: str) -> None:
        """An ``error`` frame for input that cannot be answered any other way."""
        if not _ERROR_CODE.fullmatch(code):
            raise LocalProtocolError(f"error code must be snake_case, got {code!r}")
        self._send_after_welcome(
            "error", {"type": MessageType.ERROR, "reason": code, "message": message}
        )

    def disconnect(self, reason: DisconnectReason, *, reconnect: bool) -> None:
        """The last frame: afterwards the connection is closed and every send a no-op."""
        if self.closed:
            return
        try:
            reason = DisconnectReason(reason)
        except ValueError:
            raise LocalProtocolError(
                f"disconnect reason must be one of {', '.join(DisconnectReason)}, got {reason!r}"
            ) from None
        required = reason.required_reconnect
        if required is not None and reconnect is not required:
            raise LocalProtocolError(
                f"disconnect {reason} must say reconnect={required}, not {reconnect}"
            )
        self._send({"type": MessageType.DISCONNECT, "reason": reason, "reconnect": reconnect})
        self.closed = True

    # -- output: subscriptions ---------------------------------------------------------------

    def confirm_subscription(
        self, identifier: str, meta: Mapping[str, object] | None = None
    ) -> bool:
        """Confirm a requested subscription (and its duplicates).

        ``meta`` (iotcable only; ignored by the other subprotocols) tells the client
        channel facts such as ``{"columns": ..., "format": ...}``. Returns whether the
        subscription is now active: ``False`` when the client unsubscribed while waiting
        (the confirm is still sent, since every subscribe gets an answer) or the
        connection is closed. Register the subscriber only on ``True``.

        Duplicates that carried a history are asked of the application now, as
        :class:`HistoryRequested` events: read ``events_received()`` after this call.
        """
        if self.closed:
            return False
        self._require_welcomed("confirm_subscription")
        pending = self._take_pending("confirm_subscription", identifier)
        if meta:
            self._meta[identifier] = meta
        for problem in pending.waiters:
            self._send_confirm(identifier)
            if problem is not None:
                self._send_reject_history(identifier, problem)
        if pending.cancelled:
            self._meta.pop(identifier, None)
            self._history_owed.pop(identifier, None)
            return False
        self._refs[identifier] = pending.ref
        for request in pending.histories:
            self._request_history(identifier, request)
        return True

    def reject_subscription(self, identifier: str, reason: str) -> None:
        """Refuse a requested subscription (and its duplicates), saying why."""
        if self.closed:
            return
        self._require_welcomed("reject_subscription")
        if not reason:
            raise LocalProtocolError("reject_subscription needs a human reason")
        pending = self._take_pending("reject_subscription", identifier)
        self._history_owed.pop(identifier, None)
        for _ in pending.waiters:
            self._send_reject_subscription(identifier, reason)

    def _take_pending(self, method: str, identifier: str) -> _Pending:
        pending = self._pending.pop(identifier, None)
        if pending is None:
            raise LocalProtocolError(
                f"{method}({identifier!r}): no subscribe for it is waiting for an answer"
            )
        return pending

    def confirm_history(self, identifier: str) -> bool:
        """All the requested history was sent (rows before this frame)."""
        if not self._answer_history("confirm_history", identifier):
            return False
        self._send({"type": MessageType.CONFIRM_HISTORY, "identifier": identifier})
        return True

    def reject_history(
        self,
        identifier: str,
        reason: str,
        *,
        stream_id: str | None = None,
        epoch: str | None = None,
        available_from: int | None = None,
    ) -> bool:
        """The requested range is (partly) gone or from another epoch.

        Rows still kept after the client's position may come first (the application
        sends them before calling this), so that the client loses no more than it must.

        When it is about a stream, pass ``stream_id``, its current ``epoch`` and the
        oldest offset still kept in it (``available_from``, ``None`` when nothing is).
        """
        if (stream_id is None) != (epoch is None):
            raise LocalProtocolError("reject_history takes stream_id and epoch together")
        if stream_id is None and available_from is not None:
            raise LocalProtocolError("reject_history takes available_from only with stream_id")
        if not reason:
            raise LocalProtocolError("reject_history needs a human reason")
        if not self._answer_history("reject_history", identifier):
            return False
        self._send_reject_history(
            identifier, reason, stream_id=stream_id, epoch=epoch, available_from=available_from
        )
        return True

    def _answer_history(self, method: str, identifier: str) -> bool:
        if not self._addressable(method, identifier):
            return False
        owed = self._history_owed.get(identifier, 0)
        if not owed:
            raise LocalProtocolError(
                f"{method}({identifier!r}): no history request is waiting for an answer"
            )
        self._history_owed[identifier] = owed - 1
        return True

    def send_rows(
        self,
        identifier: str,
        stream_id: str,
        epoch: str,
        rows: Sequence[Row],
        *,
        dropped: int = 0,
        columns: ColumnsFor | None = None,
    ) -> bool:
        """Send rows of a stream: one batch frame (iotcable) or one data frame per row.

        ``dropped`` counts readings conflated away for this subscription since its last
        frame (on the first frame); ``columns(topic)`` fills data frames'
        ``message.columns``. Offsets must strictly increase.
        """
        if not self._addressable("send_rows", identifier):
            return False
        encoded = EncodedRows.encode(
            self.subprotocol, stream_id, epoch, rows, columns=columns, codec=self._codec
        )
        self._out.extend(encoded.frames(identifier, dropped))
        return True

    def encode_rows(
        self,
        identifier: str,
        stream_id: str,
        epoch: str,
        rows: Sequence[Row],
        *,
        dropped: int = 0,
        columns: ColumnsFor | None = None,
    ) -> list[str]:
        """The frames ``send_rows`` would queue, returned instead (nothing is checked or sent).

        To fan one run of rows out to many connections, encode it once with
        ``EncodedRows.encode`` and hand it to each connection's :meth:`send_encoded`.
        """
        encoded = EncodedRows.encode(
            self.subprotocol, stream_id, epoch, rows, columns=columns, codec=self._codec
        )
        return encoded.frames(identifier, dropped)

    def send_encoded(self, identifier: str, encoded: EncodedRows, *, dropped: int = 0) -> bool:
        """Send rows encoded once for every subscriber of this subprotocol family."""
        if encoded.batched != self.subprotocol.batched:
            raise LocalProtocolError(
                f"rows encoded {'as a batch' if encoded.batched else 'per row'} "
                f"cannot go to a {self.subprotocol} connection"
            )
        if not self._addressable("send_encoded", identifier):
            return False
        self._out.extend(encoded.frames(identifier, dropped))
        return True

    def transmit(self, identifier: str, message: Mapping[str, object]) -> bool:
        """A message to one subscription only (e.g. a ``publish_result``)."""
        if not self._addressable("transmit", identifier):
            return False
        self._send({"identifier": identifier, "message": dict(message)})
        return True

    def _addressable(self, method: str, identifier: str) -> bool:
        if self.closed:
            return False
        self._require_welcomed(method)
        if identifier in self._refs:
            return True
        pending = self._pending.get(identifier)
        if pending is not None and not pending.cancelled:
            raise LocalProtocolError(
                f"{method}({identifier!r}) before confirm_subscription: "
                "the client must see the confirm first"
            )
        return False

    # -- frames ------------------------------------------------------------------------------

    def _send_confirm(self, identifier: str) -> None:
        frame: dict[str, object] = {
            "type": MessageType.CONFIRM_SUBSCRIPTION,
            "identifier": identifier,
        }
        meta = self._meta.get(identifier)
        if meta and self.subprotocol.batched:  # meta is an iotcable addition
            frame["meta"] = dict(meta)
        self._send(frame)

    def _send_reject_subscription(self, identifier: str, reason: str) -> None:
        self._send(
            {"type": MessageType.REJECT_SUBSCRIPTION, "identifier": identifier, "reason": reason}
        )

    def _send_reject_history(
        self,
        identifier: str,
        reason: str,
        *,
        stream_id: str | None = None,
        epoch: str | None = None,
        available_from: int | None = None,
    ) -> None:
        frame: dict[str, object] = {
            "type": MessageType.REJECT_HISTORY,
            "identifier": identifier,
            "reason": reason,
        }
        if stream_id is not None:
            frame.update(stream_id=stream_id, epoch=epoch, available_from=available_from)
        self._send(frame)

    def _error_frame(self, code: str, message: str) -> None:
        # No "identifier" key: the Rails client would hand the frame to a subscription.
        self._send({"type": MessageType.ERROR, "reason": code, "message": message})

    def _send_after_welcome(self, method: str, frame: dict[str, object]) -> None:
        if not self.closed:
            self._require_welcomed(method)
        self._send(frame)

    def _require_welcomed(self, method: str) -> None:
        if not self._welcomed:
            raise LocalProtocolError(f"{method}() before welcome(): the welcome comes first")

    def _send(self, frame: dict[str, object]) -> None:
        if self.closed:
            return
        try:
            self._out.append(self._codec.dumps(frame))
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"frame cannot be encoded as JSON: {exc}") from exc
