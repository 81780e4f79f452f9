/**
 * The pure part of the live chart: a fixed-size ring of points, the decoding of the
 * kernel's binary point messages (jupyter_iotcable.widgets.encode_points) and the
 * scaling of points to pixels. No DOM here: node --test runs it as is.
 */

/** A comm message of new points: JSON content plus three binary buffers. */
export interface IPointsContent {
  type: 'points';
  count: number;
  new_topics: string[];
}

/** A view of one buffer as the bytes it holds (ArrayBuffer or a typed-array view). */
export type Bytes = ArrayBuffer | ArrayBufferView;

function copyBytes(bytes: Bytes): ArrayBuffer {
  if (bytes instanceof ArrayBuffer) {
    return bytes;
  }
  // A DataView over a larger buffer, or at an offset not aligned for Float64Array.
  const out = new Uint8Array(bytes.byteLength);
  out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return out.buffer;
}

/**
 * The points of one message, as parallel arrays; `topics` (the receiver's list of topic
 * names, index = the number the kernel sends) is extended with `content.new_topics`.
 */
export function decodePoints(
  content: IPointsContent,
  buffers: Bytes[],
  topics: string[]
): { times: Float64Array; values: Float64Array; topics: Uint32Array } {
  if (buffers.length !== 3) {
    throw new Error(`points message: 3 buffers expected, got ${buffers.length}`);
  }
  topics.push(...content.new_topics);
  const times = new Float64Array(copyBytes(buffers[0]));
  const values = new Float64Array(copyBytes(buffers[1]));
  const which = new Uint32Array(copyBytes(buffers[2]));
  if (
    times.length !== content.count ||
    values.length !== content.count ||
    which.length !== content.count
  ) {
    throw new Error(`points message: ${content.count} points announced, buffers disagree`);
  }
  for (const index of which) {
    if (index >= topics.length) {
      throw new Error(`points message: topic ${index} was never named`);
    }
  }
  return { times, values, topics: which };
}

/** The last `capacity` points, oldest first, in preallocated typed arrays. */
export class PointRing {
  readonly capacity: number;
  private readonly _times: Float64Array;
  private readonly _values: Float64Array;
  private readonly _topics: Uint32Array;
  private _start = 0;
  private _size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) {
      throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    }
    this.capacity = capacity;
    this._times = new Float64Array(capacity);
    this._values = new Float64Array(capacity);
    this._topics = new Uint32Array(capacity);
  }

  get size(): number {
    return this._size;
  }

  push(time: number, value: number, topic: number): void {
    const at = (this._start + this._size) % this.capacity;
    this._times[at] = time;
    this._values[at] = value;
    this._topics[at] = topic;
    if (this._size < this.capacity) {
      this._size += 1;
    } else {
      this._start = (this._start + 1) % this.capacity;
    }
  }

  /** The i-th point, oldest first. */
  at(i: number): { time: number; value: number; topic: number } {
    if (i < 0 || i >= this._size) {
      throw new RangeError(`index ${i} out of [0, ${this._size})`);
    }
    const k = (this._start + i) % this.capacity;
    return { time: this._times[k], value: this._values[k], topic: this._topics[k] };
  }

  clear(): void {
    this._start = 0;
    this._size = 0;
  }
}

/** Min and max of times and values; undefined when the ring is empty. */
export function extent(
  ring: PointRing
): { t0: number; t1: number; v0: number; v1: number } | undefined {
  if (ring.size === 0) {
    return undefined;
  }
  let t0 = Infinity;
  let t1 = -Infinity;
  let v0 = Infinity;
  let v1 = -Infinity;
  for (let i = 0; i < ring.size; i++) {
    const { time, value } = ring.at(i);
    t0 = Math.min(t0, time);
    t1 = Math.max(t1, time);
    v0 = Math.min(v0, value);
    v1 = Math.max(v1, value);
  }
  return { t0, t1, v0, v1 };
}

/**
 * A linear map from [lo, hi] to [from, to] (pixels); a flat range maps to the middle,
 * as a single point or a constant line should not sit on an edge.
 */
export function scale(lo: number, hi: number, from: number, to: number): (x: number) => number {
  const span = hi - lo;
  if (!(span > 0)) {
    const middle = (from + to) / 2;
    return () => middle;
  }
  return (x: number) => from + ((x - lo) / span) * (to - from);
}
