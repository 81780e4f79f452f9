/**
 * The live chart's data in the browser: one time-sorted line per (series, field), the
 * mirror of jupyter_iotcable/widgets/lines.py. The kernel sends chunks (a table of
 * `(series, field, count)` rows, then the points' times and values, line after line);
 * the store merges them, forgets what left the window and reduces the part older than
 * the last few seconds to min/max per bucket, so its memory stays bounded whatever the
 * reading rate. No DOM here (node --test runs it).
 */

import { minmaxIndices } from './downsample';

/** A chunk of points as the kernel packs it (see lines.py `Chunk`). */
export interface IChunk {
  table: Uint32Array;
  times: Float64Array;
  values: Float64Array;
}

/** One binary buffer as a frontend hands it over (anywidget gives DataViews). */
export type Bytes = ArrayBuffer | ArrayBufferView;

function aligned(bytes: Bytes): ArrayBuffer {
  if (bytes instanceof ArrayBuffer) {
    return bytes;
  }
  // A DataView may sit at an offset a Float64Array cannot start at: copy it out.
  const out = new Uint8Array(bytes.byteLength);
  out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return out.buffer;
}

/** The three buffers of a chart message as a chunk; throws if they disagree. */
export function decodeChunk(buffers: Bytes[]): IChunk {
  if (buffers.length !== 3) {
    throw new Error(`a chart message has 3 buffers, not ${buffers.length}`);
  }
  const table = new Uint32Array(aligned(buffers[0]));
  const times = new Float64Array(aligned(buffers[1]));
  const values = new Float64Array(aligned(buffers[2]));
  let total = 0;
  for (let row = 2; row < table.length; row += 3) {
    total += table[row];
  }
  if (table.length % 3 !== 0 || total !== times.length || times.length !== values.length) {
    throw new Error("a chart message's counts do not match its points");
  }
  return { table, times, values };
}

/** One series' points of one field, time-sorted, in arrays that grow by doubling. */
export class Line {
  t = new Float64Array(64);
  v = new Float64Array(64);
  start = 0;
  stop = 0;

  get length(): number {
    return this.stop - this.start;
  }

  get newest(): number {
    return this.stop > this.start ? this.t[this.stop - 1] : -Infinity;
  }

  get oldest(): number {
    return this.stop > this.start ? this.t[this.start] : Infinity;
  }

  /** The first index (in [start, stop]) whose time is >= `time`. */
  lowerBound(time: number): number {
    let lo = this.start;
    let hi = this.stop;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.t[mid] < time) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /** The index of the point nearest to `time` within `tolerance` seconds, or -1. */
  nearest(time: number, tolerance: number): number {
    const i = this.lowerBound(time);
    let best = -1;
    let distance = tolerance;
    for (const j of [i - 1, i]) {
      if (j >= this.start && j < this.stop && Math.abs(this.t[j] - time) <= distance) {
        distance = Math.abs(this.t[j] - time);
        best = j;
      }
    }
    return best;
  }

  /** Add points (time-sorted among themselves); late ones are merged, exact repeats dropped. */
  extend(times: Float64Array, values: Float64Array, from: number, to: number): void {
    const count = to - from;
    if (count <= 0) {
      return;
    }
    if (this.length && times[from] <= this.t[this.stop - 1]) {
      this.merge(times, values, from, to);
      return;
    }
    if (this.stop + count > this.t.length) {
      this.replace(
        this.t.subarray(this.start, this.stop),
        this.v.subarray(this.start, this.stop),
        count
      );
    }
    this.t.set(times.subarray(from, to), this.stop);
    this.v.set(values.subarray(from, to), this.stop);
    this.stop += count;
  }

  private merge(times: Float64Array, values: Float64Array, from: number, to: number): void {
    const n = this.length + (to - from);
    const t = new Float64Array(n);
    const v = new Float64Array(n);
    let i = this.start;
    let j = from;
    let k = 0;
    while (i < this.stop || j < to) {
      const takeOld = j >= to || (i < this.stop && this.t[i] <= times[j]);
      const tt = takeOld ? this.t[i] : times[j];
      const vv = takeOld ? this.v[i++] : values[j++];
      if (k > 0 && t[k - 1] === tt && v[k - 1] === vv) {
        continue;
      }
      t[k] = tt;
      v[k++] = vv;
    }
    this.replace(t.subarray(0, k), v.subarray(0, k));
  }

  dropBefore(cutoff: number): void {
    this.start = this.lowerBound(cutoff);
  }

  /** Reduce the points older than `before` to min/max per `width` seconds. */
  compact(before: number, width: number): void {
    const split = this.lowerBound(before);
    if (split - this.start <= 2) {
      return;
    }
    const keep = minmaxIndices(this.t, this.v, width, this.start, split);
    const n = keep.length + (this.stop - split);
    const t = new Float64Array(n);
    const v = new Float64Array(n);
    keep.forEach((index, k) => {
      t[k] = this.t[index];
      v[k] = this.v[index];
    });
    t.set(this.t.subarray(split, this.stop), keep.length);
    v.set(this.v.subarray(split, this.stop), keep.length);
    this.replace(t, v);
  }

  private replace(times: Float64Array, values: Float64Array, room = 0): void {
    const size = Math.max(64, 2 * (times.length + room));
    const t = new Float64Array(size);
    const v = new Float64Array(size);
    t.set(times);
    v.set(values);
    this.t = t;
    this.v = v;
    this.start = 0;
    this.stop = times.length;
  }
}

export interface IStoreOptions {
  /** The window in seconds (0: no time bound). */
  span: number;
  /** Buckets across the window that old points are reduced to. */
  buckets?: number;
  /** Seconds at the end of each line kept whole. */
  recent?: number;
  /** A line is compacted once it holds this many times `buckets` points. */
  highWater?: number;
}

/** Every line of a chart: field -> series -> Line. */
export class LineStore {
  readonly span: number;
  readonly buckets: number;
  readonly recent: number;
  readonly highWater: number;
  readonly fields = new Map<number, Map<number, Line>>();
  newest = -Infinity;

  constructor(options: IStoreOptions) {
    this.span = options.span;
    this.buckets = options.buckets ?? 2000;
    this.recent = options.recent ?? 10;
    this.highWater = options.highWater ?? 4;
  }

  get size(): number {
    let total = 0;
    for (const lines of this.fields.values()) {
      for (const line of lines.values()) {
        total += line.length;
      }
    }
    return total;
  }

  /** The seconds a compacted bucket spans (what a gap must exceed to be one). */
  get bucketWidth(): number {
    return this.span > 0 ? this.span / this.buckets : 0;
  }

  line(series: number, field: number): Line | undefined {
    return this.fields.get(field)?.get(series);
  }

  clear(): void {
    this.fields.clear();
    this.newest = -Infinity;
  }

  /** Store a chunk's points, then apply the bounds. */
  apply(chunk: IChunk): void {
    const { table, times, values } = chunk;
    let offset = 0;
    for (let row = 0; row < table.length; row += 3) {
      const series = table[row];
      const field = table[row + 1];
      const count = table[row + 2];
      let lines = this.fields.get(field);
      if (!lines) {
        lines = new Map();
        this.fields.set(field, lines);
      }
      let line = lines.get(series);
      if (!line) {
        line = new Line();
        lines.set(series, line);
      }
      line.extend(times, values, offset, offset + count);
      this.newest = Math.max(this.newest, line.newest);
      offset += count;
    }
    this.bound();
  }

  private bound(): void {
    const cutoff = this.span > 0 ? this.newest - this.span : -Infinity;
    for (const lines of this.fields.values()) {
      for (const [series, line] of lines) {
        line.dropBefore(cutoff);
        if (line.length > this.highWater * this.buckets) {
          const width =
            this.span > 0 ? this.span / this.buckets : (line.newest - line.oldest) / this.buckets;
          line.compact(line.newest - this.recent, Math.max(width, 1e-6));
        }
        if (!line.length) {
          lines.delete(series);
        }
      }
    }
  }
}
