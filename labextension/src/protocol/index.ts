/**
 * The sans-I/O ActionCable client core: wire literals, identifiers, backoff and the
 * client connection machine, mirroring jupyter_iotcable/protocol (client role) with the
 * same names and literals. No I/O, no DOM, no timers: transport.ts drives it.
 */

export { Backoff, ReconnectDecision } from './backoff';
export type { BackoffOptions } from './backoff';
export { ClientConnection, continuityLost, gapCause, SubscriptionState } from './client';
export type { GapCause } from './client';
export type { ClientConnectionOptions, SubscriptionStatus } from './client';
export {
  BrokerStatus,
  Disconnected,
  GapReported,
  HistoryConfirmed,
  RowsReceived,
  ServerError,
  SubscriptionConfirmed,
  SubscriptionRejected,
  Transmission,
  Welcomed
} from './events';
export type { ClientEvent } from './events';
export { dumps, JsonDecodeError, JsonEncodeError, loads, MAX_NESTING } from './codec';
export {
  DEFAULT_MAX_READING_BYTES,
  FRAME_DEPTH,
  FRAME_RESERVE,
  MAX_DEPTH,
  MAX_FRAME_BYTES,
  MAX_FRAME_DEPTH,
  MAX_READING_BYTES
} from './limits';
export type { JsonObject, JsonValue } from './codec';
export {
  describe,
  excerpt,
  LocalProtocolError,
  ProtocolError,
  RemoteProtocolError
} from './errors';
export { ChannelRef, makeIdentifier, MAX_CHANNEL_LENGTH, parseIdentifier } from './identifiers';
export {
  BrokerState,
  chooseSubprotocol,
  CommandName,
  decodeJson,
  DisconnectReason,
  EPOCH_CONTINUATION,
  epochRun,
  ErrorCode,
  finiteFloat,
  HistoryRequest,
  isBatched,
  isExtended,
  MessageType,
  PLAIN_HISTORY_REASON,
  PREFERENCE,
  requiredReconnect,
  StreamPosition,
  Subprotocol
} from './messages';
export type { HistoryWire, Row } from './messages';
export { batchRows, dataRow, streamFields } from './rows';
export type { StreamFields } from './rows';
