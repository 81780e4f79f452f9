/**
 * The client side of a cable connection, without I/O, kept across reconnects.
 *
 * The transport calls `connectionOpened` when a socket opens, feeds every received frame
 * to `receiveText`, writes `dataToSend()`, and calls `connectionLost` when the socket
 * closes, which says whether and when to reconnect. The machine outlives its sockets:
 * subscriptions and stream positions are kept, so that after a reconnect it resubscribes
 * (or, after a session resume, asks for history) from the last positions, drops rows it
 * already holds, and reports as GapReported events the losses the server tells it about.
 *
 * A line-by-line mirror of jupyter_iotcable/protocol/client.py (client role): same
 * events with the same fields, same frames byte for byte, replayed against the recorded
 * transcripts in tests/transcripts/. No timers: every `now` is an argument.
 */

import { Backoff, ReconnectDecision } from './backoff';
import { dumps, JsonEncodeError } from './codec';
import type { JsonObject, JsonValue } from './codec';
import { historyCommand, messageCommand, subscribeCommand, unsubscribeCommand } from './commands';
import { describe, excerpt, LocalProtocolError, RemoteProtocolError } from './errors';
import { malformed, optInt, optStr, str } from './fields';
import { ChannelRef, makeIdentifier } from './identifiers';
import {
  decodeJson,
  epochRun,
  ErrorCode,
  hasMember,
  HistoryRequest,
  isExtended,
  isJsonObject,
  member,
  MessageType,
  StreamPosition,
  Subprotocol
} from './messages';
import type { Row } from './messages';
import {
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
import type { ClientEvent } from './events';
import { batchRows, dataRow, streamFields } from './rows';
import type { StreamFields } from './rows';
import { pyIntStr, pyStrRepr } from './text';

// -- subscriptions ------------------------------------------------------------------------------

export const SubscriptionState = {
  /** Wanted; waiting for the welcome or for the server's answer. */
  PENDING: 'pending',
  CONFIRMED: 'confirmed',
  REJECTED: 'rejected'
} as const;
export type SubscriptionState = (typeof SubscriptionState)[keyof typeof SubscriptionState];

/** A snapshot of one subscription, for callers to inspect. */
export interface SubscriptionStatus {
  readonly identifier: string;
  readonly ref: ChannelRef;
  readonly state: SubscriptionState;
  /** The history asked for when subscribing. */
  readonly history: HistoryRequest | null;
  readonly positions: ReadonlyMap<string, StreamPosition>;
  readonly meta: JsonObject;
  /** Why the server rejected it. */
  readonly reason: string | null;
}

/**
 * A history request sent and not answered yet, with the positions held when it was
 * sent: a gap it is rejected with starts there, even if the rows the server still keeps
 * arrive before the reject and move the positions on.
 */
interface Asked {
  readonly request: HistoryRequest;
  readonly held: ReadonlyMap<string, StreamPosition>;
}

const EMPTY_META: JsonObject = Object.freeze({});

class Subscription {
  state: SubscriptionState = SubscriptionState.PENDING;
  positions = new Map<string, StreamPosition>();
  meta: JsonObject = EMPTY_META;
  reason: string | null = null;
  /**
   * When the first confirm arrived (client clock): the backfill point after a reconnect
   * if no row came before the connection was lost.
   */
  liveSince: number | null = null;
  /** Whether the server heard of it on the current connection. */
  sent = false;
  /** History requests sent on this connection and not answered yet, oldest first. */
  inflight: Asked[] = [];
  /**
   * Lowest offset received per stream in the current epoch. Together with the last
   * offset it brackets what the client holds: rows above are new, rows below are a
   * backfill (`history` by `since` on a live subscription), rows inside are duplicates.
   */
  floors = new Map<string, number>();
  /**
   * Rows below the floor received while history answers are in flight, per stream, as
   * [lowest, highest]: an answer comes in ascending chunks, so what it sent so far is one
   * range. It joins the held range (the floor drops to its lowest) once the answer is
   * complete; a connection lost mid-answer forgets it (the rest never came).
   */
  backfill = new Map<string, [number, number]>();
  /**
   * A frame of this stream could not be decoded and history was asked again from the
   * offset held before it: [streamId, that offset, why]. Forgotten once the answer is
   * complete (the rows came), reported as a gap if the answer fails too or the connection
   * goes first. At most one: history is asked again only when none is in flight.
   */
  unread: [string, number, string] | null = null;

  constructor(
    readonly ref: ChannelRef,
    readonly history: HistoryRequest | null
  ) {}

  /** The oldest history request in flight is answered (confirmed or rejected). */
  historyAnswered(): void {
    this.inflight.shift();
    if (this.inflight.length === 0) {
      this.unread = null; // answered without failing again: the rows came
    }
    for (const [streamId, [lowest]] of this.backfill) {
      this.floors.set(streamId, Math.min(this.floors.get(streamId) ?? lowest, lowest));
    }
    this.backfill.clear();
  }
}

export interface ClientConnectionOptions {
  subprotocol?: Subprotocol;
  /** Seconds between the server's pings (3 for our server). */
  pingInterval?: number;
  backoff?: Backoff;
  /**
   * Seconds a welcomed connection must last before its loss resets the backoff.
   *
   * A welcome alone proves little: a server that welcomes and then drops every
   * connection must not be retried at the first, shortest delay forever. The default is
   * the stale window (two ping intervals): a connection that outlived it carried traffic.
   */
  healthyAfter?: number;
}

/**
 * Protocol state of a client across its successive sockets.
 *
 * Every `now` argument is unix seconds (`Date.now() / 1000`), not a monotonic clock: the
 * time a subscription went live becomes the `since` of its catch-up history after a
 * reconnect, and the server reads `since` as unix time.
 */
export class ClientConnection {
  readonly subprotocol: Subprotocol;
  readonly pingInterval: number;
  readonly backoff: Backoff;
  readonly healthyAfter: number;
  /** The session id of the last welcome (null before any, or when the server gave none). */
  sid: string | null = null;
  /** Welcomed on the current socket. */
  connected = false;
  private open = false;
  private welcomedAt: number | null = null;
  private lastReceived: number | null = null;
  private disconnect: Disconnected | null = null;
  private readonly subs = new Map<string, Subscription>();
  private events: ClientEvent[] = [];
  private out: string[] = [];

  constructor(options: ClientConnectionOptions = {}) {
    this.subprotocol = options.subprotocol ?? Subprotocol.IOTCABLE;
    this.pingInterval = options.pingInterval ?? 3.0;
    this.backoff = options.backoff ?? new Backoff();
    this.healthyAfter = options.healthyAfter ?? 2 * this.pingInterval;
  }

  // -- state --------------------------------------------------------------------------------

  /** Every subscription asked for and not unsubscribed: identifier -> snapshot. */
  get subscriptions(): ReadonlyMap<string, SubscriptionStatus> {
    const snapshot = new Map<string, SubscriptionStatus>();
    for (const [identifier, sub] of this.subs) {
      snapshot.set(
        identifier,
        Object.freeze({
          identifier,
          ref: sub.ref,
          state: sub.state,
          history: sub.history,
          positions: new Map(sub.positions),
          meta: sub.meta,
          reason: sub.reason
        })
      );
    }
    return snapshot;
  }

  /** The last position held in each stream of a subscription. */
  positions(identifier: string): ReadonlyMap<string, StreamPosition> {
    return new Map(this.sub('positions', identifier).positions);
  }

  /** Query parameters for the reconnect URL: `{sid: ...}` once welcomed. */
  resumeQuery(): Record<string, string> {
    return this.sid ? { sid: this.sid } : {};
  }

  /** Nothing received for more than two ping intervals on an open socket. */
  isStale(now: number): boolean {
    if (!this.open || this.lastReceived === null) {
      return false;
    }
    return now - this.lastReceived > 2 * this.pingInterval;
  }

  eventsReceived(): ClientEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  dataToSend(): string[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  // -- socket lifecycle ---------------------------------------------------------------------

  /** A socket is open; subscriptions are sent once the server welcomes us. */
  connectionOpened(now: number): void {
    if (this.open) {
      throw new LocalProtocolError('connectionOpened() twice without connectionLost()');
    }
    this.open = true;
    this.connected = false;
    this.welcomedAt = null;
    this.disconnect = null;
    this.lastReceived = now;
  }

  /**
   * The socket closed: forget what belonged to it and decide about reconnecting.
   *
   * Subscriptions and positions are kept for the next connection. No reconnect after a
   * `disconnect` that said `reconnect: false`; otherwise wait the backoff delay, the
   * shortest one again if this connection was welcomed and lasted `healthyAfter` seconds.
   */
  connectionLost(now: number): ReconnectDecision {
    if (this.welcomedAt !== null && now - this.welcomedAt >= this.healthyAfter) {
      this.backoff.reset();
    }
    this.open = false;
    this.connected = false;
    this.welcomedAt = null;
    this.lastReceived = null;
    this.out = [];
    for (const [identifier, sub] of this.subs) {
      if (sub.unread !== null) {
        // The answer that would have brought the undecodable frame's rows is lost.
        const [streamId, after, why] = sub.unread;
        sub.unread = null;
        this.reportUndecodable(identifier, streamId, sub, after, why, LOST_BEFORE);
      }
      sub.sent = false;
      sub.inflight = [];
      sub.backfill.clear();
      if (sub.state === SubscriptionState.CONFIRMED) {
        sub.state = SubscriptionState.PENDING;
      }
    }
    const said = this.disconnect;
    this.disconnect = null;
    if (said !== null && !said.reconnect) {
      return new ReconnectDecision(false, 0.0, said.reason);
    }
    const reason = said !== null ? said.reason : 'connection_lost';
    return new ReconnectDecision(true, this.backoff.nextDelay(), reason);
  }

  // -- commands -------------------------------------------------------------------------------

  /** Subscribe (sent now if welcomed, else on the welcome); returns the identifier. */
  subscribe(
    channel: string,
    params: ReadonlyMap<string, string> | Readonly<Record<string, string>> = {},
    history: HistoryRequest | null = null
  ): string {
    if (history !== null && !isExtended(this.subprotocol)) {
      throw new LocalProtocolError(
        `history needs an extended subprotocol, not ${this.subprotocol}`
      );
    }
    const identifier = makeIdentifier(channel, params);
    const existing = this.subs.get(identifier);
    if (existing !== undefined && existing.state !== SubscriptionState.REJECTED) {
      throw new LocalProtocolError(`already subscribed to ${identifier}`);
    }
    const sub = new Subscription(new ChannelRef(channel, params), history);
    this.subs.set(identifier, sub);
    if (this.connected) {
      this.sendSubscribe(identifier, sub);
    }
    return identifier;
  }

  /** Stop a subscription; nothing more is reported for it. */
  unsubscribe(identifier: string): void {
    const sub = this.sub('unsubscribe', identifier);
    this.subs.delete(identifier);
    if (sub.sent && sub.state !== SubscriptionState.REJECTED) {
      this.send(unsubscribeCommand(identifier));
    }
  }

  /** Run `action` on the server for a confirmed subscription (e.g. `publish`). */
  perform(identifier: string, action: string, data: Readonly<Record<string, unknown>>): void {
    this.confirmed('perform', identifier);
    if (Object.prototype.hasOwnProperty.call(data, 'action')) {
      throw new LocalProtocolError('perform data must not hold "action": pass it as action');
    }
    const fields = new Map<string, unknown>([['action', action], ...Object.entries(data)]);
    let text: string;
    try {
      text = dumps(fields);
    } catch (exc) {
      if (exc instanceof JsonEncodeError) {
        throw new LocalProtocolError(`perform data cannot be encoded as JSON: ${exc.message}`);
      }
      throw exc;
    }
    this.send(messageCommand(identifier, text));
  }

  /** Ask for readings after `since` (unix seconds), or after the last positions. */
  requestHistory(identifier: string, options: { since?: number | null } = {}): void {
    if (!isExtended(this.subprotocol)) {
      throw new LocalProtocolError(
        `history needs an extended subprotocol, not ${this.subprotocol}`
      );
    }
    const sub = this.confirmed('requestHistory', identifier);
    let request: HistoryRequest;
    if (options.since !== undefined && options.since !== null) {
      request = new HistoryRequest({ since: options.since });
    } else if (sub.positions.size > 0) {
      request = new HistoryRequest({ streams: sub.positions });
    } else {
      throw new LocalProtocolError(
        `requestHistory(${pyStrRepr(identifier)}): no row received yet, so pass since`
      );
    }
    this.sendHistory(identifier, sub, request);
  }

  private sub(method: string, identifier: string): Subscription {
    const sub = this.subs.get(identifier);
    if (sub === undefined) {
      throw new LocalProtocolError(`${method}(${pyStrRepr(identifier)}): no such subscription`);
    }
    return sub;
  }

  private confirmed(method: string, identifier: string): Subscription {
    const sub = this.sub(method, identifier);
    if (sub.state !== SubscriptionState.CONFIRMED) {
      throw new LocalProtocolError(
        `${method}(${pyStrRepr(identifier)}): the subscription is ${sub.state}, not confirmed`
      );
    }
    return sub;
  }

  private sendSubscribe(identifier: string, sub: Subscription): void {
    const request = this.catchUp(sub);
    if (request !== null) {
      sub.inflight.push({ request, held: new Map(sub.positions) });
    }
    sub.state = SubscriptionState.PENDING;
    sub.sent = true;
    this.send(subscribeCommand(identifier, request));
  }

  private sendHistory(identifier: string, sub: Subscription, request: HistoryRequest): void {
    sub.inflight.push({ request, held: new Map(sub.positions) });
    this.send(historyCommand(identifier, request));
  }

  /** The history that makes a (re)subscription lose nothing and repeat nothing. */
  private catchUp(sub: Subscription): HistoryRequest | null {
    if (!isExtended(this.subprotocol)) {
      return null;
    }
    if (sub.positions.size > 0) {
      return new HistoryRequest({ streams: sub.positions });
    }
    if (sub.history !== null) {
      return sub.history;
    }
    if (sub.liveSince !== null) {
      // Live before, but no row came: ask for what arrived since it went live.
      return new HistoryRequest({ since: sub.liveSince });
    }
    return null;
  }

  private send(command: Map<string, unknown>): void {
    this.out.push(dumps(command));
  }

  // -- input ----------------------------------------------------------------------------------

  /**
   * Process one frame from the server. Never throws on what the server sends: a frame
   * it cannot understand becomes a ServerError event.
   */
  receiveText(text: string, now: number): void {
    if (!this.open) {
      throw new LocalProtocolError('receiveText() before connectionOpened()');
    }
    this.lastReceived = now;
    let frame: JsonValue | undefined = undefined;
    try {
      frame = decodeJson(text);
      if (!isJsonObject(frame)) {
        throw malformed(`a server frame must be a JSON object, got ${describe(frame)}`);
      }
      this.dispatch(frame, now);
    } catch (exc) {
      if (exc instanceof RemoteProtocolError) {
        const found = salvage(text, frame);
        if (found === null) {
          this.events.push(new ServerError(ErrorCode.MALFORMED_FRAME, exc.message));
        } else {
          this.undecodable(found[0], found[1], found[2], exc.message);
        }
        return;
      }
      throw exc;
    }
  }

  /**
   * A data or batch frame of `identifier` that this client cannot decode.
   *
   * Its rows are a gap of the subscription, never a reason to drop anything else. When
   * the stream's position is known (same epoch) and no history answer is in flight,
   * history is asked again from that position: the server's answer may hold the rows in
   * frames this client can read; the gap is reported only if it fails too (or the
   * connection goes first). Asking is not repeated, so it cannot loop.
   */
  private undecodable(
    identifier: string,
    streamId: string | null,
    epoch: string | null,
    why: string
  ): void {
    const sub = this.subs.get(identifier);
    if (sub === undefined) {
      // Not ours (any more): nothing to attribute it to, a cable-level warning.
      this.events.push(new ServerError(ErrorCode.MALFORMED_FRAME, why));
      return;
    }
    const known = streamId !== null ? sub.positions.get(streamId) : undefined;
    if (streamId === null || epoch === null || known === undefined) {
      const after = known !== undefined ? known.offset : null;
      this.reportUndecodable(identifier, streamId, sub, after, why, '', epoch);
      return;
    }
    if (known.epoch !== epoch) {
      // Undecodable rows of a new epoch: one gap, and the stream goes on in that epoch
      // (its change is not reported twice).
      this.reportUndecodable(identifier, streamId, sub, known.offset, why, '', epoch);
      restartStream(sub, streamId, new StreamPosition(epoch, -1));
      return;
    }
    if (
      isExtended(this.subprotocol) &&
      sub.state === SubscriptionState.CONFIRMED &&
      sub.inflight.length === 0
    ) {
      sub.unread = [streamId, known.offset, why];
      // Rows after the frame may arrive before the answer: they start the held range
      // afresh, so that the answer's rows before them count as a backfill.
      sub.floors.delete(streamId);
      this.sendHistory(
        identifier,
        sub,
        new HistoryRequest({ streams: new Map([[streamId, known]]) })
      );
      return;
    }
    let after = known.offset;
    let again = '';
    if (sub.unread !== null && sub.unread[0] === streamId) {
      after = sub.unread[1];
      sub.unread = null;
      again = FAILED_AGAIN;
    }
    this.reportUndecodable(identifier, streamId, sub, after, why, again);
  }

  private reportUndecodable(
    identifier: string,
    streamId: string | null,
    sub: Subscription,
    after: number | null,
    why: string,
    again: string,
    epoch: string | null = null
  ): void {
    const known = streamId !== null ? sub.positions.get(streamId) : undefined;
    if (epoch === null && known !== undefined) {
      epoch = known.epoch;
    }
    const reason = undecodableReason(streamId, after, why, again);
    this.events.push(
      new GapReported(identifier, streamId, reason, false, after, null, epoch, null, true)
    );
  }

  private dispatch(frame: JsonObject, now: number): void {
    const kind = member(frame, 'type');
    if (kind === undefined || kind === null) {
      this.onIdentified(frame);
    } else if (kind === MessageType.WELCOME) {
      this.onWelcome(frame, now);
    } else if (kind === MessageType.PING) {
      // only keeps the connection fresh, which any frame does
    } else if (kind === MessageType.CONFIRM_SUBSCRIPTION) {
      this.onConfirm(frame, now);
    } else if (kind === MessageType.REJECT_SUBSCRIPTION) {
      this.onReject(frame);
    } else if (kind === MessageType.CONFIRM_HISTORY) {
      const identifier = str(frame, 'identifier');
      const sub = this.subs.get(identifier);
      if (sub !== undefined) {
        sub.historyAnswered();
        this.events.push(new HistoryConfirmed(identifier));
      }
    } else if (kind === MessageType.REJECT_HISTORY) {
      this.onRejectHistory(frame);
    } else if (kind === MessageType.DISCONNECT) {
      const reconnect = hasMember(frame, 'reconnect') ? member(frame, 'reconnect') : true;
      if (typeof reconnect !== 'boolean') {
        throw malformed(`disconnect "reconnect" must be true or false, got ${describe(reconnect)}`);
      }
      const said = new Disconnected(str(frame, 'reason'), reconnect);
      this.disconnect = said;
      this.connected = false;
      this.events.push(said);
    } else if (kind === MessageType.BROKER) {
      this.events.push(new BrokerStatus(str(frame, 'state'), str(frame, 'detail')));
    } else if (kind === MessageType.ERROR) {
      this.events.push(new ServerError(str(frame, 'reason'), str(frame, 'message')));
    } else if (typeof kind === 'string') {
      this.events.push(
        new ServerError(ErrorCode.UNKNOWN_MESSAGE, `unknown message type "${excerpt(kind)}"`)
      );
    } else {
      throw malformed(`"type" must be a string, got ${describe(kind)}`);
    }
  }

  private onWelcome(frame: JsonObject, now: number): void {
    if (this.connected) {
      throw malformed('a second welcome on one connection');
    }
    const sid = hasMember(frame, 'sid') ? member(frame, 'sid') : '';
    if (typeof sid !== 'string') {
      throw malformed(`welcome "sid" must be a string, got ${describe(sid)}`);
    }
    const restored = member(frame, 'restored') === true;
    let restoredIds: readonly string[] = [];
    if (restored) {
      const rawIds = hasMember(frame, 'restored_ids') ? member(frame, 'restored_ids') : [];
      if (!Array.isArray(rawIds) || !rawIds.every(id => typeof id === 'string')) {
        throw malformed(
          `welcome "restored_ids" must be an array of strings, got ${describe(rawIds)}`
        );
      }
      restoredIds = Object.freeze([...(rawIds as readonly string[])]);
    }
    this.sid = sid || null;
    this.connected = true;
    this.welcomedAt = now;
    this.events.push(new Welcomed(sid, restored, restoredIds));
    const kept = new Set(restoredIds);
    for (const [identifier, sub] of this.subs) {
      if (sub.state === SubscriptionState.REJECTED) {
        continue;
      }
      if (kept.has(identifier) && sub.liveSince !== null) {
        // The server kept it: catch up on what the outage cost, no resubscribe.
        sub.state = SubscriptionState.CONFIRMED;
        sub.sent = true;
        this.events.push(new SubscriptionConfirmed(identifier, sub.meta));
        const request = this.catchUp(sub);
        if (request !== null) {
          this.sendHistory(identifier, sub, request);
        }
      } else {
        // Restored but never confirmed to us: subscribe again to get the meta; the
        // server confirms a duplicate without bothering its application.
        this.sendSubscribe(identifier, sub);
      }
    }
    for (const identifier of restoredIds) {
      if (!this.subs.has(identifier)) {
        this.send(unsubscribeCommand(identifier));
      }
    }
  }

  private onConfirm(frame: JsonObject, now: number): void {
    const identifier = str(frame, 'identifier');
    const meta = hasMember(frame, 'meta') ? member(frame, 'meta') : EMPTY_META;
    if (!isJsonObject(meta)) {
      throw malformed(`confirm_subscription "meta" must be an object, got ${describe(meta)}`);
    }
    const sub = this.subs.get(identifier);
    // A confirm for something no longer pending answers a subscribe we have since
    // withdrawn (or duplicated): nothing to do.
    if (sub === undefined || sub.state !== SubscriptionState.PENDING) {
      return;
    }
    sub.state = SubscriptionState.CONFIRMED;
    sub.meta = Object.freeze(meta);
    if (sub.liveSince === null) {
      sub.liveSince = now;
    }
    this.events.push(new SubscriptionConfirmed(identifier, sub.meta));
  }

  private onReject(frame: JsonObject): void {
    const identifier = str(frame, 'identifier');
    const reason = hasMember(frame, 'reason')
      ? member(frame, 'reason')
      : 'the server rejected the subscription without a reason';
    if (typeof reason !== 'string') {
      throw malformed(`reject_subscription "reason" must be a string, got ${describe(reason)}`);
    }
    const sub = this.subs.get(identifier);
    if (sub === undefined || sub.state !== SubscriptionState.PENDING) {
      return;
    }
    sub.state = SubscriptionState.REJECTED;
    sub.reason = reason;
    sub.inflight = [];
    sub.unread = null;
    this.events.push(new SubscriptionRejected(identifier, reason));
  }

  private onRejectHistory(frame: JsonObject): void {
    const identifier = str(frame, 'identifier');
    const reason = str(frame, 'reason');
    const streamId = optStr(frame, 'stream_id');
    const epoch = streamId !== null ? str(frame, 'epoch') : null;
    const availableFrom = optInt(frame, 'available_from');
    const sub = this.subs.get(identifier);
    if (sub === undefined) {
      return;
    }
    const asked = sub.inflight.length > 0 ? sub.inflight[0] : null;
    sub.historyAnswered();
    const since = asked !== null ? asked.request.since : null;
    if (streamId === null || epoch === null) {
      this.events.push(new GapReported(identifier, null, reason, false, null, null, null, since));
      return;
    }
    const held = gapStart(sub, asked, streamId);
    this.reportRejected(identifier, sub, streamId, epoch, held, reason, availableFrom, since);
    const askedFrom = asked !== null ? asked.request.streams.get(streamId) : undefined;
    if (availableFrom === null || sub.state !== SubscriptionState.CONFIRMED) {
      return;
    }
    const wanted = new StreamPosition(epoch, availableFrom - 1);
    if (askedFrom !== undefined && askedFrom.epoch === epoch && askedFrom.offset >= wanted.offset) {
      return; // that was already the request: asking again would loop
    }
    this.sendHistory(
      identifier,
      sub,
      new HistoryRequest({ streams: new Map([[streamId, wanted]]) })
    );
  }

  /**
   * Record the gap a `reject_history` about a stream reports, once per restart.
   * `held` is the position the gap starts after (null: nothing was held).
   */
  private reportRejected(
    identifier: string,
    sub: Subscription,
    streamId: string,
    epoch: string,
    held: StreamPosition | null,
    reason: string,
    availableFrom: number | null,
    since: number | null
  ): void {
    const known = sub.positions.get(streamId);
    const epochChanged = held !== null && held.epoch !== epoch;
    if (epochChanged && known !== undefined && known.epoch === epoch) {
      // Rows of the new epoch came first (the server sends what it keeps, then the
      // reject) and acceptRows has reported this restart: one restart, one gap.
      return;
    }
    const afterOffset = held !== null ? held.offset : null;
    this.events.push(
      new GapReported(
        identifier,
        streamId,
        reason,
        epochChanged,
        afterOffset,
        availableFrom,
        epoch,
        since
      )
    );
    if (epochChanged) {
      // What follows comes from the new epoch; do not report its change twice.
      const start = availableFrom !== null ? availableFrom - 1 : -1;
      restartStream(sub, streamId, new StreamPosition(epoch, start));
    }
  }

  /** A frame without `type`: a batch, a data frame or a transmission. */
  private onIdentified(frame: JsonObject): void {
    const identifier = str(frame, 'identifier');
    let fields: StreamFields;
    let rows: readonly Row[];
    if (hasMember(frame, 'batch')) {
      fields = streamFields(frame);
      rows = batchRows(member(frame, 'batch'));
    } else if (hasMember(frame, 'offset') || hasMember(frame, 'stream_id')) {
      fields = streamFields(frame);
      rows = [dataRow(frame)];
    } else {
      const message = member(frame, 'message');
      if (!isJsonObject(message)) {
        throw malformed(`a transmission "message" must be an object, got ${describe(message)}`);
      }
      if (this.subs.has(identifier)) {
        this.events.push(new Transmission(identifier, Object.freeze(message)));
      }
      return;
    }
    const sub = this.subs.get(identifier);
    if (sub !== undefined) {
      // rows still in flight after an unsubscribe are dropped
      this.acceptRows(identifier, sub, fields.streamId, fields.epoch, rows, fields.dropped);
    }
  }

  private acceptRows(
    identifier: string,
    sub: Subscription,
    streamId: string,
    epoch: string,
    rows: readonly Row[],
    dropped: number
  ): void {
    let known = sub.positions.get(streamId);
    if (known !== undefined && known.epoch !== epoch) {
      this.events.push(
        new GapReported(
          identifier,
          streamId,
          epochChangeReason(streamId, known, epoch),
          true,
          known.offset,
          null,
          epoch
        )
      );
      known = new StreamPosition(epoch, -1);
      restartStream(sub, streamId, known);
    }
    if (known !== undefined) {
      rows = newRows(sub, streamId, known.offset, rows);
    }
    if (rows.length > 0) {
      const newest = rows[rows.length - 1][0];
      const last = Math.max(known !== undefined ? known.offset : newest, newest);
      sub.positions.set(streamId, new StreamPosition(epoch, last));
      hold(sub, streamId, rows);
    }
    if (rows.length > 0 || dropped) {
      this.events.push(
        new RowsReceived(identifier, streamId, epoch, Object.freeze([...rows]), dropped)
      );
    }
  }
}

function epochChangeReason(streamId: string, known: StreamPosition, epoch: string): string {
  if (epochRun(known.epoch) === epochRun(epoch)) {
    return (
      `stream ${streamId} lost continuity (epoch ${known.epoch} -> ${epoch}): the ` +
      "server's link to the MQTT broker came back without its session, readings " +
      `after offset ${pyIntStr(known.offset)} until the first of the new epoch are missing`
    );
  }
  return (
    `stream ${streamId} restarted (epoch ${known.epoch} -> ${epoch}): ` +
    `readings after offset ${pyIntStr(known.offset)} of the old epoch may be missing`
  );
}

/**
 * The gap is readings the server lost upstream (its broker session), not a restart: the
 * new epoch continues a server run (`RUN.N`, see `epochRun`).
 */
export function continuityLost(event: GapReported): boolean {
  return event.epochChanged && event.epoch !== null && epochRun(event.epoch) !== event.epoch;
}

/** Why readings are missing: the Python client's GapCause (plus `undecodable`). */
export type GapCause = 'not_kept' | 'server_restarted' | 'continuity_lost' | 'undecodable';

/** The cause of a reported gap, as the Python client's `sub.gaps` names it. */
export function gapCause(event: GapReported): GapCause {
  if (event.undecodable) {
    return 'undecodable';
  }
  if (continuityLost(event)) {
    return 'continuity_lost';
  }
  return event.epochChanged ? 'server_restarted' : 'not_kept';
}

const FAILED_AGAIN = ', nor when asked again from history';
const LOST_BEFORE = ', and the connection was lost before history sent it again';

function undecodableReason(
  streamId: string | null,
  after: number | null,
  why: string,
  again: string
): string {
  const where = streamId !== null ? `stream ${streamId}` : 'a stream';
  const readings = after !== null ? `its readings after offset ${pyIntStr(after)}` : 'its readings';
  return (
    `a frame of ${where} could not be decoded by this client (${why})${again}: ` +
    `${readings} up to the next one received are missing`
  );
}

const JSON_STRING = '"(?:[^"\\\\]|\\\\.)*"';
/**
 * How the server writes a data or batch frame (protocol/rows.py): the identifier first,
 * then the rows ("message" or "batch"), then stream and epoch (and a data frame's offset,
 * and "dropped") last. Only the ends of the text are searched: the middle may be huge.
 */
const FRAME_HEAD = new RegExp('^\\{"identifier":(' + JSON_STRING + '),"(?:batch|message)":');
const FRAME_TAIL = new RegExp(
  ',"stream_id":(' +
    JSON_STRING +
    '),"epoch":(' +
    JSON_STRING +
    ')(?:,"offset":-?\\d+)?(?:,"dropped":\\d+)?\\}$'
);
const SALVAGE_CHARS = 4096;

/**
 * The identifier, stream and epoch of a data or batch frame that could not be decoded,
 * when they can still be read: from the decoded object, else from the text's two ends.
 * null for any other frame (its identifier is unknown, or it carries no rows).
 */
function salvage(
  text: string,
  frame: JsonValue | undefined
): [string, string | null, string | null] | null {
  if (frame !== undefined) {
    if (!isJsonObject(frame)) {
      return null;
    }
    const kind = member(frame, 'type');
    if (
      (kind !== undefined && kind !== null) ||
      !(hasMember(frame, 'batch') || hasMember(frame, 'offset') || hasMember(frame, 'stream_id'))
    ) {
      return null;
    }
    const identifier = member(frame, 'identifier');
    const streamId = member(frame, 'stream_id');
    const epoch = member(frame, 'epoch');
    if (typeof identifier !== 'string') {
      return null;
    }
    return [
      identifier,
      typeof streamId === 'string' ? streamId : null,
      typeof epoch === 'string' ? epoch : null
    ];
  }
  const start = FRAME_HEAD.exec(text.slice(0, SALVAGE_CHARS));
  const end = FRAME_TAIL.exec(text.slice(-SALVAGE_CHARS));
  let identifier: unknown = null;
  let names: [unknown, unknown] = [null, null];
  try {
    identifier = start !== null ? JSON.parse(start[1]) : null;
    if (end !== null) {
      names = [JSON.parse(end[1]), JSON.parse(end[2])];
    }
  } catch {
    return null;
  }
  if (typeof identifier !== 'string') {
    return null;
  }
  return [identifier, names[0] as string | null, names[1] as string | null];
}

/**
 * The rows not held yet: above the last offset, or below the floor and outside what the
 * history answers in flight have sent so far.
 */
function newRows(
  sub: Subscription,
  streamId: string,
  last: number,
  rows: readonly Row[]
): readonly Row[] {
  const floor = sub.floors.get(streamId) ?? last + 1;
  const [low, high] = sub.backfill.get(streamId) ?? [0, -1];
  return rows.filter(
    ([offset]) => offset > last || (offset < floor && !(low <= offset && offset <= high))
  );
}

/** Widen what the subscription holds by `rows` (already filtered by newRows). */
function hold(sub: Subscription, streamId: string, rows: readonly Row[]): void {
  // Loops, not Math.min(...spread): a batch may hold more rows than a call has arguments.
  let lowest = Infinity;
  for (const [offset] of rows) {
    lowest = Math.min(lowest, offset);
  }
  const floor = sub.floors.get(streamId);
  if (floor === undefined || sub.inflight.length === 0) {
    sub.floors.set(streamId, floor === undefined ? lowest : Math.min(floor, lowest));
    return;
  }
  let belowLow = Infinity;
  let belowHigh = -Infinity;
  for (const [offset] of rows) {
    if (offset < floor) {
      belowLow = Math.min(belowLow, offset);
      belowHigh = Math.max(belowHigh, offset);
    }
  }
  if (belowLow !== Infinity) {
    const [low, high] = sub.backfill.get(streamId) ?? [belowLow, belowHigh];
    sub.backfill.set(streamId, [Math.min(low, belowLow), Math.max(high, belowHigh)]);
  }
}

/**
 * Where the gap a `reject_history` reports starts (null: nothing was held).
 *
 * After the position the request asked from, else after what was held when it was sent:
 * rows the server sends just before its reject may have moved the position since.
 */
function gapStart(sub: Subscription, asked: Asked | null, streamId: string): StreamPosition | null {
  if (asked === null) {
    // a reject nobody asked for: all we know is the position now
    return sub.positions.get(streamId) ?? null;
  }
  return asked.request.streams.get(streamId) ?? asked.held.get(streamId) ?? null;
}

/**
 * Hold `position` of a new epoch, and nothing of the old one: offsets start again, so the
 * old epoch's lowest offset must not make new rows look like duplicates.
 */
function restartStream(sub: Subscription, streamId: string, position: StreamPosition): void {
  sub.positions.set(streamId, position);
  sub.floors.delete(streamId);
  sub.backfill.delete(streamId);
}
