/**
 * Min/max per time bucket, as jupyter_iotcable/widgets/downsample.py does it: per bucket
 * of `width` seconds (aligned to unix time 0), the first point holding the minimum and
 * the first holding the maximum, in time order, plus the first and the last point. A
 * line drawn from what is kept looks the same, pixel column by pixel column, as the line
 * of every point: spikes are never averaged away. No DOM here (node --test runs it).
 */

/** The indexes to keep of a time-sorted series (sorted, no repeats). */
export function minmaxIndices(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  width: number,
  start = 0,
  stop = times.length
): number[] {
  if (!(width > 0)) {
    throw new RangeError(`the bucket width must be positive, not ${width}`);
  }
  const keep: number[] = [];
  if (stop - start <= 2) {
    for (let i = start; i < stop; i++) {
      keep.push(i);
    }
    return keep;
  }
  let bucket = Math.floor(times[start] / width);
  let low = start;
  let high = start;
  const close = (isLast: boolean) => {
    const a = Math.min(low, high);
    const b = Math.max(low, high);
    if (keep.length === 0 || keep[keep.length - 1] < a) {
      keep.push(a);
    }
    if (b !== a) {
      keep.push(b);
    }
    if (isLast && keep[keep.length - 1] !== stop - 1) {
      keep.push(stop - 1);
    }
  };
  keep.push(start);
  for (let i = start + 1; i < stop; i++) {
    const b = Math.floor(times[i] / width);
    if (b !== bucket) {
      close(false);
      bucket = b;
      low = high = i;
      continue;
    }
    const v = values[i];
    if (v < values[low]) {
      low = i;
    } else if (v > values[high]) {
      high = i;
    }
  }
  close(true);
  return keep;
}
