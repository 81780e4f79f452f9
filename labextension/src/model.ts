/**
 * What the sidebar and the status bar show, in one place: the channels this user may
 * read or write, their counters and rate history, the broker's health, and why there is
 * nothing to show when there is not (extension not enabled, not configured, forbidden).
 *
 * The status is polled by a `@lumino/polling` Poll, as JupyterLab's own services poll:
 * every `pollInterval` (a setting), on standby while the browser tab is hidden, backing
 * off while the server does not answer, and at once when the cable reconnects after a
 * problem. The cable's `broker` events, when a socket is open, update the broker's state
 * between polls.
 */

import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiProblem,
  fetchChannels,
  fetchStatus,
  IBrokerHealth,
  IChannelCounters,
  IChannelInfo,
  IStatus
} from './api';
import { RateSeries } from './sparkline';
import { CableTransport, IBrokerEvent, TransportState } from './transport';

/** The settings of schema/plugin.json, as the model uses them. */
export interface IModelSettings {
  /** Milliseconds between status polls. */
  pollInterval: number;
  /** Readings an expanded channel shows. */
  readingsShown: number;
}

export const DEFAULT_SETTINGS: IModelSettings = { pollInterval: 3000, readingsShown: 5 };

/** The longest wait between polls while the server does not answer (ms). */
const MAX_BACKOFF = 30_000;

export interface IModelOptions extends Partial<IModelSettings> {
  serverSettings?: ServerConnection.ISettings;
  transport: CableTransport;
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
    this.serverSettings = options.serverSettings ?? ServerConnection.makeSettings();
    this.transport = options.transport;
    this.sparklineWindow = options.sparklineWindow ?? 300;
    this._readingsShown = options.readingsShown ?? DEFAULT_SETTINGS.readingsShown;
    this._poll = new Poll({
      auto: false,
      factory: () => this._fetch(),
      frequency: pollFrequency(options.pollInterval ?? DEFAULT_SETTINGS.pollInterval),
      name: 'jupyter-iotcable:status',
      standby: 'when-hidden'
    });
    this.transport.brokerChanged.connect(this._onBrokerEvent, this);
    this.transport.stateChanged.connect(this._onTransportState, this);
  }

  readonly serverSettings: ServerConnection.ISettings;
  readonly transport: CableTransport;
  readonly sparklineWindow: number;

  /** Milliseconds between polls (while the server answers). */
  get pollInterval(): number {
    return this._poll.frequency.interval;
  }

  /** How many readings an expanded channel shows. */
  get readingsShown(): number {
    return this._readingsShown;
  }

  /** Apply the user's settings (the Settings Editor changes them while Lab runs). */
  configure(settings: Partial<IModelSettings>): void {
    if (settings.pollInterval !== undefined) {
      this._poll.frequency = pollFrequency(settings.pollInterval);
    }
    if (settings.readingsShown !== undefined && settings.readingsShown !== this._readingsShown) {
      this._readingsShown = settings.readingsShown;
      this._changed.emit();
    }
  }

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
    return status && status.configured === false ? (status.hint ?? '') : null;
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
    if (this._disposed) {
      return;
    }
    void this._poll.start();
  }

  /** Poll now, fetching the channel list again; resolves once that poll has run. */
  async refresh(): Promise<void> {
    if (this._disposed) {
      return;
    }
    this._channelsStale = true;
    await this._poll.refresh();
    await this._poll.tick;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll.dispose();
    this.transport.brokerChanged.disconnect(this._onBrokerEvent, this);
    this.transport.stateChanged.disconnect(this._onTransportState, this);
    Signal.clearData(this);
  }

  /**
   * One poll: the status, and the channel list when it may have changed. Rejects when
   * the server did not answer as it should, so that the Poll backs off.
   */
  private async _fetch(): Promise<void> {
    if (this._disposed) {
      return;
    }
    const serial = ++this._serial;
    try {
      const status = await fetchStatus(this.serverSettings);
      if (serial !== this._serial || this._disposed) {
        return;
      }
      const now = Date.now() / 1000;
      const configuredBefore = this._status?.configured !== false;
      if (status.configured === false) {
        this._channels = [];
      } else if (
        this._channelsStale ||
        !configuredBefore ||
        now - this._channelsAt > CHANNELS_REFRESH
      ) {
        const list = await fetchChannels(this.serverSettings);
        if (serial !== this._serial || this._disposed) {
          return;
        }
        this._channels = list.channels;
        this._user = list.user;
        this._channelsAt = now;
        this._channelsStale = false;
      }
      this._status = status;
      this._problem = null;
      this._updatedAt = now;
      for (const channel of this._channels) {
        const counters = status.channels?.[channel.name];
        if (counters) {
          this.series(channel.name).add(now, counters.rate);
        }
      }
      this._changed.emit();
    } catch (error) {
      if (serial !== this._serial || this._disposed) {
        return;
      }
      const problem =
        error instanceof ApiProblem ? error : new ApiProblem('server_error', String(error));
      this._problem = problem;
      this._channelsStale = true;
      if (problem.kind !== 'unreachable' && problem.kind !== 'server_error') {
        // An answer that will not change by itself: nothing of the old lists holds.
        this._status = null;
        this._channels = [];
      }
      // Unreachable or failing: most likely a restart. Keep the channels (and what is
      // expanded, and its subscription, which reconnects by itself) until it answers.
      this._changed.emit();
      throw problem;
    }
  }

  /** The cable is back after a problem (a server restart): ask for the status now. */
  private _onTransportState(_: CableTransport, state: TransportState): void {
    if (state === 'connected' && this._problem !== null) {
      void this._poll.refresh();
    }
  }

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

  private _poll: Poll;
  private _readingsShown: number;
  private _channels: IChannelInfo[] = [];
  private _user: string | null = null;
  private _status: IStatus | null = null;
  private _problem: ApiProblem | null = null;
  private _updatedAt: number | null = null;
  private _series = new Map<string, RateSeries>();
  private _channelsAt = 0;
  private _channelsStale = true;
  private _serial = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

/** Seconds after which the channel list is fetched again (an admin may change it). */
const CHANNELS_REFRESH = 30;

/** Every `interval` ms; after failures up to 3 times longer each time, at most 30 s. */
function pollFrequency(interval: number): { interval: number; backoff: boolean; max: number } {
  const ms = Math.max(250, Math.round(interval));
  return { interval: ms, backoff: true, max: Math.max(MAX_BACKOFF, ms) };
}
