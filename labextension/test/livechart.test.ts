/**
 * The live chart's pure core (labextension/widget): min/max downsampling keeps every
 * bucket's extremes and the ends, the store merges, bounds and compacts the kernel's
 * chunks as lines.py does, the grid gives uPlot at most two points per pixel column with
 * gaps where a device fell silent, and the words (times, numbers, status) say the truth.
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { minmaxIndices } from '../widget/downsample';
import {
  asTimestamp,
  exactNumber,
  formatTime,
  markText,
  naturalCompare,
  statusLine,
  timeTicks
} from '../widget/format';
import { buildGrid, columnsFor, POINT_BUDGET, silenceAfter } from '../widget/grid';
import { decodeChunk, Line, LineStore } from '../widget/store';

const T0 = 1_700_000_000;

function series(n: number, step: number, value: (i: number) => number) {
  const times = new Float64Array(n);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    times[i] = T0 + i * step;
    values[i] = value(i);
  }
  return { times, values };
}

test('downsampling keeps each bucket its min and max, in time order, and both ends', () => {
  // A noisy series with one spike up and one spike down.
  const { times, values } = series(10_000, 0.01, i => Math.sin(i / 50) + (i % 7) * 0.01);
  values[1234] = 50;
  values[8765] = -50;
  const width = 2; // 200 points per bucket
  const keep = minmaxIndices(times, values, width);
  assert.equal(keep[0], 0);
  assert.equal(keep[keep.length - 1], times.length - 1);
  assert.ok(
    keep.every((k, i) => i === 0 || k > keep[i - 1]),
    'sorted, no repeats'
  );
  const buckets = new Map<number, number[]>();
  times.forEach((t, i) => {
    const b = Math.floor(t / width);
    buckets.set(b, [...(buckets.get(b) ?? []), i]);
  });
  assert.ok(keep.length <= 2 * buckets.size + 2);
  for (const indexes of buckets.values()) {
    const all = indexes.map(i => values[i]);
    const kept = indexes.filter(i => keep.includes(i)).map(i => values[i]);
    assert.equal(Math.min(...kept), Math.min(...all));
    assert.equal(Math.max(...kept), Math.max(...all));
  }
  assert.ok(keep.includes(1234) && keep.includes(8765), 'the spikes survive');
});

test('downsampling a series sparser than its buckets keeps it whole', () => {
  const { times, values } = series(50, 10, i => i);
  assert.deepEqual(minmaxIndices(times, values, 1), [...Array(50).keys()]);
  assert.deepEqual(minmaxIndices(times, values, 1, 5, 7), [5, 6]);
  assert.throws(() => minmaxIndices(times, values, 0), RangeError);
});

test('the store merges late points, drops repeats and forgets what left the window', () => {
  const store = new LineStore({ span: 60 });
  const chunk = (rows: [number, number, number[], number[]][]) => {
    const table: number[] = [];
    const t: number[] = [];
    const v: number[] = [];
    for (const [s, f, ts, vs] of rows) {
      table.push(s, f, ts.length);
      t.push(...ts);
      v.push(...vs);
    }
    return {
      table: new Uint32Array(table),
      times: new Float64Array(t),
      values: new Float64Array(v)
    };
  };
  store.apply(chunk([[0, 0, [T0 + 10, T0 + 20], [1, 2]]]));
  store.apply(chunk([[0, 0, [T0 + 5, T0 + 10, T0 + 15], [0.5, 1, 1.5]]])); // a backfill
  const line = store.line(0, 0) as Line;
  assert.deepEqual(
    [...line.t.subarray(line.start, line.stop)],
    [5, 10, 15, 20].map(x => T0 + x)
  );
  assert.deepEqual([...line.v.subarray(line.start, line.stop)], [0.5, 1, 1.5, 2]);
  store.apply(chunk([[1, 0, [T0 + 70], [7]]]));
  assert.equal(store.newest, T0 + 70);
  assert.equal(line.length, 3, 'the point older than newest - span is gone');
  assert.equal(line.t[line.start], T0 + 10);
  assert.equal(store.size, 4);
});

test('the store compacts a busy line to about two points per bucket, the recent part whole', () => {
  const store = new LineStore({ span: 100, buckets: 50, recent: 5, highWater: 4 });
  const { times, values } = series(2000, 0.05, i => (i % 10) - 5);
  store.apply({ table: new Uint32Array([3, 1, 2000]), times, values });
  const line = store.line(3, 1) as Line;
  assert.ok(line.length < 2000 && line.length <= 2 * 50 + 2 + 5 / 0.05 + 1, `${line.length}`);
  const kept = [...line.v.subarray(line.start, line.stop)];
  assert.equal(Math.min(...kept), -5);
  assert.equal(Math.max(...kept), 4);
  assert.equal(line.newest, times[1999], 'the newest point stays');
});

test('a chunk decodes from unaligned DataViews and refuses counts that disagree', () => {
  const table = new Uint32Array([0, 0, 2]);
  const times = new Float64Array([T0, T0 + 1]);
  const values = new Float64Array([1.5, 2.5]);
  const shifted = (array: ArrayBufferView) => {
    const bytes = new Uint8Array(array.byteLength + 3);
    bytes.set(new Uint8Array(array.buffer), 3);
    return new DataView(bytes.buffer, 3, array.byteLength);
  };
  const chunk = decodeChunk([shifted(table), shifted(times), shifted(values)]);
  assert.deepEqual([...chunk.values], [1.5, 2.5]);
  assert.throws(() => decodeChunk([new Uint32Array([0, 0, 3]), times, values]), /counts/);
  assert.throws(() => decodeChunk([table, times]), /3 buffers/);
});

test('the grid holds at most two points per pixel column and the true extremes', () => {
  const line = new Line();
  const { times, values } = series(100_000, 0.001, i => Math.sin(i / 300));
  values[50_000] = 9; // a one-sample spike
  line.extend(times, values, 0, times.length);
  const grid = buildGrid([line], T0, T0 + 100, 500);
  assert.equal(grid.xs.length, 2 * 500 + 2);
  assert.ok(grid.drawn <= 2 * 500 + 2);
  const drawn = grid.ys[0].filter((y): y is number => typeof y === 'number');
  assert.equal(Math.max(...drawn), 9);
  assert.ok(Math.min(...drawn) <= -0.9999);
  assert.ok(
    grid.xs.every((x, i) => i === 0 || x > grid.xs[i - 1]),
    'x ascends'
  );
});

test('the grid breaks a line where a device fell silent, and runs lines to the edges', () => {
  const line = new Line();
  const t = [0, 1, 2, 3, 4, 30, 31, 32, 33].map(x => T0 + x);
  line.extend(new Float64Array(t), new Float64Array(t.map((_, i) => i)), 0, t.length);
  const grid = buildGrid([line], T0 + 0.5, T0 + 32.5, 64);
  const ys = grid.ys[0];
  assert.ok(ys.includes(null), 'a null breaks the line in the 26 s silence');
  assert.equal(ys[0], 0.5, 'the left edge is interpolated between the points around it');
  assert.equal(ys[ys.length - 1], 7.5, 'so is the right edge');
  const steady = buildGrid([line], T0, T0 + 4, 8);
  assert.ok(!steady.ys[0].includes(null), 'no gap between regular readings');
});

test('the hover names a reading wherever a line is drawn, and none over a break', () => {
  // Readings every 0.25 s with a 0.8 s stall (drawn across) and a 26 s silence (a break).
  const t = [0, 0.25, 0.5, 0.75, 1, 1.8, 2.05, 2.3, 2.55, 28.55, 28.8, 29.05, 29.3].map(
    x => T0 + x
  );
  const line = new Line();
  line.extend(new Float64Array(t), new Float64Array(t.map((_, i) => i)), 0, t.length);
  const grid = buildGrid([line], T0, T0 + 30, 600);
  const reach = silenceAfter(line, grid.width) / 2;
  const drawnAcross = (a: number, b: number) => {
    const inside = grid.xs.flatMap((x, i) => (x > T0 + a && x < T0 + b ? [grid.ys[0][i]] : []));
    return !inside.includes(null);
  };
  assert.ok(drawnAcross(1, 1.8), 'the stall is drawn across');
  assert.ok(line.nearest(T0 + 1.4, reach) >= 0, 'so its middle names a reading');
  assert.ok(!drawnAcross(2.55, 28.55), 'the silence breaks the line');
  assert.equal(line.nearest(T0 + 15.5, reach), -1, 'and its middle names none');
});

test('times read as times, in UTC or local, and numbers exactly as sent', () => {
  assert.equal(formatTime(T0 + 0.125, 'UTC'), '22:13:20.125');
  assert.equal(formatTime(T0, 'UTC', true), '2023-11-14 22:13:20.000');
  assert.deepEqual(timeTicks([T0, T0 + 60], 60, 'UTC'), ['22:13:20\n2023-11-14', '22:14:20']);
  assert.deepEqual(timeTicks([T0 - 20, T0 + 40], 60, 'UTC'), ['22:13\n2023-11-14', '22:14']);
  assert.equal(exactNumber(1796504832.7), '1796504832.7', 'no six-significant-digit rounding');
  assert.equal(exactNumber(0.1 + 0.2), '0.30000000000000004');
  assert.equal(asTimestamp('ts', T0), T0);
  assert.equal(asTimestamp('created_at', T0 * 1000), T0);
  assert.equal(asTimestamp('temperature', T0), null);
  assert.equal(asTimestamp('ts', 12), null, 'a small number is not a time');
});

test('series sort naturally and status words are marked', () => {
  assert.deepEqual(['pump10', 'pump2', 'fan1'].sort(naturalCompare), ['fan1', 'pump2', 'pump10']);
  assert.equal(markText('fault'), 'bad');
  assert.equal(markText('OFFLINE'), 'bad');
  assert.equal(markText('ok'), 'good');
  assert.equal(markText('warning'), 'warn');
  assert.equal(markText('lyon'), 'text');
});

test('the status line says live only while the kernel speaks and the cable is up', () => {
  const status = {
    state: 'live',
    reason: null,
    cable: 'connected',
    rate: 4,
    rows: 2400,
    gaps: 0,
    dropped: 0,
    points: 2400,
    error: null
  };
  const fresh = { silence: 0.2, disconnected: false, waitingForWindow: false };
  assert.equal(statusLine(status, fresh).text, 'live · 4.0 readings/s · 2,400 rows · 0 gaps');
  const cases: [object, object, string][] = [
    [status, { ...fresh, disconnected: true }, 'disconnected'],
    [status, { ...fresh, silence: 12 }, 'stale'],
    [{ ...status, cable: 'reconnecting' }, fresh, 'reconnecting'],
    [{ ...status, state: 'unsubscribed' }, fresh, 'ended'],
    [{ ...status, state: 'closed' }, fresh, 'ended']
  ];
  for (const [kernel, facts, kind] of cases) {
    const line = statusLine(kernel as typeof status, facts as typeof fresh);
    assert.equal(line.kind, kind);
    assert.doesNotMatch(line.text, /\blive\b/, line.text);
  }
  assert.equal(statusLine(null, fresh).kind, 'waiting');
});

test('a panel gets a bucket per pixel column with a dozen lines, wider ones with 200', () => {
  assert.equal(columnsFor(1000, 12), 1000);
  assert.equal(columnsFor(1000, 1), 1000);
  assert.equal(columnsFor(1000, 0), 1000);
  assert.equal(columnsFor(1000, 100), 300);
  assert.ok(2 * columnsFor(1000, 100) * 100 <= POINT_BUDGET);
  assert.equal(columnsFor(1000, 200), 150, 'never fewer than 150 buckets');
  assert.equal(columnsFor(90, 200), 90, 'nor more than the pixels');
});
