/**
 * The "IoT channels" sidebar: the broker's health, then one row per channel this user
 * may read or write (flags, live rate with a sparkline of the last minutes, subscribers,
 * offset, history size). Expanding a channel subscribes to it through the cable and
 * shows its latest readings live, as `field = value` lines; a channel the user may write
 * to also gets a small form to publish to one of its topics, with the server's answer.
 * Collapsing it (or hiding the sidebar) unsubscribes.
 *
 * Plain DOM inside a Lumino widget: rows are built once per channel and updated in
 * place on every poll, so keyboard focus, what is typed in a form and the expanded state
 * survive updates. Every word shown goes through the translator (`trans.__`, `trans._n`).
 */

import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { refreshIcon } from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IBrokerHealth, IChannelCounters, IChannelInfo, problemText, publish } from './api';
import { iotIcon } from './icons';
import { brokerLevel, IoTModel } from './model';
import {
  clockText,
  gapsLine,
  payloadLines,
  publishInput,
  shortTopic,
  topicSuggestions
} from './readings';
import { formatRate, sparklinePath } from './sparkline';
import { HandleState, ISubscriptionHandle } from './transport';
import { gapCause } from './protocol';
import type { GapReported, JsonValue, Row } from './protocol';

export const PANEL_ID = 'jupyter-iotcable-panel';

/** Field lines shown per reading (the others are counted: "+3 more fields"). */
const FIELDS_SHOWN = 8;
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

function brokerWords(state: string, trans: TranslationBundle): string {
  switch (state) {
    case 'connected':
      return trans.__('Broker connected');
    case 'reconnecting':
      return trans.__('Broker reconnecting');
    case 'connecting':
      return trans.__('Broker connecting');
    case 'disconnected':
      return trans.__('Broker disconnected');
    case 'not_configured':
      return trans.__('Not configured');
    default:
      return trans.__('Broker %1', state);
  }
}

/** "12.3 readings per second", for screen readers. */
function rateWords(rate: number, trans: TranslationBundle): string {
  return trans.__('%1 readings per second', formatRate(rate).replace('/s', ''));
}

let idCounter = 0;

export class IoTPanel extends Widget {
  constructor(
    readonly model: IoTModel,
    translator: ITranslator = nullTranslator
  ) {
    super();
    const trans = (this._trans = translator.load('jupyter_iotcable'));
    this.id = PANEL_ID;
    this.addClass('jp-IoTCable-panel');
    this.title.icon = iotIcon;
    this.title.caption = trans.__('IoT channels');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', trans.__('IoT channels'));

    const header = el('header', 'jp-IoTCable-header');
    header.appendChild(el('h2', 'jp-IoTCable-title', trans.__('IoT channels')));
    const refresh = el('button', 'jp-IoTCable-refresh jp-Button jp-mod-minimal');
    refresh.type = 'button';
    refresh.title = trans.__('Refresh');
    refresh.setAttribute('aria-label', trans.__('Refresh the channels and the broker status'));
    refreshIcon.element({ container: refresh, tag: 'span' });
    refresh.addEventListener('click', () => {
      void this.model.refresh();
    });
    header.appendChild(refresh);
    this.node.appendChild(header);

    this._broker = new BrokerView(trans);
    this.node.appendChild(this._broker.node);

    this._problem = el('div', 'jp-IoTCable-problem');
    this._problem.setAttribute('role', 'alert');
    this._problem.hidden = true;
    this.node.appendChild(this._problem);

    this._list = el('ul', 'jp-IoTCable-channels');
    this._list.setAttribute('aria-label', trans.__('Channels'));
    this.node.appendChild(this._list);

    this._empty = el(
      'p',
      'jp-IoTCable-empty',
      trans.__('No channel is open to you on this server.')
    );
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
    const trans = this._trans;
    // The last broker state is not news while the server itself does not answer.
    this._broker.update(model.problem ? null : model.broker, model.notConfiguredHint !== null);

    const problem = model.problem
      ? problemText(model.problem.kind, trans, model.problem.detail)
      : model.notConfiguredHint;
    this._problem.hidden = !problem;
    setText(this._problem, problem ?? '');
    this._problem.dataset.kind = model.problem
      ? model.problem.kind
      : model.notConfiguredHint !== null
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
        row = new ChannelRow(model, info, trans);
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
      parts.push(trans.__('Signed in as %1', model.user));
    }
    if (model.updatedAt !== null) {
      parts.push(trans.__('updated %1', clockText(new Date(model.updatedAt * 1000))));
    }
    setText(this._footer, parts.join(' · '));
  }

  private _renderLive(): void {
    for (const row of this._rows.values()) {
      row.renderLive();
    }
  }

  private _trans: TranslationBundle;
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
  constructor(private readonly _trans: TranslationBundle) {
    this.node = el('section', 'jp-IoTCable-broker');
    this.node.setAttribute('aria-label', _trans.__('MQTT broker'));
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
    const trans = this._trans;
    this.node.hidden = broker === null || notConfigured;
    if (!broker) {
      return;
    }
    const state = broker.state;
    this.node.dataset.state = state;
    this.node.dataset.level = brokerLevel(state);
    setText(this._state, brokerWords(state, trans));
    setText(this._detail, broker.detail ?? '');
    this._detail.hidden = !broker.detail;

    const facts: [string, string, string][] = [];
    if (broker.outages !== undefined) {
      facts.push(['outages', trans.__('Outages'), String(broker.outages)]);
    }
    if (broker.last_error) {
      facts.push(['last-error', trans.__('Last error'), broker.last_error]);
    }
    if (broker.backlog !== undefined) {
      facts.push(['backlog', trans.__('Backlog'), String(broker.backlog)]);
    }
    if (broker.dropped) {
      facts.push(['dropped', trans.__('Dropped'), String(broker.dropped)]);
    }
    if (broker.overloaded) {
      facts.push(['overloaded', trans.__('Overloaded'), trans.__('yes')]);
    }
    if (broker.client_id_conflict) {
      facts.push([
        'conflict',
        trans.__('Client id'),
        trans.__('another client is using this server’s broker session')
      ]);
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

/** One channel: a toggle button (name, flags, sparkline, rate), facts, live readings. */
export class ChannelRow implements IDisposable {
  constructor(
    private readonly _model: IoTModel,
    info: IChannelInfo,
    private readonly _trans: TranslationBundle = nullTranslator.load('jupyter_iotcable')
  ) {
    const trans = _trans;
    this.name = info.name;
    const id = `jp-IoTCable-readings-${++idCounter}`;
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
    this._readings.setAttribute('aria-label', trans.__('Latest readings of %1', info.name));
    this._liveState = el('div', 'jp-IoTCable-live-state');
    this._liveState.setAttribute('aria-live', 'polite');
    // Readings this subscription is known to have missed: how many gaps, the last one.
    this._gaps = el('div', 'jp-IoTCable-gaps');
    this._gaps.hidden = true;
    this._topics = el('div', 'jp-IoTCable-topics');
    this._table = el('ol', 'jp-IoTCable-latest');
    this._readings.append(this._liveState, this._gaps, this._topics, this._table);

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
    const trans = this._trans;
    this._info = info;
    const flags = [info.read ? 'read' : '', info.write ? 'write' : ''].filter(Boolean);
    this.node.dataset.read = String(info.read);
    this.node.dataset.write = String(info.write);
    const flagKey = flags.join(',');
    const mayWords = info.read
      ? info.write
        ? trans.__('you may read and write')
        : trans.__('you may read')
      : info.write
        ? trans.__('you may write')
        : trans.__('no access');
    if (this._flags.dataset.flags !== flagKey) {
      this._flags.dataset.flags = flagKey;
      this._flags.replaceChildren(
        ...flags.map(flag => {
          const badge = el(
            'span',
            `jp-IoTCable-flag jp-IoTCable-flag-${flag}`,
            flag === 'read' ? trans._p('badge: may read', 'R') : trans._p('badge: may write', 'W')
          );
          badge.title = flag === 'read' ? trans.__('you may read') : trans.__('you may write');
          return badge;
        })
      );
      this._flags.setAttribute('aria-label', mayWords);
    }
    setText(this._description, info.description);
    this._description.hidden = !info.description;
    setText(this._topics, trans.__('Topics: %1 · format %2', info.topics.join(', '), info.format));

    // Counters exist for the channels this user may read; a write-only channel has no
    // rate, subscribers or offset to show (not "0 subscribers · offset –").
    const rate = counters?.rate ?? 0;
    setText(this._rate, counters ? formatRate(rate) : '');
    this.node.dataset.rate = String(rate);
    this._spark.style.display = counters ? '' : 'none';
    this._toggle.setAttribute(
      'aria-label',
      [
        info.name,
        counters ? rateWords(rate, trans) : '',
        mayWords,
        this._expanded ? trans.__('Collapse to stop live readings') : trans.__('Expand to see more')
      ]
        .filter(Boolean)
        .join(', ')
    );
    this._facts.hidden = !counters;
    if (counters) {
      const subscribers = counters.subscribers ?? 0;
      setText(this._subscribers, trans._n('%1 subscriber', '%1 subscribers', subscribers));
      setText(this._offset, trans.__('offset %1', counters.offset ?? '–'));
      this._offset.dataset.offset = String(counters.offset ?? '');
      const kept = counters.history?.size ?? 0;
      setText(this._history, trans._n('%1 in history', '%1 in history', kept));
      this._history.title = trans.__(
        'readings the server keeps for history and for resuming after a reconnect'
      );
    } else {
      this._offset.dataset.offset = '';
    }

    if (counters) {
      const series = this._model.series(info.name);
      const now = this._model.updatedAt ?? Date.now() / 1000;
      this._sparkPath.setAttribute(
        'd',
        sparklinePath(series.samples, now, this._model.sparklineWindow, SPARK_WIDTH, SPARK_HEIGHT)
      );
      const minutes = Math.round(this._model.sparklineWindow / 60);
      this._spark.setAttribute(
        'aria-label',
        trans.__('rate over the last %1 minutes, up to %2', minutes, formatRate(series.max))
      );
    }

    if (info.write && !this._form) {
      this._form = new PublishForm(this._model, info, trans);
      this._readings.appendChild(this._form.node);
    } else if (!info.write && this._form) {
      this._form.node.remove();
      this._form = null;
    }
    this._updateForm();
    // The setting may have changed: keep no more readings than are shown.
    if (this._latest.length > this._model.readingsShown) {
      this._latest.splice(0, this._latest.length - this._model.readingsShown);
      this._scheduleRender();
    }
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
    const trans = this._trans;
    const handle = this._handle;
    if (!handle) {
      if (!(this._info?.read ?? true)) {
        this._liveState.dataset.state = 'write-only';
        setText(this._liveState, trans.__('You may write to this channel, not read it.'));
      } else {
        this._liveState.dataset.state = '';
        setText(this._liveState, '');
      }
      return;
    }
    const transport = this._model.transport.state;
    let text: string;
    let state: string = handle.state;
    if (handle.state === 'rejected') {
      text = trans.__('Refused: %1', handle.reason ?? trans.__('no reason given'));
    } else if (handle.state === 'closed') {
      text = trans.__('Stopped: %1', handle.reason ?? '');
    } else if (transport === 'reconnecting' || transport === 'connecting') {
      text =
        transport === 'connecting'
          ? trans.__('Connecting…')
          : trans.__('Connection lost, reconnecting…');
      state = transport;
    } else if (handle.state === 'confirmed') {
      text = this._latest.length ? trans.__('Live') : trans.__('Live, waiting for readings…');
      state = 'live';
    } else {
      text = trans.__('Subscribing…');
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
      setText(this._liveState, this._trans.__('Cannot subscribe: %1', String(error)));
      return;
    }
    this._handle = handle;
    this._gapCount = 0;
    this._gaps.hidden = true;
    this._handleListeners = [
      handle.onRows(rows => this._onRows(rows)),
      handle.onGap(gap => this._onGap(gap)),
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

  private _onGap(gap: GapReported): void {
    this._gapCount += 1;
    this._gaps.hidden = false;
    this._gaps.dataset.cause = gapCause(gap);
    this._gaps.title = gap.reason;
    setText(this._gaps, gapsLine(this._gapCount, gap, this._trans));
  }

  private _onRows(rows: readonly Row[]): void {
    const keep = this._model.readingsShown;
    for (const row of rows.length > keep ? rows.slice(rows.length - keep) : rows) {
      this._latest.push(row);
    }
    if (this._latest.length > keep) {
      this._latest.splice(0, this._latest.length - keep);
    }
    this._scheduleRender();
  }

  /** Many batches a second on a busy channel: draw once per frame at most. */
  private _scheduleRender(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._renderReadings();
      });
    }
  }

  /** The publish form offers the topics of the readings shown, newest first. */
  private _updateForm(): void {
    if (this._form && this._info) {
      const newest = this._latest[this._latest.length - 1];
      this._form.update(
        this._info,
        this._latest.map(row => row[2]).reverse(),
        newest && !newest[4] ? newest[3] : undefined
      );
    }
  }

  private _renderReadings(): void {
    const trans = this._trans;
    const info = this._info;
    const template = this._handle?.meta?.columns;
    const columns = typeof template === 'string' ? template : (info?.columns ?? null);
    const filters = info?.topics ?? [];
    const items = this._latest
      .slice()
      .reverse()
      .map(([offset, time, topic, payload, error]) => {
        const li = el('li', 'jp-IoTCable-reading');
        li.dataset.offset = String(offset);
        const when = new Date(time * 1000);
        const head = el('div', 'jp-IoTCable-reading-head');
        const clock = el('time', 'jp-IoTCable-reading-time', clockText(when));
        clock.dateTime = when.toISOString();
        clock.title = when.toLocaleString();
        const short = shortTopic(topic, columns, filters);
        const topicNode = el('span', 'jp-IoTCable-reading-topic', short.text);
        topicNode.dataset.topic = topic;
        topicNode.title = short.columns.length
          ? `${topic}\n${short.columns.map(([k, v]) => `${k} = ${v}`).join(', ')}`
          : topic;
        head.append(clock, topicNode);
        li.appendChild(head);

        const fields = el('div', 'jp-IoTCable-fields');
        // An undecodable payload arrives as its raw text, with the error beside it.
        const { lines, more } = error
          ? payloadLines(payload, { maxLines: 1 })
          : payloadLines(payload, {
              maxLines: FIELDS_SHOWN,
              timeField: info?.time_field,
              units: info?.units
            });
        for (const line of lines) {
          const key = el('span', 'jp-IoTCable-field-key', error ? trans.__('raw') : line.key);
          const value = el('span', 'jp-IoTCable-field-value', line.text);
          value.dataset.kind = line.kind;
          value.title = line.title;
          key.title = line.key;
          fields.append(key, el('span', 'jp-IoTCable-field-eq', ' = '), value);
        }
        li.appendChild(fields);
        if (more > 0) {
          li.appendChild(
            el('div', 'jp-IoTCable-field-more', trans._n('+%1 more field', '+%1 more fields', more))
          );
        }
        if (error) {
          li.appendChild(el('div', 'jp-IoTCable-reading-error', error));
        }
        return li;
      });
    this._table.replaceChildren(...items);
    this._updateForm();
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
  private _form: PublishForm | null = null;
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
  private _gaps: HTMLDivElement;
  private _gapCount = 0;
  private _topics: HTMLDivElement;
  private _table: HTMLOListElement;
}

/**
 * Publish to one topic of a channel the user may write: the topic (suggested from the
 * channel's readings and its write filters), the payload in the channel's format, Send,
 * and the server's answer (ok, or why not). It goes through the REST endpoint: one
 * request, one answer, no subscription needed (see README, "The JupyterLab extension").
 */
class PublishForm {
  constructor(
    private readonly _model: IoTModel,
    info: IChannelInfo,
    private readonly _trans: TranslationBundle
  ) {
    const trans = _trans;
    const id = ++idCounter;
    this._info = info;
    this.node = el('form', 'jp-IoTCable-publish');
    this.node.setAttribute('aria-label', trans.__('Publish to %1', info.name));
    this.node.noValidate = true;
    this.node.appendChild(el('div', 'jp-IoTCable-publish-title', trans.__('Publish')));

    const topicLabel = el('label', 'jp-IoTCable-publish-label', trans.__('Topic'));
    topicLabel.htmlFor = `jp-IoTCable-publish-topic-${id}`;
    this._topic = el('input', 'jp-IoTCable-publish-topic jp-mod-styled');
    this._topic.id = topicLabel.htmlFor;
    this._topic.type = 'text';
    this._topic.spellcheck = false;
    this._topic.autocomplete = 'off';
    this._suggestions = el('datalist');
    this._suggestions.id = `jp-IoTCable-publish-topics-${id}`;
    this._topic.setAttribute('list', this._suggestions.id);
    this._hint = el('div', 'jp-IoTCable-publish-hint');
    this._hint.id = `jp-IoTCable-publish-hint-${id}`;
    this._topic.setAttribute('aria-describedby', this._hint.id);

    this._payloadLabel = el('label', 'jp-IoTCable-publish-label');
    this._payloadLabel.htmlFor = `jp-IoTCable-publish-payload-${id}`;
    this._payload = el('textarea', 'jp-IoTCable-publish-payload jp-mod-styled');
    this._payload.id = this._payloadLabel.htmlFor;
    this._payload.rows = 2;
    this._payload.spellcheck = false;

    const actions = el('div', 'jp-IoTCable-publish-actions');
    this._send = el('button', 'jp-IoTCable-publish-send jp-Button jp-mod-accept jp-mod-styled');
    this._send.type = 'submit';
    this._send.textContent = trans.__('Send');
    this._result = el('div', 'jp-IoTCable-publish-result');
    this._result.setAttribute('role', 'status');
    this._result.setAttribute('aria-live', 'polite');
    actions.append(this._send, this._result);

    this.node.append(
      topicLabel,
      this._topic,
      this._suggestions,
      this._hint,
      this._payloadLabel,
      this._payload,
      actions
    );
    this.node.addEventListener('submit', event => {
      event.preventDefault();
      void this.submit();
    });
    this._payload.addEventListener('keydown', (event: KeyboardEvent) => {
      // Enter makes a new line in the payload; Ctrl+Enter (Cmd+Enter) sends.
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        event.stopPropagation();
        void this.submit();
      }
    });
    for (const input of [this._topic, this._payload]) {
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    }
  }

  readonly node: HTMLFormElement;

  /** `latest`: the newest payload seen on the channel, the model for the placeholder. */
  update(info: IChannelInfo, seenNewestFirst: readonly string[], latest?: JsonValue): void {
    const trans = this._trans;
    this._info = info;
    const filters = this._filters();
    setText(
      this._hint,
      trans._n(
        'One topic matching %2',
        'One topic matching one of %2',
        filters.length,
        filters.join(', ')
      )
    );
    this._topic.placeholder = filters[0] ?? '';
    const suggestions = topicSuggestions(filters, seenNewestFirst);
    const key = suggestions.join('\n');
    if (key !== this._suggestionsKey) {
      this._suggestionsKey = key;
      this._suggestions.replaceChildren(
        ...suggestions.map(topic => {
          const option = el('option');
          option.value = topic;
          return option;
        })
      );
    }
    // A topic seen on the channel is the likeliest target: offer it until the user types.
    if (!this._topic.value && document.activeElement !== this._topic) {
      const seen = suggestions.find(t => !t.includes('+') && !t.includes('#'));
      if (seen) {
        this._topic.value = seen;
      }
    }
    const format = info.format;
    setText(
      this._payloadLabel,
      format === 'json'
        ? trans.__('Payload (JSON)')
        : format === 'bytes'
          ? trans.__('Payload (base64)')
          : format === 'number'
            ? trans.__('Payload (a number)')
            : trans.__('Payload (%1 text)', format)
    );
    this._payload.placeholder =
      format === 'json' ? (latest !== undefined ? JSON.stringify(latest) : '{"field": 1}') : '';
  }

  /** Check what was typed, send it, show the answer. */
  async submit(): Promise<void> {
    const trans = this._trans;
    if (this._sending) {
      return;
    }
    const info = this._info;
    const topic = this._topic.value.trim();
    if (!topic) {
      this._topic.setAttribute('aria-invalid', 'true');
      this._show(
        'invalid',
        trans.__('Not sent: enter a topic (%1).', this._hint.textContent ?? '')
      );
      this._topic.focus();
      return;
    }
    const input = publishInput(info.format, this._payload.value);
    if (!input.ok) {
      this._payload.setAttribute('aria-invalid', 'true');
      this._show(
        'invalid',
        input.reason === 'empty'
          ? trans.__('Not sent: enter a payload.')
          : trans.__('Not sent: the payload is not JSON: %1', input.reason)
      );
      this._payload.focus();
      if (input.position !== undefined) {
        this._payload.setSelectionRange(input.position, input.position);
      }
      return;
    }
    this._sending = true;
    this._send.disabled = true;
    this._show('sending', trans.__('Sending…'));
    try {
      const answer = await publish(
        this._model.serverSettings,
        info.name,
        topic,
        input.payload,
        trans
      );
      if (answer.ok) {
        this._show('ok', trans.__('Sent to %1 at %2', answer.topic, clockText(new Date(), false)));
      } else {
        this._show('refused', trans.__('Refused: %1', answer.reason ?? ''));
        if (answer.status === 400 || answer.status === 403) {
          // The server names what it refused: the topic or the payload.
          const target = /\btopic\b/.test(answer.reason ?? '') ? this._topic : this._payload;
          target.setAttribute('aria-invalid', 'true');
        }
      }
    } finally {
      this._sending = false;
      this._send.disabled = false;
    }
  }

  /** The filters a publish topic must match (the channel's topics on older servers). */
  private _filters(): string[] {
    const info = this._info;
    return info.write_topics && info.write_topics.length ? info.write_topics : info.topics;
  }

  private _show(state: 'invalid' | 'sending' | 'ok' | 'refused', text: string): void {
    this._result.dataset.state = state;
    setText(this._result, text);
  }

  private _info: IChannelInfo;
  private _topic: HTMLInputElement;
  private _suggestions: HTMLDataListElement;
  private _suggestionsKey = '';
  private _hint: HTMLDivElement;
  private _payloadLabel: HTMLLabelElement;
  private _payload: HTMLTextAreaElement;
  private _send: HTMLButtonElement;
  private _result: HTMLDivElement;
  private _sending = false;
}
