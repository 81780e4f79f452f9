/**
 * What the sidebar and the status bar show, in one place: the channels this user may
 * read or write, their counters and rate history, the broker's health, and why there is
 * nothing to show when there is not (extension not enabled, not configured, forbidden).
 *
 * The status is polled every few seconds (paused while the browser tab is hidden); the
 * cable's `broker` events, when a socket is open, update the broker's state at once
 * between polls.
 */

import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiProblem,
  fetchChannels,
  fetchStatus,
  IBrokerHealth,
  IChannelCounters,
  IChannelInfo,
  IStatus,
  PROBLEM_TEXT
} from './api';
import { RateSeries } from './sparkline';
import { CableTransport, IBrokerEvent } from './transport';

export interface IModelOptions {
  serverSettings?: ServerConnection.ISettings;
  transport: CableTransport;
  /** Milliseconds between status polls. */
  pollInterval?: number;
  /** Seconds of rate history the sparklines show. */
  sparklineWindow?: number;
}

/** The broker states that count as an outage for the status bar's colour. */
export function brokerLevel(state: string | undefined): 'ok' | 'warn' | 'down' | 'unknown' {
  switch (state) {
    case 'connected':
      return 'ok';
    case 'reconnecting':
    case 'connecting':
      return 'warn';
    case 'disconnected':
      return 'down';
    default:
      return 'unknown';
  }
}

export class IoTModel implements IDisposable {
  constructor(options: IModelOptions) {
    this._settings = options.serverSettings ?? ServerConnection.makeSettings();
    this.transport = options.transport;
    this._pollInterval = options.pollInterval ?? 3000;
    this.sparklineWindow = options.sparklineWindow ?? 300;
    this.transport.brokerChanged.connect(this._onBrokerEvent, this);
  }

  readonly transport: CableTransport;
  readonly sparklineWindow: number;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Channels this user may read or write, in the server's order. */
  get channels(): readonly IChannelInfo[] {
    return this._channels;
  }

  get user(): string | null {
    return this._user;
  }

  get status(): IStatus | null {
    return this._status;
  }

  /** Why nothing can be shown (null when the server answered). */
  get problem(): ApiProblem | null {
    return this._problem;
  }

  /** The server's hint when the extension is installed but has no channels. */
  get notConfiguredHint(): string | null {
    const status = this._status;
    return status && status.configured === false ? (status.hint ?? PROBLEM_TEXT.not_enabled) : null;
  }

  /** Usable: the server answered, with channels configured. */
  get ready(): boolean {
    return this._problem === null && this._status !== null && !this.notConfiguredHint;
  }

  get broker(): IBrokerHealth | null {
    return this._status ? this._status.broker : null;
  }

  /** When the last status arrived (unix seconds), null before any. */
  get updatedAt(): number | null {
    return this._updatedAt;
  }

  counters(name: string): IChannelCounters | undefined {
    return this._status?.channels?.[name];
  }

  series(name: string): RateSeries {
    let series = this._series.get(name);
    if (!series) {
      series = new RateSeries(this.sparklineWindow);
      this._series.set(name, series);
    }
    return series;
  }

  /** Readings per second over every channel listed. */
  get totalRate(): number {
    let total = 0;
    for (const channel of this._channels) {
      total += this.counters(channel.name)?.rate ?? 0;
    }
    return total;
  }

  /** Start polling (idempotent). */
  start(): void {
    if (this._started || this._disposed) {
      return;
    }
    this._started = true;
    document.addEventListener('visibilitychange', this._onVisibility);
    void this.refresh();
  }

  /** Poll now (and fetch the channel list again). */
  async refresh(): Promise<void> {
    this._channelsStale = true;
    await this._poll();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._clearTimer();
    document.removeEventListener('visibilitychange', this._onVisibility);
    this.transport.brokerChanged.disconnect(this._onBrokerEvent, this);
    Signal.clearData(this);
  }

  private async _poll(): Promise<void> {
    this._clearTimer();
    if (this._disposed) {
      return;
    }
    const serial = ++this._serial;
    try {
      const status = await fetchStatus(this._settings);
      if (serial !== this._serial || this._disposed) {
        return;
      }
      const now = Date.now() / 1000;
      const configuredBefore = this._status?.configured !== false;
      this._status = status;
      this._problem = null;
      this._updatedAt = now;
      if (status.configured === false) {
        this._channels = [];
      } else {
        if (this._channelsStale || !configuredBefore || now - this._channelsAt > CHANNELS_REFRESH) {
          const list = await fetchChannels(this._settings);
          if (serial !== this._serial || this._disposed) {
            return;
          }
          this._channels = list.channels;
          this._user = list.user;
          this._channelsAt = now;
          this._channelsStale = false;
        }
        for (const channel of this._channels) {
          const counters = status.channels?.[channel.name];
          if (counters) {
            this.series(channel.name).add(now, counters.rate);
          }
        }
      }
    } catch (error) {
      if (serial !== this._serial || this._disposed) {
        return;
      }
      const problem =
        error instanceof ApiProblem
          ? error
          : new ApiProblem('server_error', `${PROBLEM_TEXT.server_error} (${String(error)})`);
      this._problem = problem;
      this._channelsStale = true;
      if (problem.kind !== 'unreachable' && problem.kind !== 'server_error') {
        // An answer that will not change by itself: nothing of the old lists holds.
        this._status = null;
        this._channels = [];
      }
      // Unreachable or failing: most likely a restart. Keep the channels (and what is
      // expanded, and its subscription, which reconnects by itself) until it answers.
    }
    this._changed.emit();
    this._schedule();
  }

  private _schedule(): void {
    this._clearTimer();
    if (!this._started || this._disposed || document.hidden) {
      return;
    }
    this._timer = window.setTimeout(() => void this._poll(), this._pollInterval);
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _onVisibility = (): void => {
    if (!document.hidden) {
      void this._poll();
    } else {
      this._clearTimer();
    }
  };

  private _onBrokerEvent(_: CableTransport, event: IBrokerEvent): void {
    const status = this._status;
    if (!status || status.configured === false) {
      return;
    }
    // The event is newer than the last poll: show it now, the next poll fills the rest.
    this._status = {
      ...status,
      broker: { ...status.broker, state: event.state, detail: event.detail }
    };
    this._changed.emit();
  }

  private _settings: ServerConnection.ISettings;
  private _pollInterval: number;
  private _channels: IChannelInfo[] = [];
  private _user: string | null = null;
  private _status: IStatus | null = null;
  private _problem: ApiProblem | null = null;
  private _updatedAt: number | null = null;
  private _series = new Map<string, RateSeries>();
  private _channelsAt = 0;
  private _channelsStale = true;
  private _serial = 0;
  private _timer: number | null = null;
  private _started = false;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

/** Seconds after which the channel list is fetched again (an admin may change it). */
const CHANNELS_REFRESH = 30;
