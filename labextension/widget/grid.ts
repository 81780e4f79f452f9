/**
 * What one chart panel hands uPlot: the shown lines laid on a shared grid of pixel
 * columns. uPlot wants one x array for all series; our series each have their own times
 * (200 devices never publish at the same instants), so the visible range is cut into one
 * bucket per pixel column (`columnsFor`: with many lines, a bucket per few columns), and
 * each line puts its minimum and maximum of that bucket (in time order) into the bucket's
 * two slots. A line therefore costs at most two points per bucket however many it holds,
 * and its picture is the picture of all its points.
 *
 * Empty slots are `undefined` (uPlot draws across them); a silence longer than the
 * line's usual spacing gets a `null` (uPlot breaks the line there), so a device that went
 * quiet shows as a gap, not as a straight line. The first and last slots hold the line's
 * value at the range's edges (interpolated from the points just outside), so lines run
 * to the edges instead of stopping at the last point inside. No DOM here.
 */

import { Line } from './store';

export type Slot = number | null | undefined;

/**
 * Points one panel hands uPlot at most (two per pixel column and line): with a dozen
 * lines every pixel column gets its own bucket; with 200 a bucket spans several pixels
 * (still each line's minimum and maximum there), else stroking 400,000 points took
 * 100-200 ms a draw in Chromium (bench/live_chart.py) and the page fell to 1-2 frames/s.
 */
export const POINT_BUDGET = 60_000;
/** A panel never has fewer buckets than this (or than its pixel columns, if fewer). */
const MIN_COLUMNS = 150;

/** Buckets across a panel `pixels` wide drawing `lines` lines (see POINT_BUDGET). */
export function columnsFor(pixels: number, lines: number): number {
  const budget = Math.floor(POINT_BUDGET / (2 * Math.max(1, lines)));
  return Math.max(1, Math.min(pixels, Math.max(MIN_COLUMNS, budget)));
}

export interface IGrid {
  xs: number[];
  ys: Slot[][];
  /** Points placed (slots holding a value), all lines together. */
  drawn: number;
  /** Seconds per bucket. */
  width: number;
}

/** The usual spacing of a line's recent points: the median of its last few intervals. */
export function typicalSpacing(line: Line, sample = 32): number {
  const from = Math.max(line.start + 1, line.stop - sample);
  const gaps: number[] = [];
  for (let i = from; i < line.stop; i++) {
    gaps.push(line.t[i] - line.t[i - 1]);
  }
  if (!gaps.length) {
    return Infinity;
  }
  gaps.sort((a, b) => a - b);
  return gaps[gaps.length >> 1];
}

/**
 * The longest silence a line is drawn across (a longer one breaks it): a few of its usual
 * intervals, and never less than what the grid's buckets (`width`) or the store's
 * compaction (`minGap`) put between points by themselves. The hover read-out reaches half
 * of it either way, so wherever a line is drawn it names a reading, and over a break it
 * says there is none.
 */
export function silenceAfter(line: Line, width: number, minGap = 0): number {
  return Math.max(3.5 * typicalSpacing(line), minGap * 2.5, width * 2);
}

/**
 * The grid for `lines` over [x0, x1] cut into `buckets` columns. `minGap`: no silence
 * shorter than this is a gap (at least the store's compaction bucket, whose points are
 * that far apart by construction).
 */
export function buildGrid(
  lines: (Line | undefined)[],
  x0: number,
  x1: number,
  buckets: number,
  minGap = 0
): IGrid {
  const n = Math.max(1, Math.floor(buckets));
  const width = (x1 - x0) / n;
  const xs = new Array<number>(2 * n + 2);
  xs[0] = x0;
  for (let b = 0; b < n; b++) {
    xs[2 * b + 1] = x0 + (b + 0.25) * width;
    xs[2 * b + 2] = x0 + (b + 0.75) * width;
  }
  xs[2 * n + 1] = x1;
  let drawn = 0;
  const ys = lines.map(line => {
    const slots = new Array<Slot>(2 * n + 2);
    if (!line || !line.length || !(width > 0)) {
      return slots;
    }
    const gap = silenceAfter(line, width, minGap);
    const t = line.t;
    const v = line.v;
    const i0 = line.lowerBound(x0);
    const i1 = line.lowerBound(x1 + 1e-9); // first index after the range
    if (i0 > line.start && i0 < line.stop && t[i0] - t[i0 - 1] <= gap) {
      slots[0] = interpolate(t[i0 - 1], v[i0 - 1], t[i0], v[i0], x0);
      drawn++;
    }
    if (i1 < line.stop && i1 > line.start && t[i1] - t[i1 - 1] <= gap) {
      slots[2 * n + 1] = interpolate(t[i1 - 1], v[i1 - 1], t[i1], v[i1], x1);
      drawn++;
    }
    let bucket = -1;
    let low = -1;
    let high = -1;
    const close = () => {
      if (bucket < 0) {
        return;
      }
      const a = Math.min(low, high);
      const b = Math.max(low, high);
      slots[2 * bucket + 1] = v[a];
      drawn++;
      if (b !== a) {
        slots[2 * bucket + 2] = v[b];
        drawn++;
      }
    };
    for (let i = i0; i < i1; i++) {
      const b = Math.min(n - 1, Math.max(0, Math.floor((t[i] - x0) / width)));
      if (b !== bucket) {
        close();
        if (i > i0 && t[i] - t[i - 1] > gap && b > bucket + 1) {
          slots[2 * (bucket + 1) + 1] = null; // a silence: break the line
        }
        bucket = b;
        low = high = i;
      } else if (v[i] < v[low]) {
        low = i;
      } else if (v[i] > v[high]) {
        high = i;
      }
    }
    close();
    return slots;
  });
  return { xs, ys, drawn, width };
}

function interpolate(ta: number, va: number, tb: number, vb: number, at: number): number {
  return tb === ta ? vb : va + ((vb - va) * (at - ta)) / (tb - ta);
}
