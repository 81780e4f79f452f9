/**
 * The view of `sub.live()` (jupyter_iotcable.widgets.LiveChart): an anywidget ES module,
 * bundled with uPlot by esbuild into jupyter_iotcable/static/livechart.js, so the same
 * chart runs in JupyterLab, Notebook 7, VS Code, Colab and marimo.
 *
 * The model's data (`ChartData`) lives as long as the model: the kernel's messages fill
 * its store whether or not a view shows it, and every view draws from it. A view that
 * renders before the store holds the kernel's whole window asks the kernel for it (a
 * reopened notebook, a reloaded page); a second view of a filled model draws at once.
 * Each view draws at most once per animation frame, only when something changed.
 */

import type { AnyModel, Initialize, Render } from '@anywidget/types';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

import {
  naturalCompare,
  shortNumber,
  statusLine,
  IKernelStatus,
  SILENCE,
  timeTicks,
  TimeZone,
  zoneName
} from './format';
import { buildGrid, columnsFor, silenceAfter } from './grid';
import { Bytes, decodeChunk, LineStore } from './store';
import { ILatestRow, LatestTable } from './table';

interface IState {
  uid: string;
  channel: string;
  topic: string;
  fields: string[];
  units: { [field: string]: string };
  by: string[];
  span: number;
  ranges: number[];
  max_shown: number;
  height: number;
  timezone: TimeZone;
  interval: number;
  shown: string[];
}

type Model = AnyModel<IState>;

/** A message from the kernel (chart.py `LiveView.flush`). */
interface IDataMessage {
  type: 'data';
  reset: boolean;
  series_from: number;
  series: string[];
  status: IKernelStatus;
  now: number;
  latest?: ILatestRow[];
}

/**
 * Seconds between two window requests while none was answered: a busy kernel answers
 * them all at once (it coalesces them into one reply); a request sent while the model's
 * comm was still being restored is lost, and the next one gets through.
 */
const ASK_AGAIN = 3;

/**
 * After a draw of `ms`, the next waits `DRAW_SHARE * ms`: drawing never takes more than
 * about a third of the page's time, so it stays responsive however costly a draw is.
 */
const DRAW_SHARE = 2;

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#393b79',
  '#ad494a'
];

/** A distinct color per position; past the palette, hues spaced by the golden angle. */
export function colorOf(position: number): string {
  if (position < PALETTE.length) {
    return PALETTE[position];
  }
  const hue = Math.round((position * 137.508) % 360);
  return `hsl(${hue} 65% 45%)`;
}

/**
 * Draw timings, for bench/live_chart.py (read with page.evaluate): `ms` is one `draw()`,
 * from the store to the painted canvas (grid, uPlot's paths and strokes, legend, status).
 */
interface IDrawStats {
  draws: { ms: number; gridMs: number; points: number; drawn: number; at: number }[];
}
const STATS: IDrawStats = ((
  globalThis as { __iotcableLiveChart?: IDrawStats }
).__iotcableLiveChart ??= {
  draws: []
});

/** The model's data: the store, the series names, the latest rows and the kernel's status. */
class ChartData {
  store: LineStore;
  series: string[] = [];
  latest: ILatestRow[] = [];
  latestReset = false;
  latestVersion = 0;
  status: IKernelStatus | null = null;
  /** performance.now() of the kernel's last message, and the kernel's clock then. */
  heardAt = -Infinity;
  kernelNow = 0;
  hasWindow = false;
  askedAt = -Infinity;
  unanswered = 0;
  disconnected = false;
  messages = 0;
  asks = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly model: Model) {
    this.store = new LineStore({ span: model.get('span') });
    model.on('msg:custom', (msg: IDataMessage, buffers: Bytes[]) => this.receive(msg, buffers));
    // JupyterLab's widget manager sets every model's comm_live to false when the kernel
    // restarts (it is never set again): this chart no longer hears from its kernel.
    model.on('comm_live_update', () => this.disconnect());
    model.on('comm:close', () => this.disconnect());
    model.on('destroy', () => CHARTS.delete(model.get('uid')));
  }

  disconnect(): void {
    this.disconnected = true;
    this.notify();
  }

  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) {
      listener();
    }
  }

  /** Ask the kernel for its whole window, unless asked recently and not answered yet. */
  ask(): void {
    const now = performance.now();
    // 3 s, then twice as long after each request left unanswered (at most 30 s): each
    // answer is the whole window (megabytes), and a congested server must not get more.
    const wait = Math.min(30, ASK_AGAIN * 2 ** Math.max(0, this.unanswered - 1));
    if (!this.hasWindow && !this.disconnected && now - this.askedAt > wait * 1000) {
      this.askedAt = now;
      this.unanswered++;
      this.asks++;
      this.model.send({ type: 'window' });
    }
  }

  /** The kernel's clock now, as estimated from its last message. */
  kernelTime(): number {
    return this.kernelNow + (performance.now() - this.heardAt) / 1000;
  }

  silence(): number {
    return (performance.now() - this.heardAt) / 1000;
  }

  private receive(msg: IDataMessage, buffers: Bytes[]): void {
    if (!msg || msg.type !== 'data') {
      return;
    }
    this.messages++;
    this.heardAt = performance.now();
    this.kernelNow = msg.now;
    this.status = msg.status;
    if (msg.reset) {
      this.store.clear();
      this.series = [];
      this.hasWindow = true;
      this.unanswered = 0;
    } else if (msg.series_from !== this.series.length) {
      // Points of a window this model never got (it was created after them, or a message
      // was lost): they cannot be placed. Ask for the whole window again.
      this.hasWindow = false;
      this.ask();
      this.notify();
      return;
    }
    this.series.push(...msg.series);
    this.store.apply(decodeChunk(buffers));
    if (msg.latest) {
      this.latest = msg.latest;
      this.latestReset = msg.reset;
      this.latestVersion++;
    }
    this.notify();
  }
}

const CHARTS = new Map<string, ChartData>();

function chartData(model: Model): ChartData {
  const uid = model.get('uid');
  let data = CHARTS.get(uid);
  if (!data) {
    data = new ChartData(model);
    CHARTS.set(uid, data);
  }
  return data;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  parent?: HTMLElement,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  parent?.appendChild(node);
  return node;
}

function durationLabel(seconds: number): string {
  if (seconds % 3600 === 0) {
    return `${seconds / 3600} h`;
  }
  if (seconds % 60 === 0) {
    return `${seconds / 60} min`;
  }
  return `${seconds} s`;
}

interface IPanel {
  field: number;
  plot: uPlot;
  tooltip: HTMLElement;
  /** Seconds per bucket of the last grid drawn (the hover read-out reaches as far). */
  bucket: number;
}

/** One view: header (status, range, pause, time zone), one panel per field, legend, table. */
class LiveView {
  private readonly root: HTMLElement;
  private readonly statusDot: HTMLElement;
  private readonly statusText: HTMLElement;
  private readonly rangeButtons: HTMLElement;
  private readonly pauseButton: HTMLButtonElement;
  private readonly zoneButton: HTMLButtonElement;
  private readonly panels: HTMLElement;
  private readonly shownCount: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly chooser: HTMLElement;
  private readonly filter: HTMLInputElement;
  private readonly choices: HTMLElement;
  private readonly table: LatestTable;
  private plots: IPanel[] = [];
  private plotKey = '';
  private range: number;
  private paused: [number, number] | null = null;
  private zoomed: [number, number] | null = null;
  private hidden = new Set<string>();
  private drawPending = false;
  private lastDrawMs = 0;
  private lastDrawEnd = -Infinity;
  private tableVersion = -1;
  private x0 = 0;
  private x1 = 1;
  private shownIndexes: number[] = [];
  private shownNames: string[] = [];
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly model: Model,
    private readonly data: ChartData,
    private readonly el: HTMLElement
  ) {
    const span = model.get('span');
    this.range = span > 0 ? span : 0;
    this.root = element('div', 'iotcable-live', el);
    const header = element('div', 'iotcable-live-header', this.root);
    this.statusDot = element('span', 'iotcable-live-dot', header);
    this.statusText = element('span', 'iotcable-live-status', header);
    const title = model.get('topic')
      ? `${model.get('channel')} ${model.get('topic')}`
      : model.get('channel');
    element('span', 'iotcable-live-title', header, title);
    const controls = element('span', 'iotcable-live-controls', header);
    this.rangeButtons = element('span', 'iotcable-live-ranges', controls);
    this.pauseButton = element('button', 'iotcable-live-pause', controls);
    this.zoneButton = element('button', 'iotcable-live-zone', controls);
    this.panels = element('div', 'iotcable-live-panels', this.root);
    const legendBar = element('div', 'iotcable-live-legendbar', this.root);
    this.shownCount = element('button', 'iotcable-live-shown', legendBar);
    this.shownCount.title = 'choose the series to draw';
    this.legend = element('div', 'iotcable-live-legend', legendBar);
    this.chooser = element('div', 'iotcable-live-chooser', this.root);
    this.chooser.hidden = true;
    const chooserBar = element('div', 'iotcable-live-chooserbar', this.chooser);
    this.filter = element('input', 'iotcable-live-filter', chooserBar);
    this.filter.type = 'search';
    this.filter.placeholder = 'filter series, e.g. lyon or pump1';
    const onlyMatching = element('button', '', chooserBar, 'show only these');
    const addMatching = element('button', '', chooserBar, 'add these');
    const firstOnes = element('button', '', chooserBar, `first ${model.get('max_shown')}`);
    this.choices = element('div', 'iotcable-live-choices', this.chooser);
    this.table = new LatestTable(() => this.model.get('units'));
    this.root.appendChild(this.table.node);

    this.shownCount.addEventListener('click', () => {
      this.chooser.hidden = !this.chooser.hidden;
      this.renderChooser();
    });
    this.filter.addEventListener('input', () => this.renderChooser());
    onlyMatching.addEventListener('click', () => this.choose(this.matching()));
    addMatching.addEventListener('click', () =>
      this.choose([...new Set([...this.shownNames, ...this.matching()])])
    );
    firstOnes.addEventListener('click', () => this.choose([]));
    this.choices.addEventListener('change', event => {
      const box = event.target as HTMLInputElement;
      const name = box.dataset.name;
      if (name === undefined) {
        return;
      }
      const names = box.checked
        ? [...this.shownNames, name]
        : this.shownNames.filter(n => n !== name);
      this.choose(names);
    });
    this.legend.addEventListener('click', event => {
      const item = (event.target as HTMLElement).closest<HTMLElement>('[data-name]');
      const name = item?.dataset.name;
      if (name === undefined) {
        return;
      }
      if (this.hidden.has(name)) {
        this.hidden.delete(name);
      } else {
        this.hidden.add(name);
      }
      this.renderLegend();
      this.scheduleDraw();
    });
    this.pauseButton.addEventListener('click', () => {
      if (this.paused) {
        this.paused = null;
        this.zoomed = null;
      } else {
        this.paused = [this.x0, this.x1];
      }
      // The button and the status line say so at once, not at the next animation frame
      // (which a busy page can hold back for a long while).
      this.renderControls();
      this.renderStatus();
      this.scheduleDraw();
    });
    this.zoneButton.addEventListener('click', () => {
      this.model.set('timezone', this.zone() === 'UTC' ? 'local' : 'UTC');
      this.model.save_changes();
    });
    this.rangeButtons.addEventListener('click', event => {
      const seconds = (event.target as HTMLElement).dataset.seconds;
      if (seconds !== undefined) {
        this.range = Number(seconds);
        this.paused = null;
        this.zoomed = null;
        this.renderControls();
        this.renderStatus();
        this.scheduleDraw();
      }
    });

    const redraw = () => this.scheduleDraw();
    this.cleanups.push(data.listen(redraw));
    for (const name of ['fields', 'units', 'shown', 'max_shown', 'height'] as const) {
      model.on(`change:${name}`, redraw);
    }
    model.on('change:timezone', () => {
      this.table.setZone(this.zone());
      this.renderControls();
      this.plotKey = ''; // tick labels and their time zone: new plots
      this.scheduleDraw();
    });
    const resize = new ResizeObserver(() => {
      for (const panel of this.plots) {
        panel.plot.setSize({ width: this.plotWidth(), height: this.model.get('height') });
      }
      this.scheduleDraw();
    });
    resize.observe(this.root);
    this.cleanups.push(() => resize.disconnect());
    const timer = setInterval(() => {
      this.data.ask();
      this.renderStatus();
    }, 1000);
    this.cleanups.push(() => clearInterval(timer));
    this.table.setZone(this.zone());
    this.renderControls();
    this.data.ask();
    this.scheduleDraw();
  }

  dispose(): void {
    for (const cleanup of this.cleanups) {
      cleanup();
    }
    for (const panel of this.plots) {
      panel.plot.destroy();
    }
    this.plots = [];
    this.root.remove();
  }

  private zone(): TimeZone {
    return this.model.get('timezone') === 'UTC' ? 'UTC' : 'local';
  }

  private plotWidth(): number {
    return Math.max(240, Math.floor(this.root.clientWidth || this.el.clientWidth || 640));
  }

  private scheduleDraw(): void {
    if (this.drawPending) {
      return;
    }
    this.drawPending = true;
    const frame = () =>
      requestAnimationFrame(() => {
        this.drawPending = false;
        this.draw();
      });
    const wait = this.lastDrawEnd + DRAW_SHARE * this.lastDrawMs - performance.now();
    if (wait > 1) {
      setTimeout(frame, wait);
    } else {
      frame();
    }
  }

  /** The names drawn: the user's choice, or the first `max_shown` in natural order. */
  private computeShown(): void {
    const names = this.data.series;
    const index = new Map(names.map((name, i) => [name, i]));
    const chosen = this.model.get('shown') ?? [];
    let shown: string[];
    if (chosen.length) {
      shown = chosen.filter(name => index.has(name));
    } else {
      shown = [...names].sort(naturalCompare).slice(0, this.model.get('max_shown'));
    }
    shown.sort(naturalCompare);
    this.shownNames = shown;
    this.shownIndexes = shown.map(name => index.get(name) as number);
  }

  private choose(names: string[]): void {
    this.model.set('shown', [...names].sort(naturalCompare));
    this.model.save_changes();
    this.renderChooser();
    this.scheduleDraw();
  }

  private matching(): string[] {
    const text = this.filter.value.trim().toLowerCase();
    return this.data.series.filter(name => name.toLowerCase().includes(text));
  }

  /** The visible time range: live (following the newest), paused, or zoomed. */
  private visibleRange(): [number, number] {
    if (this.zoomed) {
      return this.zoomed;
    }
    if (this.paused) {
      return this.paused;
    }
    const store = this.data.store;
    const newest = Number.isFinite(store.newest) ? store.newest : this.data.kernelTime();
    const right = Math.max(newest, this.data.silence() < SILENCE ? this.data.kernelTime() : newest);
    // Until the data fill the range, the range is the data's (at least 1 s): the
    // history drawn across the chart, not squeezed into its right edge.
    let oldest = Infinity;
    for (const lines of store.fields.values()) {
      for (const line of lines.values()) {
        oldest = Math.min(oldest, line.oldest);
      }
    }
    const extent = Number.isFinite(oldest) ? Math.max(right - oldest, 1) : 60;
    const width = this.range > 0 ? Math.min(this.range, extent) : extent;
    return [right - width, right];
  }

  private draw(): void {
    const started = performance.now();
    this.computeShown();
    const fields = this.model.get('fields');
    const key = JSON.stringify([fields, this.shownNames, this.zone(), this.model.get('height')]);
    if (key !== this.plotKey) {
      this.rebuildPlots(fields);
      this.plotKey = key;
    }
    if (Number.isFinite(this.data.heardAt) || this.data.store.size) {
      [this.x0, this.x1] = this.visibleRange();
    }
    let drawn = 0;
    let gridMs = 0;
    for (const panel of this.plots) {
      const lines = this.shownIndexes.map((series, i) =>
        this.hidden.has(this.shownNames[i]) ? undefined : this.data.store.line(series, panel.field)
      );
      const pixels = Math.round(panel.plot.bbox.width / uPlot.pxRatio) || this.plotWidth();
      const columns = columnsFor(pixels, lines.filter(line => line !== undefined).length);
      const gridStarted = performance.now();
      const grid = buildGrid(lines, this.x0, this.x1, columns, this.data.store.bucketWidth);
      gridMs += performance.now() - gridStarted;
      drawn += grid.drawn;
      panel.bucket = grid.width;
      // In a batch, uPlot draws now rather than in a microtask after this method: the
      // canvas is drawn by the time `ms` is read below, and counted in it.
      panel.plot.batch(() => panel.plot.setData([grid.xs, ...grid.ys] as uPlot.AlignedData, true));
    }
    if (this.table.size === 0 || this.tableVersion !== this.data.latestVersion) {
      if (this.tableVersion !== this.data.latestVersion) {
        this.table.update(this.data.latest, this.data.latestReset);
        this.tableVersion = this.data.latestVersion;
      }
      this.table.flush();
    }
    this.renderLegend();
    this.renderStatus();
    const ms = performance.now() - started;
    const points = this.data.store.size;
    this.lastDrawMs = ms;
    this.lastDrawEnd = performance.now();
    STATS.draws.push({ ms, gridMs, points, drawn, at: started });
    if (STATS.draws.length > 10_000) {
      STATS.draws.splice(0, 5_000);
    }
    const dataset = this.root.dataset;
    dataset.points = String(points);
    dataset.drawn = String(drawn);
    dataset.series = String(this.data.series.length);
    dataset.shown = String(this.shownNames.length);
    dataset.x0 = String(this.x0);
    dataset.x1 = String(this.x1);
    dataset.drawMs = ms.toFixed(2);
    dataset.messages = String(this.data.messages);
    dataset.window = this.data.hasWindow ? 'whole' : 'partial';
    dataset.asks = String(this.data.asks);
    // The window requests the kernel got (of this view's and others'), to tell a lost
    // request from a lost answer.
    dataset.kernelRequests = String(this.data.status?.requests ?? '');
    const first = this.plots[0]?.plot;
    if (first) {
      // The plotting area in canvas pixels, for tests that read the canvas.
      dataset.plotBox = [first.bbox.left, first.bbox.top, first.bbox.width, first.bbox.height]
        .map(Math.round)
        .join(',');
    }
  }

  private rebuildPlots(fields: string[]): void {
    for (const panel of this.plots) {
      panel.plot.destroy();
    }
    this.panels.replaceChildren();
    this.plots = [];
    const zone = this.zone();
    const units = this.model.get('units');
    const uid = this.model.get('uid');
    fields.forEach((field, index) => {
      const unit = units[field];
      const holder = element('div', 'iotcable-live-panel', this.panels);
      const tooltip = element('div', 'iotcable-live-tooltip');
      tooltip.hidden = true;
      const last = index === fields.length - 1;
      const options: uPlot.Options = {
        width: this.plotWidth(),
        height: this.model.get('height'),
        legend: { show: false },
        tzDate: ts =>
          zone === 'UTC' ? uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : new Date(ts * 1e3),
        scales: {
          x: { time: true, range: () => [this.x0, this.x1] },
          y: { auto: true }
        },
        series: [
          {},
          ...this.shownNames.map((name, i) => ({
            label: name,
            stroke: colorOf(i),
            width: 1.25,
            spanGaps: false,
            points: { show: false }
          }))
        ],
        axes: [
          {
            label: last ? `time (${zoneName(zone)})` : undefined,
            labelSize: last ? 18 : 0,
            values: (_u, splits, _axis, _space, increment) => timeTicks(splits, increment, zone),
            // Labels such as 14:03:27.5 need room: fewer ticks rather than overlapping ones.
            space: 90,
            stroke: 'currentColor',
            grid: { stroke: 'rgba(128,128,128,0.18)', width: 1 },
            ticks: { stroke: 'rgba(128,128,128,0.4)', width: 1 }
          },
          {
            label: unit ? `${field} (${unit})` : field,
            labelSize: 18,
            stroke: 'currentColor',
            size: (u, values) => (values ? Math.max(...values.map(v => v.length)) * 7 + 14 : 50),
            grid: { stroke: 'rgba(128,128,128,0.18)', width: 1 },
            ticks: { stroke: 'rgba(128,128,128,0.4)', width: 1 }
          }
        ],
        cursor: {
          sync: { key: uid },
          drag: { x: true, y: false, setScale: false },
          points: { show: false },
          bind: { dblclick: () => null }
        },
        hooks: {
          setSelect: [u => this.onSelect(u)],
          setCursor: [u => this.hover(u, index, tooltip)]
        }
      };
      const empty = [[], ...this.shownNames.map(() => [])] as uPlot.AlignedData;
      const plot = new uPlot(options, empty, holder);
      plot.over.appendChild(tooltip);
      plot.over.addEventListener('dblclick', () => {
        if (this.zoomed) {
          this.zoomed = null;
          this.scheduleDraw();
        }
      });
      plot.over.addEventListener('mouseleave', () => {
        tooltip.hidden = true;
      });
      this.plots.push({ field: index, plot, tooltip, bucket: 0 });
    });
  }

  /** A drag across a panel zooms to it (and pauses: the range no longer moves). */
  private onSelect(u: uPlot): void {
    if (u.select.width < 3) {
      return;
    }
    const from = u.posToVal(u.select.left, 'x');
    const to = u.posToVal(u.select.left + u.select.width, 'x');
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (!this.paused) {
      this.paused = [this.x0, this.x1];
    }
    this.zoomed = [from, to];
    this.renderControls();
    this.renderStatus();
    this.scheduleDraw();
  }

  /** The hover read-out: the time, then each drawn series' value nearest the cursor. */
  private hover(u: uPlot, field: number, tooltip: HTMLElement): void {
    const left = u.cursor.left ?? -1;
    if (left < 0 || !this.shownNames.length) {
      tooltip.hidden = true;
      return;
    }
    const time = u.posToVal(left, 'x');
    const perPixel = (this.x1 - this.x0) / Math.max(1, u.bbox.width / uPlot.pxRatio);
    const unit = this.model.get('units')[this.model.get('fields')[field]] ?? '';
    const bucket = this.plots.find(panel => panel.field === field)?.bucket ?? 0;
    const rows: { name: string; value: number; color: string }[] = [];
    this.shownIndexes.forEach((series, i) => {
      const name = this.shownNames[i];
      const line = this.data.store.line(series, field);
      if (!line || this.hidden.has(name)) {
        return;
      }
      // As far as the line is drawn: half the silence that would break it, either way.
      const reach = silenceAfter(line, bucket, this.data.store.bucketWidth) / 2;
      const tolerance = Math.max(4 * perPixel, reach);
      const at = line.nearest(time, Number.isFinite(tolerance) ? tolerance : 4 * perPixel);
      if (at >= 0) {
        rows.push({ name, value: line.v[at], color: colorOf(i) });
      }
    });
    rows.sort((a, b) => b.value - a.value);
    const head = element(
      'div',
      'iotcable-live-tooltip-time',
      undefined,
      timeTicks([time], 0.001, this.zone())[0].split('\n')[0]
    );
    const body = rows.slice(0, 12).map(row => {
      const line = element('div', 'iotcable-live-tooltip-row');
      const swatch = element('span', 'iotcable-live-swatch', line);
      swatch.style.background = row.color;
      element('span', 'iotcable-live-tooltip-name', line, row.name);
      element(
        'span',
        'iotcable-live-tooltip-value',
        line,
        `${shortNumber(row.value)}${unit ? ` ${unit}` : ''}`
      );
      return line;
    });
    if (rows.length > 12) {
      body.push(
        element('div', 'iotcable-live-tooltip-more', undefined, `+${rows.length - 12} more`)
      );
    }
    if (!rows.length) {
      body.push(element('div', 'iotcable-live-tooltip-more', undefined, 'no reading here'));
    }
    tooltip.replaceChildren(head, ...body);
    tooltip.hidden = false;
    const width = u.bbox.width / uPlot.pxRatio;
    const onRight = left < width / 2;
    tooltip.style.left = onRight ? `${left + 12}px` : '';
    tooltip.style.right = onRight ? '' : `${width - left + 12}px`;
    tooltip.style.top = `${Math.max(0, (u.cursor.top ?? 0) - 10)}px`;
  }

  private renderControls(): void {
    const span = this.model.get('span');
    const options = [...this.model.get('ranges').filter(r => !(span > 0) || r < span)];
    const buttons = options.map(seconds => ({ seconds, label: durationLabel(seconds) }));
    buttons.push({
      seconds: span > 0 ? span : 0,
      label: span > 0 ? `window · ${durationLabel(span)}` : 'all'
    });
    this.rangeButtons.replaceChildren(
      ...buttons.map(({ seconds, label }) => {
        const button = element(
          'button',
          seconds === this.range && !this.zoomed ? 'is-active' : '',
          undefined,
          label
        );
        button.dataset.seconds = String(seconds);
        button.title = `show the last ${label}`;
        return button;
      })
    );
    this.pauseButton.textContent = this.paused ? 'resume' : 'pause';
    this.pauseButton.title = this.paused
      ? 'follow the newest readings again'
      : 'stop following; then drag across the chart to zoom, double-click to zoom out';
    this.zoneButton.textContent = this.zone() === 'UTC' ? 'UTC' : 'local time';
    this.zoneButton.title = 'times in UTC or in local time (click to switch)';
  }

  private renderStatus(): void {
    const line = statusLine(this.data.status, {
      silence: this.data.silence(),
      disconnected: this.data.disconnected || !!this.el.closest('.jupyter-widgets-disconnected'),
      waitingForWindow: !this.data.hasWindow
    });
    let text = line.text;
    if (this.paused && line.kind === 'live') {
      text = `paused (readings keep arriving) · ${text.replace(/^live · /, '')}`;
    }
    this.statusText.textContent = text;
    this.root.dataset.state = line.kind;
    this.root.dataset.paused = this.paused ? 'yes' : 'no';
    this.statusDot.className = `iotcable-live-dot is-${line.kind}`;
  }

  private renderLegend(): void {
    const total = this.data.series.length;
    const count = `${this.shownNames.length} of ${total} series shown ▾`;
    if (this.shownCount.textContent !== count) {
      this.shownCount.textContent = count;
    }
    // Built again only when it changes: 200 items a draw cost more than the lines did.
    const legendKey = JSON.stringify([this.shownNames, [...this.hidden]]);
    if (this.legend.dataset.key !== legendKey) {
      const items = this.shownNames.map((name, i) => {
        const item = element(
          'button',
          this.hidden.has(name) ? 'iotcable-live-item is-hidden' : 'iotcable-live-item'
        );
        item.dataset.name = name;
        item.title = this.hidden.has(name) ? `draw ${name} again` : `hide ${name}`;
        const swatch = element('span', 'iotcable-live-swatch', item);
        swatch.style.background = colorOf(i);
        element('span', '', item, name);
        return item;
      });
      this.legend.replaceChildren(...items);
      this.legend.dataset.key = legendKey;
    }
    if (!this.chooser.hidden && this.choices.dataset.total !== String(total)) {
      this.renderChooser();
    }
  }

  private renderChooser(): void {
    if (this.chooser.hidden) {
      return;
    }
    const shown = new Set(this.shownNames);
    const names = this.matching().sort(naturalCompare);
    const limit = 1000;
    const boxes = names.slice(0, limit).map(name => {
      const label = element('label', 'iotcable-live-choice');
      const box = element('input', '', label);
      box.type = 'checkbox';
      box.checked = shown.has(name);
      box.dataset.name = name;
      element('span', '', label, name);
      return label;
    });
    if (names.length > limit) {
      boxes.push(
        element(
          'label',
          'iotcable-live-choice',
          undefined,
          `… ${names.length - limit} more: narrow the filter`
        )
      );
    }
    this.choices.replaceChildren(...boxes);
    this.choices.dataset.total = String(this.data.series.length);
  }
}

const initialize: Initialize<IState> = ({ model }) => {
  chartData(model);
};

const render: Render<IState> = ({ model, el }) => {
  const view = new LiveView(model, chartData(model), el);
  return () => view.dispose();
};

export default { initialize, render };
