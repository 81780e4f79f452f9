/**
 * The live chart widget of `sub.live()`: jupyter_iotcable.widgets.LiveChart's front end.
 *
 * The kernel sends only new points (binary buffers, see ring.ts) at most about 10 times
 * a second, and a "latest" message with the last reading of each topic; the view keeps
 * its own ring of points and redraws on the next animation frame, once per batch.
 */

import { DOMWidgetModel, DOMWidgetView, ISerializers, WidgetModel } from '@jupyter-widgets/base';

import { Bytes, decodePoints, extent, IPointsContent, PointRing, scale } from './ring';

// Webpack (jupyter builder) inlines the JSON; the version the kernel's LiveChart names.
declare const require: (path: string) => { version: string };
const VERSION: string = require('../../package.json').version;

export const MODULE_NAME = 'jupyter-iotcable';
export const MODULE_VERSION = VERSION;

/** One row of the latest-per-topic table, as the kernel sends it. */
export interface ILatestRow {
  topic: string;
  time: number;
  fields: { [name: string]: string | number | boolean | null };
}

interface ILatestContent {
  type: 'latest';
  rows: ILatestRow[];
}

const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf'
];
const WIDTH = 640;
const HEIGHT = 220;
const PAD = 34;
const SVG_NS = 'http://www.w3.org/2000/svg';

export class LiveChartModel extends DOMWidgetModel {
  override defaults(): ReturnType<DOMWidgetModel['defaults']> {
    return {
      ...super.defaults(),
      _model_name: 'LiveChartModel',
      _view_name: 'LiveChartView',
      _model_module: MODULE_NAME,
      _view_module: MODULE_NAME,
      _model_module_version: MODULE_VERSION,
      _view_module_version: MODULE_VERSION,
      channel: '',
      topic: '',
      y: '',
      state: '',
      rows: 0,
      rate: 0,
      gaps: 0,
      points: 500
    };
  }

  static override serializers: ISerializers = { ...DOMWidgetModel.serializers };

  /** The points received so far (the model's, so none is lost before a view renders). */
  ring: PointRing = new PointRing(500);
  /** Topic names, index = the number the kernel sends. */
  topics: string[] = [];
  /** The last "latest" message's rows. */
  latest: ILatestRow[] = [];

  override initialize(
    attributes: ReturnType<DOMWidgetModel['defaults']>,
    options: Parameters<DOMWidgetModel['initialize']>[1]
  ): void {
    super.initialize(attributes, options);
    const capacity = Number(this.get('points'));
    this.ring = new PointRing(Number.isInteger(capacity) && capacity > 0 ? capacity : 500);
    this.on('msg:custom', this._onMessage, this);
  }

  private _onMessage(content: IPointsContent | ILatestContent, buffers?: Bytes[]): void {
    if (content.type === 'points') {
      const points = decodePoints(content, buffers ?? [], this.topics);
      for (let i = 0; i < points.times.length; i++) {
        this.ring.push(points.times[i], points.values[i], points.topics[i]);
      }
    } else if (content.type === 'latest') {
      this.latest = content.rows;
    }
    this.trigger('iotcable:data');
  }
}

function clock(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(11, 19);
}

function cell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    return String(Number(value.toPrecision(6)));
  }
  return String(value);
}

export class LiveChartView extends DOMWidgetView {
  declare model: LiveChartModel;
  private _frame = 0;
  private _status!: HTMLDivElement;
  private _legend!: HTMLDivElement;
  private _svg!: SVGSVGElement;
  private _table!: HTMLTableElement;

  override render(): void {
    this.el.classList.add('jp-IoTCable-livechart');
    this._status = document.createElement('div');
    this._status.className = 'jp-IoTCable-livechart-status';
    this._legend = document.createElement('div');
    this._legend.className = 'jp-IoTCable-livechart-legend';
    this._svg = document.createElementNS(SVG_NS, 'svg');
    this._svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    this._svg.setAttribute('width', String(WIDTH));
    this._svg.setAttribute('height', String(HEIGHT));
    this._svg.classList.add('jp-IoTCable-livechart-plot');
    this._table = document.createElement('table');
    this._table.className = 'jp-IoTCable-livechart-table';
    this.el.append(this._status, this._legend, this._svg, this._table);
    this.listenTo(this.model, 'iotcable:data', () => this._schedule());
    this.listenTo(this.model, 'change', () => this._schedule());
    this._draw();
  }

  override remove(): void {
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    super.remove();
  }

  private _schedule(): void {
    if (this._frame) {
      return;
    }
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._draw();
    });
  }

  private _draw(): void {
    this.el.setAttribute('data-points', String(this.model.ring.size));
    this._drawStatus();
    this._drawChart();
    this._drawTable();
  }

  private _drawStatus(): void {
    const m = this.model;
    const rate = Number(m.get('rate'));
    this._status.textContent =
      `${m.get('channel')} ${m.get('topic') || ''} | ${m.get('state')} | ` +
      `${Number(m.get('rows')).toLocaleString()} rows | ` +
      `${(Number.isFinite(rate) ? rate : 0).toFixed(1)} readings/s | ${m.get('gaps')} gaps`;
  }

  private _drawChart(): void {
    const svg = this._svg;
    svg.replaceChildren();
    this._legend.replaceChildren();
    const y = String(this.model.get('y') || '');
    const box = extent(this.model.ring);
    if (box === undefined) {
      this._legend.textContent =
        'waiting for numeric readings... (to chart a given field: sub.live(y="field"))';
      return;
    }
    const name = document.createElement('strong');
    name.textContent = y;
    this._legend.append(name);
    const sx = scale(box.t0, box.t1, PAD, WIDTH - PAD);
    const sy = scale(box.v0, box.v1, HEIGHT - PAD, PAD);
    const lines = new Map<number, string[]>();
    for (let i = 0; i < this.model.ring.size; i++) {
      const { time, value, topic } = this.model.ring.at(i);
      let coords = lines.get(topic);
      if (coords === undefined) {
        coords = [];
        lines.set(topic, coords);
      }
      coords.push(`${sx(time).toFixed(1)},${sy(value).toFixed(1)}`);
    }
    const order = [...lines.keys()].sort((a, b) =>
      this.model.topics[a] < this.model.topics[b]
        ? -1
        : this.model.topics[a] > this.model.topics[b]
          ? 1
          : 0
    );
    order.slice(0, COLORS.length).forEach((topic, k) => {
      const color = COLORS[k];
      const line = document.createElementNS(SVG_NS, 'polyline');
      line.setAttribute('fill', 'none');
      line.setAttribute('stroke', color);
      line.setAttribute('stroke-width', '1.5');
      line.setAttribute('points', (lines.get(topic) ?? []).join(' '));
      svg.append(line);
      const entry = document.createElement('span');
      entry.className = 'jp-IoTCable-livechart-key';
      entry.style.color = color;
      entry.textContent = `\u25a0 ${this.model.topics[topic]}`;
      this._legend.append(' ', entry);
    });
    const label = (x: number, yy: number, text: string, anchor = 'start'): void => {
      const t = document.createElementNS(SVG_NS, 'text');
      t.setAttribute('x', String(x));
      t.setAttribute('y', String(yy));
      t.setAttribute('text-anchor', anchor);
      t.textContent = text;
      svg.append(t);
    };
    label(2, PAD, Number(box.v1.toPrecision(4)).toString());
    label(2, HEIGHT - PAD, Number(box.v0.toPrecision(4)).toString());
    label(PAD, HEIGHT - 8, clock(box.t0));
    label(WIDTH - PAD, HEIGHT - 8, clock(box.t1), 'end');
  }

  private _drawTable(): void {
    const table = this._table;
    table.replaceChildren();
    if (this.model.latest.length === 0) {
      return;
    }
    const names: string[] = [];
    for (const row of this.model.latest) {
      for (const name of Object.keys(row.fields)) {
        if (!names.includes(name)) {
          names.push(name);
        }
      }
    }
    const head = table.createTHead().insertRow();
    for (const name of ['topic', 'time', ...names]) {
      const th = document.createElement('th');
      th.textContent = name;
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of this.model.latest) {
      const tr = body.insertRow();
      tr.insertCell().textContent = row.topic;
      tr.insertCell().textContent = clock(row.time);
      for (const name of names) {
        tr.insertCell().textContent = cell(row.fields[name]);
      }
    }
  }
}

/** The exports the widget registry serves for module `jupyter-iotcable`. */
export const widgetExports: { [name: string]: typeof WidgetModel | typeof DOMWidgetView } = {
  LiveChartModel,
  LiveChartView
};
