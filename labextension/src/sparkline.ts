/**
 * A channel's rate over the last minutes, as a sparkline: a bounded series of samples
 * (one per status poll) and the SVG path that draws it. Pure: the panel owns the DOM.
 */

export interface ISample {
  /** Unix seconds. */
  time: number;
  /** Readings per second. */
  rate: number;
}

/** The samples of the last `window` seconds, oldest first. */
export class RateSeries {
  constructor(readonly window = 300) {}

  get samples(): readonly ISample[] {
    return this._samples;
  }

  get latest(): ISample | undefined {
    return this._samples[this._samples.length - 1];
  }

  get max(): number {
    return this._samples.reduce((m, s) => Math.max(m, s.rate), 0);
  }

  add(time: number, rate: number): void {
    if (!Number.isFinite(rate) || rate < 0) {
      rate = 0;
    }
    this._samples.push({ time, rate });
    const cutoff = time - this.window;
    while (this._samples.length > 0 && this._samples[0].time < cutoff) {
      this._samples.shift();
    }
  }

  clear(): void {
    this._samples = [];
  }

  private _samples: ISample[] = [];
}

/** The narrowest time span a sparkline covers (seconds). */
export const MIN_SPAN = 30;

/**
 * The `d` of an SVG path drawing `samples` in a `width` x `height` box whose right edge
 * is `now` and left edge `now - window` (or the first sample, when the window has not
 * filled yet; at least MIN_SPAN seconds back); the y scale tops at the series' maximum (a flat
 * line at the bottom when everything is 0). Empty when there are fewer than 2 samples.
 */
export function sparklinePath(
  samples: readonly ISample[],
  now: number,
  window: number,
  width: number,
  height: number
): string {
  if (samples.length < 2) {
    return '';
  }
  const top = samples.reduce((m, s) => Math.max(m, s.rate), 0);
  // Until the window has filled, span what there is (at least MIN_SPAN seconds), so
  // that the first minutes are not a sliver at the right edge.
  const span = Math.min(window, Math.max(MIN_SPAN, now - samples[0].time));
  // One pixel of margin so that the stroke is not cut at the top and bottom.
  const usable = height - 2;
  const x = (t: number) => Math.max(0, Math.min(width, width - ((now - t) / span) * width));
  const y = (r: number) => 1 + usable - (top > 0 ? (r / top) * usable : 0);
  return samples
    .map((s, i) => `${i === 0 ? 'M' : 'L'}${x(s.time).toFixed(1)},${y(s.rate).toFixed(1)}`)
    .join(' ');
}

/** "12.3/s", "0.5/s", "1.2k/s": a rate in a few characters. */
export function formatRate(rate: number): string {
  if (!Number.isFinite(rate) || rate <= 0) {
    return '0/s';
  }
  if (rate >= 1000) {
    return `${(rate / 1000).toFixed(1)}k/s`;
  }
  if (rate >= 100) {
    return `${Math.round(rate)}/s`;
  }
  return `${rate.toFixed(1)}/s`;
}
