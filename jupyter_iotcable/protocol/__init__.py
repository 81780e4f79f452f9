"""Sans-I/O ActionCable core: wire messages, identifiers, server and client machines.

Standard library only, no I/O, no clock (time is an argument), no threads: the
websocket handler and the Python client drive these machines, and the TypeScript mirror
in labextension/src/protocol keeps the same names and literals. The wire protocol is
described in docs/protocol.md.
"""

from __future__ import annotations

from .backoff import Backoff, ReconnectDecision
from .client import (
    BrokerStatus,
    ClientConnection,
    ClientEvent,
    Disconnected,
    GapReported,
    HistoryConfirmed,
    RowsReceived,
    ServerError,
    SubscriptionConfirmed,
    SubscriptionRejected,
    SubscriptionState,
    SubscriptionStatus,
    Transmission,
    Welcomed,
)
from .codec import JSON_CODEC, Codec, JsonCodec
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .identifiers import ChannelRef, make_identifier, parse_identifier
from .messages import (
    PLAIN_HISTORY_REASON,
    PREFERENCE,
    BrokerState,
    CommandName,
    DisconnectReason,
    ErrorCode,
    HistoryRequest,
    MessageType,
    Row,
    StreamPosition,
    Subprotocol,
    choose_subprotocol,
)
from .rows import ColumnsFor, EncodedRows
from .server import (
    HistoryRequested,
    PerformRequested,
    ServerConnection,
    ServerEvent,
    SubscribeRequested,
    UnsubscribeRequested,
)

__all__ = [
    "JSON_CODEC",
    "PLAIN_HISTORY_REASON",
    "PREFERENCE",
    "Backoff",
    "BrokerState",
    "BrokerStatus",
    "ChannelRef",
    "ClientConnection",
    "ClientEvent",
    "Codec",
    "ColumnsFor",
    "CommandName",
    "DisconnectReason",
    "Disconnected",
    "EncodedRows",
    "ErrorCode",
    "GapReported",
    "HistoryConfirmed",
    "HistoryRequest",
    "HistoryRequested",
    "JsonCodec",
    "LocalProtocolError",
    "MessageType",
    "PerformRequested",
    "ProtocolError",
    "ReconnectDecision",
    "RemoteProtocolError",
    "Row",
    "RowsReceived",
    "ServerConnection",
    "ServerError",
    "ServerEvent",
    "StreamPosition",
    "Subprotocol",
    "SubscribeRequested",
    "SubscriptionConfirmed",
    "SubscriptionRejected",
    "SubscriptionState",
    "SubscriptionStatus",
    "Transmission",
    "UnsubscribeRequested",
    "Welcomed",
    "choose_subprotocol",
    "make_identifier",
    "parse_identifier",
]
