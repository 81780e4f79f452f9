/**
 * What the client machine tells its application: the events of
 * jupyter_iotcable/protocol/client.py, with the same fields (camelCase here: `streamId`
 * for `stream_id`...). Each is a frozen class, so that `instanceof` tells them apart, and
 * carries its Python class name in `kind`, which minification cannot mangle.
 */

import type { JsonObject } from './codec';
import type { Row } from './messages';

/** The server accepted the connection; `sid` is "" when the server gave none. */
export class Welcomed {
  readonly kind = 'Welcomed';
  constructor(
    readonly sid: string,
    readonly restored: boolean,
    readonly restoredIds: readonly string[]
  ) {
    Object.freeze(this);
  }
}

/** A subscription is live (also after a session resume restored it). */
export class SubscriptionConfirmed {
  readonly kind = 'SubscriptionConfirmed';
  constructor(
    readonly identifier: string,
    readonly meta: JsonObject
  ) {
    Object.freeze(this);
  }
}

export class SubscriptionRejected {
  readonly kind = 'SubscriptionRejected';
  constructor(
    readonly identifier: string,
    readonly reason: string
  ) {
    Object.freeze(this);
  }
}

/**
 * New rows of a stream, duplicates already removed; `dropped` readings were conflated
 * away by the server before these rows.
 */
export class RowsReceived {
  readonly kind = 'RowsReceived';
  constructor(
    readonly identifier: string,
    readonly streamId: string,
    readonly epoch: string,
    readonly rows: readonly Row[],
    readonly dropped: number
  ) {
    Object.freeze(this);
  }
}

/** A message for this subscription only (e.g. a `publish_result`). */
export class Transmission {
  readonly kind = 'Transmission';
  constructor(
    readonly identifier: string,
    readonly message: JsonObject
  ) {
    Object.freeze(this);
  }
}

/** All the requested history was delivered. */
export class HistoryConfirmed {
  readonly kind = 'HistoryConfirmed';
  constructor(readonly identifier: string) {
    Object.freeze(this);
  }
}

/**
 * Readings were lost, as the server reported (a `reject_history`) or as an epoch change
 * shows; an offset that jumps is NOT a gap (narrower topics skip offsets).
 *
 * `afterOffset` is the last offset held before the gap (in the old epoch when
 * `epochChanged`; null when nothing was held), `availableFrom` the oldest offset the
 * server still keeps, in `epoch`: the stream's current epoch (null when the report is
 * not about a stream).
 */
export class GapReported {
  readonly kind = 'GapReported';
  constructor(
    readonly identifier: string,
    readonly streamId: string | null,
    readonly reason: string,
    readonly epochChanged: boolean,
    readonly afterOffset: number | null,
    readonly availableFrom: number | null,
    readonly epoch: string | null = null,
    readonly since: number | null = null,
    /**
     * The gap is a frame of the stream this client could not decode (a foreign or older
     * server, or a frame over a size cap), not a loss the server reported.
     */
    readonly undecodable: boolean = false
  ) {
    Object.freeze(this);
  }
}

/** The server's last word on this connection. */
export class Disconnected {
  readonly kind = 'Disconnected';
  constructor(
    readonly reason: string,
    readonly reconnect: boolean
  ) {
    Object.freeze(this);
  }
}

/**
 * An `error` frame, or a frame from the server this client could not understand
 * (`malformed_frame`, `unknown_message`).
 */
export class ServerError {
  readonly kind = 'ServerError';
  constructor(
    readonly code: string,
    readonly message: string
  ) {
    Object.freeze(this);
  }
}

/** The health of the server's link to the MQTT broker. */
export class BrokerStatus {
  readonly kind = 'BrokerStatus';
  constructor(
    readonly state: string,
    readonly detail: string
  ) {
    Object.freeze(this);
  }
}

export type ClientEvent =
  | Welcomed
  | SubscriptionConfirmed
  | SubscriptionRejected
  | RowsReceived
  | Transmission
  | HistoryConfirmed
  | GapReported
  | Disconnected
  | ServerError
  | BrokerStatus;
