/**
 * The latest reading of each topic, as a table: one row per topic, times as times in the
 * chart's time zone, numbers exactly as sent, text that reads like a status (`fault`,
 * `offline`) marked. Click a column title to sort by it (again: the other way). The table
 * scrolls past a dozen rows, with its titles kept in view.
 */

import {
  asTimestamp,
  exactNumber,
  formatTime,
  markText,
  naturalCompare,
  TimeZone,
  zoneName
} from './format';

export type Cell = string | number | boolean | null;

/** One row as the kernel sends it (chart.py `_table_row`). */
export interface ILatestRow {
  topic: string;
  series: string | null;
  time: number;
  fields: { [name: string]: Cell };
}

function compareCells(a: Cell | undefined, b: Cell | undefined): number {
  const missingA = a === null || a === undefined;
  const missingB = b === null || b === undefined;
  if (missingA || missingB) {
    return missingA === missingB ? 0 : missingA ? 1 : -1; // missing values last
  }
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return naturalCompare(String(a), String(b));
}

export class LatestTable {
  readonly node: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly table: HTMLTableElement;
  private rows = new Map<string, ILatestRow>();
  private columns: string[] = [];
  /** Columns that held text: shown first after the time, since they carry status words. */
  private textColumns = new Set<string>();
  private sortKey = 'series';
  private descending = false;
  private zone: TimeZone = 'local';
  private dirty = false;

  constructor(private readonly units: () => { [field: string]: string }) {
    this.node = document.createElement('details');
    this.node.className = 'iotcable-latest';
    (this.node as HTMLDetailsElement).open = true;
    this.summary = document.createElement('summary');
    this.node.appendChild(this.summary);
    const scroller = document.createElement('div');
    scroller.className = 'iotcable-latest-scroll';
    this.table = document.createElement('table');
    scroller.appendChild(this.table);
    this.node.appendChild(scroller);
    this.table.addEventListener('click', event => {
      const th = (event.target as HTMLElement).closest('th');
      const key = th?.dataset.key;
      if (key) {
        this.descending = key === this.sortKey ? !this.descending : false;
        this.sortKey = key;
        this.render();
      }
    });
    this.render();
  }

  setZone(zone: TimeZone): void {
    this.zone = zone;
    this.render();
  }

  /** Merge rows (a reset replaces them all). */
  update(rows: ILatestRow[], reset: boolean): void {
    if (reset) {
      this.rows.clear();
    }
    for (const row of rows) {
      this.rows.set(row.topic, row);
      for (const [name, value] of Object.entries(row.fields)) {
        if (!this.columns.includes(name)) {
          this.columns.push(name);
        }
        if (typeof value === 'string') {
          this.textColumns.add(name);
        }
      }
    }
    this.dirty = true;
  }

  /** Redraw if rows changed since the last redraw. */
  flush(): void {
    if (this.dirty) {
      this.render();
    }
  }

  get size(): number {
    return this.rows.size;
  }

  private value(row: ILatestRow, key: string): Cell | undefined {
    if (key === 'series') {
      return row.series ?? row.topic;
    }
    if (key === 'time') {
      return row.time;
    }
    return row.fields[key];
  }

  private render(): void {
    this.dirty = false;
    const n = this.rows.size;
    this.summary.textContent = `latest reading of each topic (${n.toLocaleString('en-US')} topic${n === 1 ? '' : 's'})`;
    const units = this.units();
    const head = document.createElement('thead');
    const titles = document.createElement('tr');
    const text = this.columns.filter(c => this.textColumns.has(c));
    const others = this.columns.filter(c => !this.textColumns.has(c));
    const keys = ['series', 'time', ...text, ...others];
    for (const key of keys) {
      const th = document.createElement('th');
      th.dataset.key = key;
      const unit = units[key];
      let title =
        key === 'time' ? `time (${zoneName(this.zone)})` : unit ? `${key} (${unit})` : key;
      if (key === this.sortKey) {
        title += this.descending ? ' ▼' : ' ▲';
        th.setAttribute('aria-sort', this.descending ? 'descending' : 'ascending');
      }
      th.textContent = title;
      th.title = 'sort by this column';
      titles.appendChild(th);
    }
    head.appendChild(titles);
    const sign = this.descending ? -1 : 1;
    const rows = [...this.rows.values()].sort(
      (a, b) =>
        sign * compareCells(this.value(a, this.sortKey), this.value(b, this.sortKey)) ||
        naturalCompare(a.topic, b.topic)
    );
    const body = document.createElement('tbody');
    for (const row of rows) {
      const tr = document.createElement('tr');
      let bad = false;
      for (const key of keys) {
        const td = document.createElement('td');
        const value = this.value(row, key);
        if (key === 'series') {
          td.textContent = String(value);
          td.title = row.topic;
        } else if (key === 'time') {
          td.textContent = formatTime(row.time, this.zone);
          td.title = formatTime(row.time, this.zone, true);
          td.className = 'is-number';
        } else if (typeof value === 'number') {
          const stamp = asTimestamp(key, value);
          td.textContent = stamp === null ? exactNumber(value) : formatTime(stamp, this.zone);
          td.className = 'is-number';
          if (stamp !== null) {
            td.title = `${exactNumber(value)} (${formatTime(stamp, this.zone, true)})`;
          }
        } else if (typeof value === 'string') {
          const mark = markText(value);
          const badge = document.createElement('span');
          badge.className = `iotcable-badge is-${mark}`;
          badge.textContent = value;
          td.appendChild(badge);
          bad = bad || mark === 'bad';
        } else if (typeof value === 'boolean') {
          td.textContent = String(value);
        } else {
          td.textContent = '';
        }
        tr.appendChild(td);
      }
      if (bad) {
        tr.className = 'is-bad';
      }
      body.appendChild(tr);
    }
    this.table.replaceChildren(head, body);
  }
}
