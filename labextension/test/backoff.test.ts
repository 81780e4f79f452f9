/**
 * Backoff: full jitter under an exponential ceiling, and the machine's use of it (no
 * reconnect after a final disconnect, a reset only after a connection that lasted).
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff, ClientConnection, ReconnectDecision } from '../src/protocol';
import { seeded } from './replay';

const T0 = 1_700_000_000.0;

test('delays stay within [0, ceiling] and the ceiling doubles up to the cap', () => {
  const ceilings = [0.5, 1, 2, 4, 8, 16, 30, 30, 30];
  const top = new Backoff({ random: () => 1 - Number.EPSILON });
  const bottom = new Backoff({ random: () => 0 });
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(top.attempts, attempt);
    const high = top.nextDelay();
    assert.ok(high < ceiling && high > ceiling * 0.999999, `${high} vs ${ceiling}`);
    assert.equal(bottom.nextDelay(), 0);
  });
  top.reset();
  assert.equal(top.attempts, 0);
  assert.ok(top.nextDelay() < 0.5);
});

test('full jitter: delays spread over the whole window, not bunched', () => {
  const backoff = new Backoff({ base: 8, cap: 8, random: seeded(42) });
  const delays = Array.from({ length: 2000 }, () => backoff.nextDelay());
  assert.ok(delays.every(d => d >= 0 && d < 8));
  // Each eighth of the window gets its share (250 expected; the seeded draw is fixed).
  const buckets = new Array<number>(8).fill(0);
  for (const delay of delays) {
    buckets[Math.floor(delay)]++;
  }
  assert.ok(
    buckets.every(n => n > 180 && n < 320),
    `buckets ${buckets.join(',')}`
  );
});

test('the default source is Math.random, within bounds', () => {
  const backoff = new Backoff();
  for (let i = 0; i < 100; i++) {
    const ceiling = Math.min(30, 0.5 * 2 ** i);
    const delay = backoff.nextDelay();
    assert.ok(delay >= 0 && delay <= ceiling, `${delay} > ${ceiling}`);
  }
});

test('the ceiling stays at the cap through a long outage', () => {
  const backoff = new Backoff({ factor: 10, random: () => 0.5 });
  for (let i = 0; i < 5000; i++) {
    backoff.nextDelay();
  }
  assert.equal(backoff.nextDelay(), 15);
});

test('impossible settings are refused', () => {
  for (const options of [
    { base: 0 },
    { base: -1 },
    { factor: 0.5 },
    { base: 2, cap: 1 },
    { base: NaN },
    { cap: Infinity }
  ]) {
    assert.throws(() => new Backoff(options), RangeError, JSON.stringify(options));
  }
});

function live(seed: number): ClientConnection {
  const conn = new ClientConnection({ backoff: new Backoff({ random: seeded(seed) }) });
  conn.connectionOpened(T0);
  conn.receiveText('{"type":"welcome","sid":"s1"}', T0);
  conn.eventsReceived();
  return conn;
}

test('reconnect delays grow until a welcomed connection lasts two ping intervals', () => {
  // As test_reconnect_delays_grow_until_a_connection_lasts in the Python tests.
  const conn = live(3);
  const reference = seeded(3);
  conn.receiveText('{"type":"disconnect","reason":"server_restart","reconnect":true}', T0);
  assert.equal(conn.healthyAfter, 6.0);
  assert.deepEqual(
    conn.connectionLost(T0 + 100),
    new ReconnectDecision(true, reference() * 0.5, 'server_restart')
  );
  for (const ceiling of [1, 2, 4]) {
    conn.connectionOpened(T0);
    assert.deepEqual(
      conn.connectionLost(T0),
      new ReconnectDecision(true, reference() * ceiling, 'connection_lost')
    );
  }
  // A server that welcomes and drops each connection at once: the delays keep growing.
  for (const ceiling of [8, 16, 30, 30]) {
    conn.connectionOpened(T0);
    conn.receiveText('{"type":"welcome","sid":"s2"}', T0);
    assert.equal(conn.connectionLost(T0 + 5.9).delay, reference() * ceiling);
  }
  // A welcomed connection that lasted the stale window was healthy: start over.
  conn.connectionOpened(T0);
  conn.receiveText('{"type":"welcome","sid":"s3"}', T0);
  assert.equal(conn.connectionLost(T0 + 6).delay, reference() * 0.5);
  assert.equal(conn.backoff.attempts, 1);
  // Lasting without a welcome proves nothing.
  conn.connectionOpened(T0);
  assert.equal(conn.connectionLost(T0 + 60).delay, reference() * 1);
});

test('no reconnect after a disconnect that says reconnect: false', () => {
  for (const reason of ['unauthorized', 'token_expired']) {
    const conn = live(1);
    conn.receiveText(JSON.stringify({ type: 'disconnect', reason, reconnect: false }), T0);
    assert.equal(conn.connected, false);
    assert.deepEqual(conn.connectionLost(T0 + 1), new ReconnectDecision(false, 0, reason));
    assert.equal(conn.backoff.attempts, 0);
  }
});

test('healthyAfter can be set', () => {
  const conn = new ClientConnection({
    healthyAfter: 0,
    backoff: new Backoff({ random: seeded(1) })
  });
  for (let i = 0; i < 3; i++) {
    conn.connectionOpened(T0);
    conn.receiveText('{"type":"welcome"}', T0);
    conn.connectionLost(T0);
    assert.equal(conn.backoff.attempts, 1);
  }
});
