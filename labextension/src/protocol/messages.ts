/**
 * The protocol's vocabulary: subprotocols, wire literals, history requests and rows.
 *
 * Every literal that appears on the wire is a member of one of these constant objects,
 * spelled as in jupyter_iotcable/protocol/messages.py (whose StrEnums they mirror): the
 * Python server, the Python client and this client share one spelling.
 */

import { JsonDecodeError, loads, PyFloat } from './codec';
import type { JsonObject, JsonValue } from './codec';
import { describe, LocalProtocolError, RemoteProtocolError } from './errors';
import { pyFloatRepr } from './text';

/** The websocket subprotocols we speak, named as on the wire. */
export const Subprotocol = {
  IOTCABLE: 'iotcable-v1-json',
  EXT: 'actioncable-v1-ext-json',
  PLAIN: 'actioncable-v1-json'
} as const;
export type Subprotocol = (typeof Subprotocol)[keyof typeof Subprotocol];

/** Offsets, epochs, `history` and session resume are available. */
export function isExtended(subprotocol: Subprotocol): boolean {
  return subprotocol !== Subprotocol.PLAIN;
}

/** Rows travel as one `batch` frame instead of one data frame per row. */
export function isBatched(subprotocol: Subprotocol): boolean {
  return subprotocol === Subprotocol.IOTCABLE;
}

/** Our order of preference, also the order a client offers them in. */
export const PREFERENCE: readonly Subprotocol[] = [
  Subprotocol.IOTCABLE,
  Subprotocol.EXT,
  Subprotocol.PLAIN
];

/**
 * Pick the subprotocol to answer an offer with (the server's choice, mirrored so that a
 * client can tell which one a given offer gets): an empty offer gets the plain protocol,
 * an offer naming none of ours gets null.
 */
export function chooseSubprotocol(offered: readonly string[]): Subprotocol | null {
  if (offered.length === 0) {
    return Subprotocol.PLAIN;
  }
  return PREFERENCE.find(candidate => offered.includes(candidate)) ?? null;
}

/** The `command` of a client frame. */
export const CommandName = {
  SUBSCRIBE: 'subscribe',
  UNSUBSCRIBE: 'unsubscribe',
  MESSAGE: 'message',
  HISTORY: 'history',
  PONG: 'pong'
} as const;
export type CommandName = (typeof CommandName)[keyof typeof CommandName];

/** The `type` of a server frame (data frames and transmissions have none). */
export const MessageType = {
  WELCOME: 'welcome',
  PING: 'ping',
  CONFIRM_SUBSCRIPTION: 'confirm_subscription',
  REJECT_SUBSCRIPTION: 'reject_subscription',
  DISCONNECT: 'disconnect',
  CONFIRM_HISTORY: 'confirm_history',
  REJECT_HISTORY: 'reject_history',
  BROKER: 'broker',
  ERROR: 'error'
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The `reason` of a `disconnect` frame. */
export const DisconnectReason = {
  UNAUTHORIZED: 'unauthorized',
  INVALID_REQUEST: 'invalid_request',
  SERVER_RESTART: 'server_restart',
  TOO_SLOW: 'too_slow',
  TOKEN_EXPIRED: 'token_expired'
} as const;
export type DisconnectReason = (typeof DisconnectReason)[keyof typeof DisconnectReason];

const REQUIRED_RECONNECT: ReadonlyMap<string, boolean> = new Map([
  [DisconnectReason.UNAUTHORIZED, false],
  [DisconnectReason.TOKEN_EXPIRED, false],
  [DisconnectReason.SERVER_RESTART, true],
  [DisconnectReason.TOO_SLOW, true]
]);

/** The `reconnect` flag the spec fixes for a disconnect reason (null: free). */
export function requiredReconnect(reason: DisconnectReason): boolean | null {
  return REQUIRED_RECONNECT.get(reason) ?? null;
}

/**
 * The health of the server's MQTT link (the `state` of a `broker` frame and of the
 * status page): `connecting` is the first attempt after the server started,
 * `disconnected` a bridge that was stopped.
 */
export const BrokerState = {
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  DISCONNECTED: 'disconnected'
} as const;
export type BrokerState = (typeof BrokerState)[keyof typeof BrokerState];

/**
 * Codes of RemoteProtocolError and of `error` frames. The server puts the first group
 * in the `reason` of an error frame; the client reports the last two in ServerError
 * events.
 */
export const ErrorCode = {
  MALFORMED_JSON: 'malformed_json',
  INVALID_COMMAND: 'invalid_command',
  UNKNOWN_COMMAND: 'unknown_command',
  BAD_IDENTIFIER: 'bad_identifier',
  NOT_SUBSCRIBED: 'not_subscribed',
  INVALID_DATA: 'invalid_data',
  BAD_HISTORY: 'bad_history',
  // client side: what the server sent could not be understood
  MALFORMED_FRAME: 'malformed_frame',
  UNKNOWN_MESSAGE: 'unknown_message'
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const PLAIN_HISTORY_REASON =
  'history needs the actioncable-v1-ext-json or iotcable-v1-json subprotocol';

/**
 * One reading on a stream: `[offset, time, topic, payload, error]`.
 *
 * `time` is unix seconds; `error` says why `payload` could not be decoded (then
 * `payload` is the raw text), else null.
 */
export type Row = readonly [
  offset: number,
  time: number,
  topic: string,
  payload: JsonValue,
  error: string | null
];

/**
 * Where a reader is in a stream: it holds everything up to and including `offset`.
 * `offset` -1 means "nothing of this epoch yet".
 */
export class StreamPosition {
  constructor(
    readonly epoch: string,
    readonly offset: number
  ) {
    Object.freeze(this);
  }
}

const HISTORY_EXAMPLE =
  '{"since": 1700000000} or {"streams": {"telemetry": {"offset": 41, "epoch": "e1"}}}';

/** The wire form of a history request, as `HistoryRequest.toWire` gives it. */
export interface HistoryWire {
  since?: number;
  streams?: { [streamId: string]: { offset: number; epoch: string } };
}

/**
 * What a client asks to be replayed: readings after `since` and/or after positions.
 *
 * `streams` maps a stream id to the position the client already holds; the server sends
 * what comes after it, or rejects the request when part of it is gone.
 */
export class HistoryRequest {
  readonly since: number | null;
  readonly streams: ReadonlyMap<string, StreamPosition>;

  constructor(
    options: {
      since?: number | null;
      streams?: ReadonlyMap<string, StreamPosition> | Readonly<Record<string, StreamPosition>>;
    } = {}
  ) {
    const since = options.since ?? null;
    if (since !== null && !isUnixTime(since)) {
      // Caught here, not when the command fails to encode as JSON later.
      throw new LocalProtocolError(
        `history since must be unix seconds (a finite number >= 0), got ${reprSince(since)}`
      );
    }
    this.since = since;
    const streams = options.streams ?? new Map<string, StreamPosition>();
    // A copy, in insertion order (a Python dict's order; an object's would put
    // integer-like stream ids first).
    this.streams = new Map(streams instanceof Map ? streams : Object.entries(streams));
    Object.freeze(this);
  }

  /** The `history` value of a command, keys in spec order. */
  toWire(): HistoryWire {
    const wire: HistoryWire = {};
    if (this.since !== null) {
      wire.since = this.since;
    }
    if (this.streams.size > 0) {
      const streams: { [streamId: string]: { offset: number; epoch: string } } = {};
      for (const [streamId, position] of this.streams) {
        defineMember(streams, streamId, { offset: position.offset, epoch: position.epoch });
      }
      wire.streams = streams;
    }
    return wire;
  }

  /**
   * The value `dumps` writes into a frame: `since` as a Python float (the Python client
   * always sends "1699996400.0") and streams in insertion order.
   */
  toFrameValue(): Map<string, unknown> {
    const wire = new Map<string, unknown>();
    if (this.since !== null) {
      wire.set('since', new PyFloat(this.since));
    }
    if (this.streams.size > 0) {
      const streams = new Map<string, unknown>();
      for (const [streamId, position] of this.streams) {
        streams.set(
          streamId,
          new Map<string, unknown>([
            ['offset', position.offset],
            ['epoch', position.epoch]
          ])
        );
      }
      wire.set('streams', streams);
    }
    return wire;
  }

  /** Check and convert a `history` value; RemoteProtocolError("bad_history"). */
  static fromWire(value: unknown): HistoryRequest {
    if (!isJsonObject(value)) {
      throw badHistory(`history must be an object like ${HISTORY_EXAMPLE}, got ${describe(value)}`);
    }
    const since = member(value, 'since');
    if (since !== undefined && since !== null && !isUnixTime(since)) {
      throw badHistory(
        'history "since" must be unix seconds (a finite number >= 0), ' + `got ${describe(since)}`
      );
    }
    const streams = hasMember(value, 'streams') ? member(value, 'streams') : {};
    if (!isJsonObject(streams)) {
      throw badHistory(
        'history "streams" must be an object {STREAM_ID: {"offset": int, "epoch": str}}, ' +
          `got ${describe(streams)}`
      );
    }
    const entries = Object.entries(streams);
    if ((since === undefined || since === null) && entries.length === 0) {
      throw badHistory(`history needs "since" and/or non-empty "streams", e.g. ${HISTORY_EXAMPLE}`);
    }
    return new HistoryRequest({
      since: typeof since === 'number' ? since : null,
      streams: new Map(entries.map(([id, pos]) => [id, positionFromWire(id, pos)]))
    });
  }
}

function reprSince(since: unknown): string {
  return typeof since === 'number' ? pyFloatRepr(since) : describe(since);
}

/**
 * A JSON number as a finite float, or null if it is not a number or is not finite.
 * (A decoded frame holds no infinity, but values built in code may.)
 */
/** What separates a server run from the continuation number in an epoch (`RUN.2`). */
export const EPOCH_CONTINUATION = '.';

/**
 * The server run an epoch belongs to.
 *
 * A server start opens epoch `RUN` of every stream; when a stream loses continuity within
 * that run (the server's bridge came back without its broker session, so what was
 * published meanwhile is gone), it goes on in `RUN.2`, `RUN.3`... A client that sees the
 * epoch change within one run knows the server did not restart: the readings between
 * were lost upstream.
 */
export function epochRun(epoch: string): string {
  const at = epoch.indexOf(EPOCH_CONTINUATION);
  return at < 0 ? epoch : epoch.slice(0, at);
}

export function finiteFloat(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function isUnixTime(value: unknown): boolean {
  const seconds = finiteFloat(value);
  return seconds !== null && seconds >= 0;
}

function positionFromWire(streamId: string, value: JsonValue): StreamPosition {
  const where = `history "streams"["${streamId}"]`;
  if (!isJsonObject(value)) {
    throw badHistory(
      `${where} must be an object {"offset": int, "epoch": str}, got ${describe(value)}`
    );
  }
  const offset = member(value, 'offset');
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < -1) {
    throw badHistory(`${where}["offset"] must be an integer >= -1, got ${describe(offset)}`);
  }
  const epoch = member(value, 'epoch');
  if (typeof epoch !== 'string' || !epoch) {
    throw badHistory(`${where}["epoch"] must be a non-empty string, got ${describe(epoch)}`);
  }
  return new StreamPosition(epoch, offset);
}

function badHistory(message: string): RemoteProtocolError {
  return new RemoteProtocolError(ErrorCode.BAD_HISTORY, message);
}

/** Decode one frame; RemoteProtocolError("malformed_json") says why it is not JSON. */
export function decodeJson(text: string): JsonValue {
  try {
    return loads(text);
  } catch (exc) {
    if (exc instanceof JsonDecodeError) {
      throw new RemoteProtocolError(ErrorCode.MALFORMED_JSON, `frame is ${exc.explanation}`);
    }
    throw exc;
  }
}

// -- reading decoded JSON objects ---------------------------------------------------------------

/** A decoded JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `object` has the member `key` (its own, never one inherited from Object). */
export function hasMember(object: JsonObject, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** `object[key]`, or undefined when absent (Python's `dict.get`, None being null too). */
export function member(object: JsonObject, key: string): JsonValue | undefined {
  return hasMember(object, key) ? object[key] : undefined;
}

/** Set `key` as an own data member, even "__proto__" (which assignment would not). */
function defineMember<T>(object: { [key: string]: T }, key: string, value: T): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true
  });
}
