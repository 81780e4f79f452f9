/**
 * The live chart's pure core: the ring keeps the last points in order, the binary
 * point messages decode as jupyter_iotcable.widgets.encode_points writes them, and the
 * scaling maps ranges to pixels (a flat range to the middle).
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodePoints, extent, PointRing, scale } from '../src/widgets/ring';

const T0 = 1_700_000_000.0;

test('the ring keeps the last `capacity` points, oldest first', () => {
  const ring = new PointRing(3);
  for (let i = 0; i < 5; i++) {
    ring.push(T0 + i, i * 10, i % 2);
  }
  assert.equal(ring.size, 3);
  assert.deepEqual(
    [0, 1, 2].map(i => ring.at(i)),
    [
      { time: T0 + 2, value: 20, topic: 0 },
      { time: T0 + 3, value: 30, topic: 1 },
      { time: T0 + 4, value: 40, topic: 0 }
    ]
  );
  assert.throws(() => ring.at(3), RangeError);
  ring.clear();
  assert.equal(ring.size, 0);
  assert.throws(() => new PointRing(0), RangeError);
});

test('points decode from the three buffers the kernel sends, topic names once', () => {
  const topics: string[] = [];
  const content = { type: 'points' as const, count: 2, new_topics: ['a', 'b'] };
  // As ipywidgets hands buffers to a view: DataViews, here at an unaligned offset.
  const raw = new Uint8Array(1 + 16);
  raw.set(new Uint8Array(new Float64Array([T0, T0 + 1]).buffer), 1);
  const buffers = [
    new DataView(raw.buffer, 1, 16),
    new Float64Array([1.5, -2]).buffer,
    new Uint32Array([1, 0])
  ];
  const points = decodePoints(content, buffers, topics);
  assert.deepEqual(Array.from(points.times), [T0, T0 + 1]);
  assert.deepEqual(Array.from(points.values), [1.5, -2]);
  assert.deepEqual(Array.from(points.topics), [1, 0]);
  assert.deepEqual(topics, ['a', 'b']);
  const next = { type: 'points' as const, count: 1, new_topics: [] };
  assert.throws(
    () =>
      decodePoints(
        next,
        [new Float64Array([T0]), new Float64Array([1]), new Uint32Array([7])],
        topics
      ),
    /topic 7 was never named/
  );
  assert.throws(() => decodePoints(next, [], topics), /3 buffers expected/);
  assert.throws(
    () =>
      decodePoints(next, [new Float64Array(2), new Float64Array(1), new Uint32Array(1)], topics),
    /buffers disagree/
  );
});

test('extent and scale map ranges to pixels, a flat range to the middle', () => {
  const ring = new PointRing(4);
  assert.equal(extent(ring), undefined);
  ring.push(T0, 5, 0);
  ring.push(T0 + 10, -5, 1);
  assert.deepEqual(extent(ring), { t0: T0, t1: T0 + 10, v0: -5, v1: 5 });
  const x = scale(T0, T0 + 10, 30, 610);
  assert.equal(x(T0), 30);
  assert.equal(x(T0 + 10), 610);
  const y = scale(-5, 5, 190, 30); // values grow upwards
  assert.equal(y(5), 30);
  assert.equal(y(0), 110);
  assert.equal(scale(3, 3, 0, 100)(3), 50);
});
