/**
 * The "IoT channels" sidebar: the broker's health, then one row per channel this user
 * may read or write (flags, live rate with a sparkline of the last minutes, subscribers,
 * offset, history size). Expanding a channel subscribes to it through the cable and
 * shows its latest readings live; collapsing it (or hiding the sidebar) unsubscribes.
 *
 * Plain DOM inside a Lumino widget: rows are built once per channel and updated in
 * place on every poll, so keyboard focus and the expanded state survive updates.
 */

import { refreshIcon } from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IBrokerHealth, IChannelCounters, IChannelInfo } from './api';
import { iotIcon } from './icons';
import { brokerLevel, IoTModel } from './model';
import { formatRate, sparklinePath } from './sparkline';
import { HandleState, ISubscriptionHandle } from './transport';
import type { Row } from './protocol';

export const PANEL_ID = 'jupyter-iotcable-panel';

/** Readings kept and shown per expanded channel. */
const LATEST_READINGS = 5;
const SPARK_WIDTH = 200;
const SPARK_HEIGHT = 18;
const SVG_NS = 'http://www.w3.org/2000/svg';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function setText(node: Element, text: string): void {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

const BROKER_WORDS: { [state: string]: string } = {
  connected: 'Broker connected',
  reconnecting: 'Broker reconnecting',
  connecting: 'Broker connecting',
  disconnected: 'Broker disconnected',
  not_configured: 'Not configured'
};

function clock(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function payloadText(payload: unknown): string {
  let text: string;
  try {
    text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  } catch {
    text = String(payload);
  }
  return text.length > 120 ? text.slice(0, 117) + '…' : text;
}

export class IoTPanel extends Widget {
  constructor(readonly model: IoTModel) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-IoTCable-panel');
    this.title.icon = iotIcon;
    this.title.caption = 'IoT channels';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'IoT channels');

    const header = el('header', 'jp-IoTCable-header');
    header.appendChild(el('h2', 'jp-IoTCable-title', 'IoT channels'));
    const refresh = el('button', 'jp-IoTCable-refresh jp-Button jp-mod-minimal');
    refresh.type = 'button';
    refresh.title = 'Refresh';
    refresh.setAttribute('aria-label', 'Refresh the channels and the broker status');
    refreshIcon.element({ container: refresh, tag: 'span' });
    refresh.addEventListener('click', () => {
      void this.model.refresh();
    });
    header.appendChild(refresh);
    this.node.appendChild(header);

    this._broker = new BrokerView();
    this.node.appendChild(this._broker.node);

    this._problem = el('div', 'jp-IoTCable-problem');
    this._problem.setAttribute('role', 'alert');
    this._problem.hidden = true;
    this.node.appendChild(this._problem);

    this._list = el('ul', 'jp-IoTCable-channels');
    this._list.setAttribute('aria-label', 'Channels');
    this.node.appendChild(this._list);

    this._empty = el('p', 'jp-IoTCable-empty', 'No channel is open to you on this server.');
    this._empty.hidden = true;
    this.node.appendChild(this._empty);

    this._footer = el('footer', 'jp-IoTCable-footer');
    this.node.appendChild(this._footer);

    model.changed.connect(this._render, this);
    model.transport.stateChanged.connect(this._renderLive, this);
    this._render();
  }

  /** The row of a channel (for commands and tests); undefined when not listed. */
  row(name: string): ChannelRow | undefined {
    return this._rows.get(name);
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._hold?.dispose();
    this._hold = null;
    for (const row of this._rows.values()) {
      row.dispose();
    }
    this._rows.clear();
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._setVisible(true);
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._setVisible(this.isVisible);
  }

  protected override onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this._setVisible(false);
  }

  protected override onBeforeDetach(msg: Message): void {
    this._setVisible(false);
    super.onBeforeDetach(msg);
  }

  /** Visible: keep the cable open (broker events) and the expanded rows subscribed. */
  private _setVisible(visible: boolean): void {
    this._visible = visible;
    if (visible && this.model.ready && !this._hold) {
      this._hold = this.model.transport.hold();
    } else if (!visible && this._hold) {
      this._hold.dispose();
      this._hold = null;
    }
    for (const row of this._rows.values()) {
      row.setLive(visible);
    }
  }

  private _render(): void {
    const model = this.model;
    // The last broker state is not news while the server itself does not answer.
    this._broker.update(model.problem ? null : model.broker, model.notConfiguredHint !== null);

    const problem = model.problem?.message ?? model.notConfiguredHint;
    this._problem.hidden = !problem;
    setText(this._problem, problem ?? '');
    this._problem.dataset.kind = model.problem
      ? model.problem.kind
      : model.notConfiguredHint
        ? 'not_configured'
        : '';

    // Hold the cable once the server is known to be usable (and the panel is shown).
    if (this._visible && model.ready && !this._hold) {
      this._hold = model.transport.hold();
    } else if (!model.ready && model.channels.length === 0 && this._hold) {
      this._hold.dispose();
      this._hold = null;
    }

    const names = new Set(model.channels.map(c => c.name));
    for (const [name, row] of this._rows) {
      if (!names.has(name)) {
        row.dispose();
        row.node.remove();
        this._rows.delete(name);
      }
    }
    let previous: HTMLElement | null = null;
    for (const info of model.channels) {
      let row = this._rows.get(info.name);
      if (!row) {
        row = new ChannelRow(model, info);
        row.setLive(this._visible);
        this._rows.set(info.name, row);
      }
      // Keep the server's order without re-inserting rows that are in place.
      const expected: ChildNode | null = previous ? previous.nextSibling : this._list.firstChild;
      if (expected !== row.node) {
        this._list.insertBefore(row.node, expected);
      }
      previous = row.node;
      row.update(info, model.counters(info.name));
    }
    this._list.hidden = model.channels.length === 0;
    this._empty.hidden = !(model.ready && model.channels.length === 0);

    const parts: string[] = [];
    if (model.user) {
      parts.push(`Signed in as ${model.user}`);
    }
    if (model.updatedAt !== null) {
      parts.push(`updated ${clock(model.updatedAt)}`);
    }
    setText(this._footer, parts.join(' · '));
  }

  private _renderLive(): void {
    for (const row of this._rows.values()) {
      row.renderLive();
    }
  }

  private _broker: BrokerView;
  private _problem: HTMLDivElement;
  private _list: HTMLUListElement;
  private _empty: HTMLParagraphElement;
  private _footer: HTMLElement;
  private _rows = new Map<string, ChannelRow>();
  private _hold: IDisposable | null = null;
  private _visible = false;
}

/** The broker's health: a coloured dot, the state in words, and the figures that matter. */
class BrokerView {
  constructor() {
    this.node = el('section', 'jp-IoTCable-broker');
    this.node.setAttribute('aria-label', 'MQTT broker');
    const line = el('div', 'jp-IoTCable-broker-line');
    this._dot = el('span', 'jp-IoTCable-dot');
    this._dot.setAttribute('aria-hidden', 'true');
    this._state = el('span', 'jp-IoTCable-broker-state');
    // Announced by screen readers when it changes (connected -> reconnecting...).
    this._state.setAttribute('role', 'status');
    this._state.setAttribute('aria-live', 'polite');
    line.append(this._dot, this._state);
    this._detail = el('div', 'jp-IoTCable-broker-detail');
    this._facts = el('dl', 'jp-IoTCable-broker-facts');
    this.node.append(line, this._detail, this._facts);
    this.node.hidden = true;
  }

  readonly node: HTMLElement;

  update(broker: IBrokerHealth | null, notConfigured: boolean): void {
    this.node.hidden = broker === null || notConfigured;
    if (!broker) {
      return;
    }
    const state = broker.state;
    this.node.dataset.state = state;
    this.node.dataset.level = brokerLevel(state);
    setText(this._state, BROKER_WORDS[state] ?? `Broker ${state}`);
    setText(this._detail, broker.detail ?? '');
    this._detail.hidden = !broker.detail;

    const facts: [string, string, string][] = [];
    if (broker.outages !== undefined) {
      facts.push(['outages', 'Outages', String(broker.outages)]);
    }
    if (broker.last_error) {
      facts.push(['last-error', 'Last error', broker.last_error]);
    }
    if (broker.backlog !== undefined) {
      facts.push(['backlog', 'Backlog', String(broker.backlog)]);
    }
    if (broker.dropped) {
      facts.push(['dropped', 'Dropped', String(broker.dropped)]);
    }
    if (broker.overloaded) {
      facts.push(['overloaded', 'Overloaded', 'yes']);
    }
    if (broker.client_id_conflict) {
      facts.push(['conflict', 'Client id', 'another client is using this server’s broker session']);
    }
    const key = JSON.stringify(facts);
    if (key !== this._factsKey) {
      this._factsKey = key;
      this._facts.replaceChildren(
        ...facts.flatMap(([id, label, value]) => {
          const dt = el('dt', '', label);
          const dd = el('dd', `jp-IoTCable-fact-${id}`, value);
          return [dt, dd];
        })
      );
    }
  }

  private _dot: HTMLSpanElement;
  private _state: HTMLSpanElement;
  private _detail: HTMLDivElement;
  private _facts: HTMLDListElement;
  private _factsKey = '';
}

let rowCounter = 0;

/** One channel: a toggle button (name, flags, sparkline, rate), facts, live readings. */
export class ChannelRow implements IDisposable {
  constructor(
    private readonly _model: IoTModel,
    info: IChannelInfo
  ) {
    this.name = info.name;
    const id = `jp-IoTCable-readings-${++rowCounter}`;
    this.node = el('li', 'jp-IoTCable-channel');
    this.node.dataset.channel = info.name;

    this._toggle = el('button', 'jp-IoTCable-channel-toggle');
    this._toggle.type = 'button';
    this._toggle.setAttribute('aria-expanded', 'false');
    this._toggle.setAttribute('aria-controls', id);
    this._toggle.addEventListener('click', () => this.setExpanded(!this._expanded));

    this._caret = el('span', 'jp-IoTCable-caret');
    this._caret.setAttribute('aria-hidden', 'true');
    const name = el('span', 'jp-IoTCable-channel-name', info.name);
    this._flags = el('span', 'jp-IoTCable-flags');
    this._spark = document.createElementNS(SVG_NS, 'svg');
    this._spark.setAttribute('class', 'jp-IoTCable-sparkline');
    // Drawn in a fixed box, stretched to the sidebar's width by CSS.
    this._spark.setAttribute('viewBox', `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`);
    this._spark.setAttribute('preserveAspectRatio', 'none');
    this._spark.setAttribute('role', 'img');
    this._sparkPath = document.createElementNS(SVG_NS, 'path');
    this._sparkPath.setAttribute('vector-effect', 'non-scaling-stroke');
    this._spark.appendChild(this._sparkPath);
    this._rate = el('span', 'jp-IoTCable-rate');
    this._toggle.append(this._caret, name, this._flags, this._rate);

    this._description = el('div', 'jp-IoTCable-description');
    this._facts = el('div', 'jp-IoTCable-facts');
    this._subscribers = el('span', 'jp-IoTCable-subscribers');
    this._offset = el('span', 'jp-IoTCable-offset');
    this._history = el('span', 'jp-IoTCable-history');
    this._facts.append(this._subscribers, this._offset, this._history);

    this._readings = el('div', 'jp-IoTCable-readings');
    this._readings.id = id;
    this._readings.hidden = true;
    this._readings.setAttribute('aria-label', `Latest readings of ${info.name}`);
    this._liveState = el('div', 'jp-IoTCable-live-state');
    this._liveState.setAttribute('aria-live', 'polite');
    this._topics = el('div', 'jp-IoTCable-topics');
    this._table = el('ol', 'jp-IoTCable-latest');
    this._readings.append(this._liveState, this._topics, this._table);

    this.node.append(this._toggle, this._description, this._spark, this._facts, this._readings);
  }

  readonly name: string;
  readonly node: HTMLLIElement;

  get isDisposed(): boolean {
    return this._disposed;
  }

  get expanded(): boolean {
    return this._expanded;
  }

  update(info: IChannelInfo, counters: IChannelCounters | undefined): void {
    this._info = info;
    const flags = [info.read ? 'read' : '', info.write ? 'write' : ''].filter(Boolean);
    this.node.dataset.read = String(info.read);
    this.node.dataset.write = String(info.write);
    const flagKey = flags.join(',');
    if (this._flags.dataset.flags !== flagKey) {
      this._flags.dataset.flags = flagKey;
      this._flags.replaceChildren(
        ...flags.map(flag => {
          const badge = el(
            'span',
            `jp-IoTCable-flag jp-IoTCable-flag-${flag}`,
            flag[0].toUpperCase()
          );
          badge.title = flag === 'read' ? 'you may read' : 'you may write';
          return badge;
        })
      );
      this._flags.setAttribute('aria-label', `you may ${flags.join(' and ')}`);
    }
    setText(this._description, info.description);
    this._description.hidden = !info.description;
    setText(this._topics, `Topics: ${info.topics.join(', ')} · format ${info.format}`);

    const rate = counters?.rate ?? 0;
    setText(this._rate, counters ? formatRate(rate) : '–');
    this.node.dataset.rate = String(rate);
    this._toggle.setAttribute(
      'aria-label',
      `${info.name}: ${counters ? formatRate(rate).replace('/s', ' readings per second') : 'no counters'}` +
        `, ${flags.length ? 'you may ' + flags.join(' and ') : 'no access'}` +
        `. ${this._expanded ? 'Collapse' : 'Expand'} to ${this._expanded ? 'stop' : 'see'} live readings`
    );
    setText(this._subscribers, `${counters?.subscribers ?? 0} subscribers`);
    setText(this._offset, `offset ${counters?.offset ?? '–'}`);
    this._offset.dataset.offset = String(counters?.offset ?? '');
    setText(this._history, `history ${counters?.history?.size ?? 0}`);
    this._facts.hidden = !counters;

    const series = this._model.series(info.name);
    const now = this._model.updatedAt ?? Date.now() / 1000;
    this._sparkPath.setAttribute(
      'd',
      sparklinePath(series.samples, now, this._model.sparklineWindow, SPARK_WIDTH, SPARK_HEIGHT)
    );
    const minutes = Math.round(this._model.sparklineWindow / 60);
    this._spark.setAttribute(
      'aria-label',
      `rate over the last ${minutes} minutes, up to ${formatRate(series.max)}`
    );
  }

  setExpanded(expanded: boolean): void {
    if (expanded === this._expanded) {
      return;
    }
    this._expanded = expanded;
    this.node.classList.toggle('jp-mod-expanded', expanded);
    this._toggle.setAttribute('aria-expanded', String(expanded));
    this._readings.hidden = !expanded;
    if (this._info) {
      this.update(this._info, this._model.counters(this.name));
    }
    this._sync();
  }

  /** Whether the sidebar is shown: subscriptions exist only while it is and expanded. */
  setLive(live: boolean): void {
    this._live = live;
    this._sync();
  }

  /** Re-render the live state line (the transport's state changed). */
  renderLive(): void {
    const handle = this._handle;
    if (!handle) {
      setText(this._liveState, '');
      return;
    }
    const transport = this._model.transport.state;
    let text: string;
    let state: string = handle.state;
    if (handle.state === 'rejected') {
      text = `Refused: ${handle.reason ?? 'no reason given'}`;
    } else if (handle.state === 'closed') {
      text = `Stopped: ${handle.reason ?? ''}`;
    } else if (transport === 'reconnecting' || transport === 'connecting') {
      text = transport === 'connecting' ? 'Connecting…' : 'Connection lost, reconnecting…';
      state = transport;
    } else if (handle.state === 'confirmed') {
      text = this._latest.length ? 'Live' : 'Live, waiting for readings…';
      state = 'live';
    } else {
      text = 'Subscribing…';
    }
    this._liveState.dataset.state = state;
    setText(this._liveState, text);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._unsubscribe();
  }

  private _sync(): void {
    const readable = this._info?.read ?? false;
    const want = this._expanded && this._live && readable && !this._disposed;
    if (this._expanded && !readable) {
      setText(this._liveState, 'You may write to this channel, not read it.');
      return;
    }
    if (want && !this._handle) {
      this._subscribe();
    } else if (!want && this._handle) {
      this._unsubscribe();
    }
    this.renderLive();
  }

  private _subscribe(): void {
    let handle: ISubscriptionHandle;
    try {
      handle = this._model.transport.subscribe(this.name);
    } catch (error) {
      setText(this._liveState, `Cannot subscribe: ${String(error)}`);
      return;
    }
    this._handle = handle;
    this._handleListeners = [
      handle.onRows(rows => this._onRows(rows)),
      handle.onState((state: HandleState) => {
        void state;
        this.renderLive();
      })
    ];
  }

  private _unsubscribe(): void {
    this._handleListeners.forEach(d => d.dispose());
    this._handleListeners = [];
    this._handle?.dispose();
    this._handle = null;
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
      this._frame = null;
    }
  }

  private _onRows(rows: readonly Row[]): void {
    for (const row of rows) {
      this._latest.push(row);
    }
    if (this._latest.length > LATEST_READINGS) {
      this._latest.splice(0, this._latest.length - LATEST_READINGS);
    }
    // Many batches a second on a busy channel: draw once per frame at most.
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._renderReadings();
      });
    }
  }

  private _renderReadings(): void {
    const items = this._latest
      .slice()
      .reverse()
      .map(([offset, time, topic, payload, error]) => {
        const li = el('li', 'jp-IoTCable-reading');
        li.dataset.offset = String(offset);
        li.append(
          el('span', 'jp-IoTCable-reading-time', clock(time)),
          el('span', 'jp-IoTCable-reading-topic', topic),
          el('code', 'jp-IoTCable-reading-payload', payloadText(payload))
        );
        if (error) {
          li.appendChild(el('span', 'jp-IoTCable-reading-error', error));
        }
        return li;
      });
    this._table.replaceChildren(...items);
    this.renderLive();
  }

  private _info: IChannelInfo | null = null;
  private _expanded = false;
  private _live = false;
  private _disposed = false;
  private _handle: ISubscriptionHandle | null = null;
  private _handleListeners: IDisposable[] = [];
  private _latest: Row[] = [];
  private _frame: number | null = null;
  private _toggle: HTMLButtonElement;
  private _caret: HTMLSpanElement;
  private _flags: HTMLSpanElement;
  private _spark: SVGSVGElement;
  private _sparkPath: SVGPathElement;
  private _rate: HTMLSpanElement;
  private _description: HTMLDivElement;
  private _facts: HTMLDivElement;
  private _subscribers: HTMLSpanElement;
  private _offset: HTMLSpanElement;
  private _history: HTMLSpanElement;
  private _readings: HTMLDivElement;
  private _liveState: HTMLDivElement;
  private _topics: HTMLDivElement;
  private _table: HTMLOListElement;
}
