/**
 * The extension's only WebSocket code: one socket to `{baseUrl}iotcable/cable`, driven
 * by the sans-I/O client machine (./protocol, a mirror of jupyter_iotcable/protocol).
 *
 * The machine decides everything protocol-related (what to send, what a frame means,
 * whether and when to reconnect); this class only moves text between it and the socket,
 * gives it the time, and runs its timers: the reconnect delay it asks for and a
 * staleness check (a socket that received nothing for two ping intervals is dead even
 * if the browser has not noticed). Reconnects carry `?sid=` so the server can restore
 * the session; the machine then catches up from its last positions.
 *
 * Authentication: browsers cannot set headers on a WebSocket, so the token goes in the
 * query when the page has one (`settings.token`); otherwise the Jupyter cookie
 * authenticates, same-origin.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  BrokerStatus,
  ClientConnection,
  Disconnected,
  GapReported,
  makeIdentifier,
  RowsReceived,
  ServerError,
  Subprotocol,
  SubscriptionConfirmed,
  SubscriptionRejected,
  Welcomed
} from './protocol';
import type { ClientEvent, Row } from './protocol';

/** The socket's state, for people: what the panel shows next to "live". */
export type TransportState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** A subscription's state as its handle reports it. */
export type HandleState = 'pending' | 'confirmed' | 'rejected' | 'closed';

export interface IBrokerEvent {
  state: string;
  detail: string;
}

/** A live subscription of one consumer (several consumers may share one identifier). */
export interface ISubscriptionHandle extends IDisposable {
  readonly identifier: string;
  readonly state: HandleState;
  /** Why the server rejected it (or why the transport closed), when it did. */
  readonly reason: string | null;
  /** The channel facts from the confirm (`columns`, `format`). */
  readonly meta: Readonly<Record<string, unknown>>;
  /** New rows, duplicates already removed by the machine. */
  onRows(callback: (rows: readonly Row[], dropped: number) => void): IDisposable;
  onState(callback: (state: HandleState, reason: string | null) => void): IDisposable;
  onGap(callback: (gap: GapReported) => void): IDisposable;
}

export interface ITransportOptions {
  serverSettings?: ServerConnection.ISettings;
  /** Unix seconds; injectable for tests. */
  now?: () => number;
  /** The WebSocket constructor (tests may pass another). */
  webSocket?: typeof WebSocket;
}

/** The subprotocol our clients offer: batched rows, history, resume. */
export const OFFERED_SUBPROTOCOL = Subprotocol.IOTCABLE;

/** How often the transport asks the machine whether the socket went stale (ms). */
const STALE_CHECK_MS = 1000;

export class CableTransport implements IDisposable {
  constructor(options: ITransportOptions = {}) {
    this._settings = options.serverSettings ?? ServerConnection.makeSettings();
    this._now = options.now ?? (() => Date.now() / 1000);
    this._WebSocket = options.webSocket ?? this._settings.WebSocket;
    this._machine = new ClientConnection({ subprotocol: OFFERED_SUBPROTOCOL });
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get state(): TransportState {
    return this._state;
  }

  /** Why the last connection ended (a `disconnect` reason or `connection_lost`). */
  get lastReason(): string | null {
    return this._lastReason;
  }

  /** The broker's health as the last `broker` event said (null before any). */
  get broker(): IBrokerEvent | null {
    return this._broker;
  }

  get stateChanged(): ISignal<this, TransportState> {
    return this._stateChanged;
  }

  get brokerChanged(): ISignal<this, IBrokerEvent> {
    return this._brokerChanged;
  }

  /** `error` frames and frames the machine could not understand. */
  get serverError(): ISignal<this, ServerError> {
    return this._serverError;
  }

  /** The URL of the cable for the next connection (token and sid in the query). */
  cableUrl(): string {
    const base = URLExt.join(this._settings.wsUrl, 'iotcable/cable');
    const query: Record<string, string> = { ...this._machine.resumeQuery() };
    if (this._settings.token) {
      query.token = this._settings.token;
    }
    const search = URLExt.objectToQueryString(query);
    return search ? base + search : base;
  }

  /**
   * Keep the socket open even with no subscription (to hear `broker` events). Each
   * `hold` is released by disposing what it returns.
   */
  hold(): IDisposable {
    this._holds += 1;
    this._ensureOpen();
    let released = false;
    return {
      get isDisposed() {
        return released;
      },
      dispose: () => {
        if (released) {
          return;
        }
        released = true;
        this._holds -= 1;
        this._maybeClose();
      }
    };
  }

  /** Subscribe to `channel` (narrowed to `topic`, an MQTT filter inside it). */
  subscribe(channel: string, options: { topic?: string } = {}): ISubscriptionHandle {
    if (this._disposed) {
      throw new Error('the transport is disposed');
    }
    const params: Record<string, string> = {};
    if (options.topic) {
      params.topic = options.topic;
    }
    const identifier = this._machineSubscribe(channel, params);
    let shared = this._subs.get(identifier);
    if (!shared) {
      shared = new SharedSubscription(identifier);
      this._subs.set(identifier, shared);
    }
    const handle = new Handle(shared, () => this._release(identifier, handle));
    shared.handles.add(handle);
    this._ensureOpen();
    this._flush();
    return handle;
  }

  /** Drop the socket now and reconnect at once (the panel's "refresh"). */
  reconnectNow(): void {
    if (this._socket) {
      this._socket.close();
    } else if (this._wanted()) {
      this._clearReconnect();
      this._open();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._clearReconnect();
    this._stopStaleCheck();
    for (const shared of this._subs.values()) {
      shared.close('the transport was disposed');
    }
    this._subs.clear();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      this._detach(socket);
      socket.close();
    }
    this._setState('closed');
    Signal.clearData(this);
  }

  // -- private ------------------------------------------------------------------------

  private _machineSubscribe(channel: string, params: Record<string, string>): string {
    // The machine refuses a second subscribe to one identifier: share it instead.
    const identifier = makeIdentifier(channel, params);
    if (this._subs.has(identifier)) {
      return identifier;
    }
    return this._machine.subscribe(channel, params);
  }

  private _release(identifier: string, handle: Handle): void {
    const shared = this._subs.get(identifier);
    if (!shared) {
      return;
    }
    shared.handles.delete(handle);
    if (shared.handles.size === 0) {
      this._subs.delete(identifier);
      // Also for a rejected one: the machine keeps it until told (it sends nothing then).
      this._machine.unsubscribe(identifier);
      this._flush();
      this._maybeClose();
    }
  }

  private _wanted(): boolean {
    return !this._disposed && (this._holds > 0 || this._subs.size > 0);
  }

  private _ensureOpen(): void {
    if (this._socket || this._reconnectTimer !== null || !this._wanted()) {
      return;
    }
    if (this._state === 'closed' && this._lastReason !== null) {
      // The server said not to come back (unauthorized, token_expired): a new
      // subscription is a new attempt, the user's choice.
      this._lastReason = null;
    }
    this._open();
  }

  private _maybeClose(): void {
    if (this._wanted()) {
      return;
    }
    this._clearReconnect();
    const socket = this._socket;
    if (socket) {
      // The close handler tells the machine; no reconnect since nothing is wanted.
      socket.close(1000);
    } else {
      this._setState('idle');
    }
  }

  private _open(): void {
    this._setState(this._everConnected ? 'reconnecting' : 'connecting');
    let socket: WebSocket;
    try {
      socket = new this._WebSocket(this.cableUrl(), [OFFERED_SUBPROTOCOL]);
    } catch (error) {
      // A malformed URL: nothing a retry would fix.
      this._lastReason = String(error);
      this._setState('closed');
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      if (this._socket !== socket) {
        return;
      }
      this._machine.connectionOpened(this._now());
      this._machineOpened = true;
      this._startStaleCheck();
      this._pump();
    };
    socket.onmessage = (event: MessageEvent) => {
      if (this._socket !== socket) {
        return;
      }
      // Text frames only: the server never sends binary ones.
      const text = typeof event.data === 'string' ? event.data : String(event.data);
      this._machine.receiveText(text, this._now());
      this._pump();
    };
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._lost(socket);
    };
    // An error is always followed by a close, which does the work.
    socket.onerror = () => undefined;
  }

  private _lost(socket: WebSocket): void {
    this._detach(socket);
    this._socket = null;
    this._stopStaleCheck();
    // The machine knows only the sockets it was told were opened.
    const decision = this._machineOpened ? this._machine.connectionLost(this._now()) : null;
    this._machineOpened = false;
    // Gaps the loss settles (an undecodable frame history could not bring again) now.
    for (const event of this._machine.eventsReceived()) {
      this._dispatch(event);
    }
    for (const shared of this._subs.values()) {
      if (shared.state === 'confirmed') {
        shared.setState('pending', null);
      }
    }
    if (!this._wanted()) {
      this._setState('idle');
      return;
    }
    if (decision && !decision.reconnect) {
      this._lastReason = decision.reason;
      for (const shared of this._subs.values()) {
        shared.close(`the server closed the connection: ${decision.reason}`);
      }
      this._setState('closed');
      return;
    }
    this._lastReason = decision ? decision.reason : 'connection_lost';
    const delay = decision ? decision.delay : this._failedAttemptDelay();
    this._setState('reconnecting');
    this._reconnectTimer = window.setTimeout(() => {
      this._reconnectTimer = null;
      if (this._wanted() && !this._socket) {
        this._open();
      }
    }, delay * 1000);
  }

  /**
   * A socket that never opened (server down, refused upgrade) is not a connection the
   * machine knew about; it still needs a growing delay, taken from the machine's
   * backoff so that the policy stays in one place.
   */
  private _failedAttemptDelay(): number {
    return this._machine.backoff.nextDelay();
  }

  private _detach(socket: WebSocket): void {
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
  }

  /** Deliver the machine's events, then send what it wants sent. */
  private _pump(): void {
    for (const event of this._machine.eventsReceived()) {
      this._dispatch(event);
    }
    this._flush();
  }

  private _flush(): void {
    const socket = this._socket;
    const out = this._machine.dataToSend();
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      // Not open: the machine resends what matters after the next welcome.
      return;
    }
    for (const text of out) {
      socket.send(text);
    }
  }

  private _dispatch(event: ClientEvent): void {
    if (event instanceof Welcomed) {
      this._everConnected = true;
      this._lastReason = null;
      this._setState('connected');
    } else if (event instanceof SubscriptionConfirmed) {
      const shared = this._subs.get(event.identifier);
      if (shared) {
        shared.meta = { ...event.meta };
        shared.setState('confirmed', null);
      }
    } else if (event instanceof SubscriptionRejected) {
      this._subs.get(event.identifier)?.setState('rejected', event.reason);
    } else if (event instanceof RowsReceived) {
      this._subs.get(event.identifier)?.rows(event.rows, event.dropped);
    } else if (event instanceof GapReported) {
      this._subs.get(event.identifier)?.gap(event);
    } else if (event instanceof BrokerStatus) {
      this._broker = { state: event.state, detail: event.detail };
      this._brokerChanged.emit(this._broker);
    } else if (event instanceof ServerError) {
      this._serverError.emit(event);
    } else if (event instanceof Disconnected) {
      this._lastReason = event.reason;
    }
  }

  private _startStaleCheck(): void {
    this._stopStaleCheck();
    this._staleTimer = window.setInterval(() => {
      if (this._socket && this._machine.isStale(this._now())) {
        // Dead but not closed (a sleeping laptop, a dropped route): close it; the
        // close handler reconnects.
        this._socket.close();
      }
    }, STALE_CHECK_MS);
  }

  private _stopStaleCheck(): void {
    if (this._staleTimer !== null) {
      window.clearInterval(this._staleTimer);
      this._staleTimer = null;
    }
  }

  private _clearReconnect(): void {
    if (this._reconnectTimer !== null) {
      window.clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
    }
  }

  private _setState(state: TransportState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _settings: ServerConnection.ISettings;
  private _now: () => number;
  private _WebSocket: typeof WebSocket;
  private _machine: ClientConnection;
  private _socket: WebSocket | null = null;
  private _machineOpened = false;
  private _everConnected = false;
  private _holds = 0;
  private _subs = new Map<string, SharedSubscription>();
  private _state: TransportState = 'idle';
  private _lastReason: string | null = null;
  private _broker: IBrokerEvent | null = null;
  private _reconnectTimer: number | null = null;
  private _staleTimer: number | null = null;
  private _disposed = false;
  private _stateChanged = new Signal<this, TransportState>(this);
  private _brokerChanged = new Signal<this, IBrokerEvent>(this);
  private _serverError = new Signal<this, ServerError>(this);
}

/** One identifier's state and the handles that share it. */
class SharedSubscription {
  constructor(readonly identifier: string) {}

  state: HandleState = 'pending';
  reason: string | null = null;
  meta: Readonly<Record<string, unknown>> = {};
  readonly handles = new Set<Handle>();

  setState(state: HandleState, reason: string | null): void {
    this.state = state;
    this.reason = reason;
    for (const handle of this.handles) {
      handle.emitState(state, reason);
    }
  }

  rows(rows: readonly Row[], dropped: number): void {
    for (const handle of this.handles) {
      handle.emitRows(rows, dropped);
    }
  }

  gap(gap: GapReported): void {
    for (const handle of this.handles) {
      handle.emitGap(gap);
    }
  }

  close(reason: string): void {
    this.setState('closed', reason);
  }
}

type Listener<A extends unknown[]> = (...args: A) => void;

function listen<A extends unknown[]>(set: Set<Listener<A>>, callback: Listener<A>): IDisposable {
  set.add(callback);
  return {
    get isDisposed() {
      return !set.has(callback);
    },
    dispose: () => {
      set.delete(callback);
    }
  };
}

class Handle implements ISubscriptionHandle {
  constructor(
    private readonly _shared: SharedSubscription,
    private readonly _release: () => void
  ) {}

  get identifier(): string {
    return this._shared.identifier;
  }

  get state(): HandleState {
    return this._disposed ? 'closed' : this._shared.state;
  }

  get reason(): string | null {
    return this._shared.reason;
  }

  get meta(): Readonly<Record<string, unknown>> {
    return this._shared.meta;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  onRows(callback: (rows: readonly Row[], dropped: number) => void): IDisposable {
    return listen(this._rows, callback);
  }

  onState(callback: (state: HandleState, reason: string | null) => void): IDisposable {
    return listen(this._states, callback);
  }

  onGap(callback: (gap: GapReported) => void): IDisposable {
    return listen(this._gaps, callback);
  }

  emitRows(rows: readonly Row[], dropped: number): void {
    this._rows.forEach(cb => cb(rows, dropped));
  }

  emitState(state: HandleState, reason: string | null): void {
    this._states.forEach(cb => cb(state, reason));
  }

  emitGap(gap: GapReported): void {
    this._gaps.forEach(cb => cb(gap));
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._rows.clear();
    this._states.clear();
    this._gaps.clear();
    this._release();
  }

  private _disposed = false;
  private _rows = new Set<Listener<[readonly Row[], number]>>();
  private _states = new Set<Listener<[HandleState, string | null]>>();
  private _gaps = new Set<Listener<[GapReported]>>();
}
