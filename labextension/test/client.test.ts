/**
 * ClientConnection bookkeeping, ported from tests/core/test_protocol_client.py: duplicate
 * dropping across frames and history answers, gaps, reconnects, and misuse.
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Backoff,
  ClientConnection,
  GapReported,
  HistoryConfirmed,
  HistoryRequest,
  LocalProtocolError,
  makeIdentifier,
  RowsReceived,
  StreamPosition,
  Subprotocol,
  SubscriptionConfirmed,
  SubscriptionState,
  Welcomed
} from '../src/protocol';
import type { Row } from '../src/protocol';
import { seeded } from './replay';

const ID = makeIdentifier('telemetry', { topic: 'plant/+/+/env' });
const T0 = 1_700_000_000.0;

function client(subprotocol: Subprotocol = Subprotocol.IOTCABLE): ClientConnection {
  const conn = new ClientConnection({ subprotocol, backoff: new Backoff({ random: seeded(3) }) });
  conn.connectionOpened(T0);
  return conn;
}

function receive(conn: ClientConnection, frame: Record<string, unknown>, now = T0): void {
  conn.receiveText(JSON.stringify(frame), now);
}

function commands(conn: ClientConnection): unknown[] {
  return conn.dataToSend().map(text => JSON.parse(text) as unknown);
}

function live(subprotocol: Subprotocol = Subprotocol.IOTCABLE, meta?: object): ClientConnection {
  const conn = client(subprotocol);
  receive(conn, { type: 'welcome', sid: 's1' });
  conn.subscribe('telemetry', { topic: 'plant/+/+/env' });
  conn.dataToSend();
  receive(conn, { type: 'confirm_subscription', identifier: ID, ...(meta ? { meta } : {}) });
  conn.eventsReceived();
  return conn;
}

function batch(conn: ClientConnection, offsets: number[], epoch = 'e1', dropped = 0): void {
  const frame: Record<string, unknown> = {
    identifier: ID,
    batch: offsets.map(o => [o, T0 + o, 'plant/a/b/env', { t: o }]),
    stream_id: 'telemetry',
    epoch
  };
  if (dropped) {
    frame['dropped'] = dropped;
  }
  receive(conn, frame);
}

function row(offset: number): Row {
  return [offset, T0 + offset, 'plant/a/b/env', { t: offset }, null];
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function offsetsReceived(conn: ClientConnection): number[] {
  return conn
    .eventsReceived()
    .flatMap(e => (e instanceof RowsReceived ? e.rows.map(r => r[0]) : []));
}

function positions(conn: ClientConnection): Record<string, StreamPosition> {
  return Object.fromEntries(conn.positions(ID));
}

test('duplicates are dropped and offset jumps are not gaps', () => {
  const conn = live();
  batch(conn, [1, 2, 3]);
  batch(conn, [2, 3, 10, 40]); // 4..9 went to other topics: not a gap
  batch(conn, [10, 40]);
  assert.deepEqual(conn.eventsReceived(), [
    new RowsReceived(ID, 'telemetry', 'e1', [row(1), row(2), row(3)], 0),
    new RowsReceived(ID, 'telemetry', 'e1', [row(10), row(40)], 0)
  ]);
  batch(conn, [40], 'e1', 3); // duplicates only, but the drop count still matters
  assert.deepEqual(conn.eventsReceived(), [new RowsReceived(ID, 'telemetry', 'e1', [], 3)]);
});

test('data frames on the ActionCable subprotocols are rows too, deduplicated', () => {
  for (const subprotocol of [Subprotocol.PLAIN, Subprotocol.EXT]) {
    const conn = live(subprotocol);
    for (const offset of [7, 8, 7]) {
      receive(conn, {
        identifier: ID,
        message: { topic: 'plant/a/b/env', time: T0 + offset, payload: { t: offset } },
        stream_id: 'telemetry',
        epoch: 'e1',
        offset
      });
    }
    assert.deepEqual(offsetsReceived(conn), [7, 8]);
  }
});

test('a history backfill in several frames keeps every frame', () => {
  // The server sends a history answer in chunks as the socket drains, with live rows in
  // between. Each chunk lies below the rows held live: lowering the lowest held offset at
  // the first chunk would make the next chunks look held already.
  const conn = live();
  batch(conn, range(1000, 1010));
  conn.requestHistory(ID, { since: 0 });
  conn.dataToSend();
  conn.eventsReceived();
  batch(conn, range(0, 500));
  batch(conn, [1010]); // a live row between two chunks
  batch(conn, range(500, 1000));
  batch(conn, range(995, 1005)); // a chunk that overlaps what is held: dropped
  receive(conn, { type: 'confirm_history', identifier: ID });
  assert.deepEqual(offsetsReceived(conn), [...range(0, 500), 1010, ...range(500, 1000)]);
  assert.deepEqual(positions(conn), { telemetry: new StreamPosition('e1', 1010) });
  batch(conn, [3, 999, 1010]); // after the answer everything held is a duplicate
  batch(conn, [1011]);
  assert.deepEqual(conn.eventsReceived(), [
    new RowsReceived(ID, 'telemetry', 'e1', [row(1011)], 0)
  ]);
});

test('a backfill arriving twice within one answer is kept once', () => {
  const conn = live();
  batch(conn, [50, 51]);
  conn.requestHistory(ID, { since: 0 });
  batch(conn, [10, 11, 12]);
  batch(conn, [11, 12, 13]); // 11, 12 came in this answer already
  batch(conn, [52]);
  receive(conn, { type: 'confirm_history', identifier: ID });
  batch(conn, [12, 13, 50, 53]);
  assert.deepEqual(offsetsReceived(conn), [50, 51, 10, 11, 12, 13, 52, 53]);
});

test('a connection lost mid-answer forgets the partial backfill', () => {
  // The rest of that answer never came: only what the catch-up asks for counts.
  const conn = live();
  batch(conn, [50]);
  conn.requestHistory(ID, { since: 0 });
  batch(conn, [10, 11]);
  conn.connectionLost(T0);
  conn.connectionOpened(T0);
  conn.dataToSend();
  receive(conn, { type: 'welcome', sid: 's2' });
  assert.deepEqual(commands(conn), [
    {
      command: 'subscribe',
      identifier: ID,
      history: { streams: { telemetry: { offset: 50, epoch: 'e1' } } }
    }
  ]);
  receive(conn, { type: 'confirm_subscription', identifier: ID });
  batch(conn, [51]);
  batch(conn, [9, 10, 11, 12]); // below the floor and no answer in flight: all new
  assert.deepEqual(offsetsReceived(conn), [50, 10, 11, 51, 9, 10, 11, 12]);
});

test('an epoch change is a gap, then the new epoch is accepted', () => {
  const conn = live();
  batch(conn, [50]);
  batch(conn, [1, 2], 'e2');
  batch(conn, [3], 'e2');
  assert.deepEqual(conn.eventsReceived(), [
    new RowsReceived(ID, 'telemetry', 'e1', [row(50)], 0),
    new GapReported(
      ID,
      'telemetry',
      'stream telemetry restarted (epoch e1 -> e2): ' +
        'readings after offset 50 of the old epoch may be missing',
      true,
      50,
      null,
      'e2'
    ),
    new RowsReceived(ID, 'telemetry', 'e2', [row(1), row(2)], 0),
    new RowsReceived(ID, 'telemetry', 'e2', [row(3)], 0)
  ]);
});

test('reject_history is a gap, then what remains is asked for, once', () => {
  const conn = live();
  batch(conn, [10]);
  conn.requestHistory(ID); // from offset 10
  conn.dataToSend();
  conn.eventsReceived();
  const reject = {
    type: 'reject_history',
    identifier: ID,
    reason: 'offsets up to 99 are gone',
    stream_id: 'telemetry',
    epoch: 'e1',
    available_from: 100
  };
  receive(conn, reject);
  assert.deepEqual(conn.eventsReceived(), [
    new GapReported(ID, 'telemetry', 'offsets up to 99 are gone', false, 10, 100, 'e1')
  ]);
  assert.deepEqual(conn.dataToSend(), [
    '{"command":"history","identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":' +
      '\\"plant/+/+/env\\"}","history":{"streams":{"telemetry":{"offset":99,"epoch":"e1"}}}}'
  ]);
  receive(conn, reject); // the same reject for that request: reported, no loop
  assert.equal(conn.eventsReceived().length, 1);
  assert.deepEqual(conn.dataToSend(), []);
});

test('a gap starts where the request asked, even if kept rows came first', () => {
  const conn = live();
  batch(conn, [10]);
  conn.requestHistory(ID);
  conn.requestHistory(ID, { since: T0 - 60 });
  conn.dataToSend();
  batch(conn, [100, 101]); // what the server still keeps, sent before its answers
  for (let i = 0; i < 2; i++) {
    receive(conn, {
      type: 'reject_history',
      identifier: ID,
      reason: 'offsets up to 99 are gone',
      stream_id: 'telemetry',
      epoch: 'e1',
      available_from: 100
    });
  }
  const gaps = conn.eventsReceived().filter(e => e instanceof GapReported);
  // Each gap also says which time its request asked from (the first asked from offsets).
  const gone = 'offsets up to 99 are gone';
  assert.deepEqual(gaps, [
    new GapReported(ID, 'telemetry', gone, false, 10, 100, 'e1'),
    new GapReported(ID, 'telemetry', gone, false, 10, 100, 'e1', T0 - 60)
  ]);
});

test('a restart whose kept rows come before the reject is one gap', () => {
  const conn = live();
  batch(conn, [10]);
  conn.connectionLost(T0);
  conn.connectionOpened(T0);
  receive(conn, { type: 'welcome', sid: 's2' });
  assert.deepEqual((commands(conn)[0] as { history: unknown }).history, {
    streams: { telemetry: { offset: 10, epoch: 'e1' } }
  });
  receive(conn, { type: 'confirm_subscription', identifier: ID });
  batch(conn, [3, 4], 'e2');
  receive(conn, {
    type: 'reject_history',
    identifier: ID,
    reason: 'epoch e1 is gone',
    stream_id: 'telemetry',
    epoch: 'e2',
    available_from: 3
  });
  const events = conn.eventsReceived();
  assert.deepEqual(
    events.filter(e => e instanceof GapReported),
    [
      new GapReported(
        ID,
        'telemetry',
        'stream telemetry restarted (epoch e1 -> e2): ' +
          'readings after offset 10 of the old epoch may be missing',
        true,
        10,
        null,
        'e2'
      )
    ]
  );
  assert.deepEqual(events.at(-1), new RowsReceived(ID, 'telemetry', 'e2', [row(3), row(4)], 0));
  assert.deepEqual(positions(conn), { telemetry: new StreamPosition('e2', 4) });
});

test("a new epoch from reject_history forgets the old epoch's lowest offset", () => {
  const conn = live();
  batch(conn, range(5, 11));
  conn.requestHistory(ID);
  conn.dataToSend();
  receive(conn, {
    type: 'reject_history',
    identifier: ID,
    reason: 'restarted',
    stream_id: 'telemetry',
    epoch: 'e2',
    available_from: null
  });
  batch(conn, [20, 21], 'e2'); // live rows of the new epoch
  conn.requestHistory(ID, { since: 0 });
  batch(conn, range(0, 22), 'e2'); // the backfill: 0..19 are new, 20, 21 held
  assert.deepEqual(
    conn.eventsReceived().at(-1),
    new RowsReceived(ID, 'telemetry', 'e2', range(0, 20).map(row), 0)
  );
  assert.deepEqual(positions(conn), { telemetry: new StreamPosition('e2', 21) });
});

test('a plain welcome after a reconnect resubscribes from the positions', () => {
  const conn = live();
  conn.subscribe('backfilled', {}, new HistoryRequest({ since: T0 - 3600 }));
  conn.subscribe('quiet');
  conn.subscribe('refused');
  conn.subscribe('never_answered');
  for (const name of ['backfilled', 'quiet']) {
    receive(conn, { type: 'confirm_subscription', identifier: makeIdentifier(name) }, T0 + 5);
  }
  receive(conn, {
    type: 'reject_subscription',
    identifier: makeIdentifier('refused'),
    reason: 'no'
  });
  batch(conn, [41]);
  conn.connectionLost(T0 + 10);
  assert.deepEqual(Object.fromEntries([...conn.subscriptions].map(([id, s]) => [id, s.state])), {
    [ID]: 'pending',
    '{"channel":"backfilled"}': 'pending',
    '{"channel":"quiet"}': 'pending',
    '{"channel":"refused"}': 'rejected',
    '{"channel":"never_answered"}': 'pending'
  });
  conn.connectionOpened(T0 + 11);
  assert.deepEqual(conn.resumeQuery(), { sid: 's1' });
  conn.dataToSend();
  receive(conn, { type: 'welcome', sid: 's2' });
  // Byte for byte: `since` is written as Python writes a float.
  assert.deepEqual(conn.dataToSend(), [
    JSON.stringify({
      command: 'subscribe',
      identifier: ID,
      history: { streams: { telemetry: { offset: 41, epoch: 'e1' } } }
    }),
    '{"command":"subscribe","identifier":"{\\"channel\\":\\"backfilled\\"}",' +
      '"history":{"since":1699996400.0}}',
    '{"command":"subscribe","identifier":"{\\"channel\\":\\"quiet\\"}",' +
      '"history":{"since":1700000005.0}}',
    '{"command":"subscribe","identifier":"{\\"channel\\":\\"never_answered\\"}"}'
  ]);
});

test('a restored welcome asks history for restored ones and resubscribes the rest', () => {
  const conn = live(Subprotocol.IOTCABLE, { columns: 'plant/{site}/{device}/env' });
  conn.subscribe('fresh');
  batch(conn, [41]);
  const gone = makeIdentifier('dropped_meanwhile');
  conn.connectionLost(T0);
  conn.connectionOpened(T0);
  conn.eventsReceived();
  receive(conn, {
    type: 'welcome',
    sid: 's1',
    restored: true,
    restored_ids: [ID, '{"channel":"fresh"}', gone]
  });
  assert.deepEqual(conn.eventsReceived(), [
    new Welcomed('s1', true, [ID, '{"channel":"fresh"}', gone]),
    new SubscriptionConfirmed(ID, { columns: 'plant/{site}/{device}/env' })
  ]);
  assert.deepEqual(commands(conn), [
    {
      command: 'history',
      identifier: ID,
      history: { streams: { telemetry: { offset: 41, epoch: 'e1' } } }
    },
    // restored, but we never saw its confirm (nor its meta): subscribe again
    { command: 'subscribe', identifier: '{"channel":"fresh"}' },
    { command: 'unsubscribe', identifier: gone }
  ]);
  assert.equal(conn.subscriptions.get(ID)?.state, SubscriptionState.CONFIRMED);
  batch(conn, [41, 42]);
  assert.deepEqual(conn.eventsReceived(), [new RowsReceived(ID, 'telemetry', 'e1', [row(42)], 0)]);
});

test('the plain subprotocol resubscribes without history', () => {
  const conn = live(Subprotocol.PLAIN);
  receive(conn, {
    identifier: ID,
    message: { topic: 'a', time: T0, payload: 1 },
    stream_id: 'telemetry',
    epoch: 'e1',
    offset: 3
  });
  conn.connectionLost(T0);
  conn.connectionOpened(T0);
  receive(conn, { type: 'welcome', sid: 's2' });
  assert.deepEqual(commands(conn), [{ command: 'subscribe', identifier: ID }]);
});

test('request history: by since, then from the positions; confirm_history', () => {
  const conn = live();
  assert.throws(() => conn.requestHistory(ID), /no row received yet, so pass since/);
  conn.requestHistory(ID, { since: T0 - 60 });
  batch(conn, [4]);
  conn.requestHistory(ID);
  assert.deepEqual(
    conn.dataToSend().map(t => t.slice(t.indexOf('"history":{'))),
    [
      '"history":{"since":1699999940.0}}',
      '"history":{"streams":{"telemetry":{"offset":4,"epoch":"e1"}}}}'
    ]
  );
  receive(conn, { type: 'confirm_history', identifier: ID });
  assert.deepEqual(conn.eventsReceived().at(-1), new HistoryConfirmed(ID));
  assert.throws(
    () => live(Subprotocol.PLAIN).requestHistory(ID, { since: 1 }),
    /history needs an extended subprotocol/
  );
});

test('perform puts the action first in data, and refuses what JSON cannot carry', () => {
  const conn = live();
  conn.perform(ID, 'publish', { topic: 'plant/lyon/pump1/cmd', payload: { speed: 40.5 } });
  assert.deepEqual(conn.dataToSend(), [
    '{"command":"message","identifier":"{\\"channel\\":\\"telemetry\\",\\"topic\\":' +
      '\\"plant/+/+/env\\"}","data":"{\\"action\\":\\"publish\\",\\"topic\\":' +
      '\\"plant/lyon/pump1/cmd\\",\\"payload\\":{\\"speed\\":40.5}}"}'
  ]);
  assert.throws(() => conn.perform(ID, 'publish', { action: 'x' }), /must not hold "action"/);
  assert.throws(
    () => conn.perform(ID, 'publish', { payload: NaN }),
    new LocalProtocolError(
      'perform data cannot be encoded as JSON: Out of range float values are not JSON compliant'
    )
  );
  const cycle: Record<string, unknown> = {};
  cycle['self'] = cycle;
  assert.throws(() => conn.perform(ID, 'publish', cycle), /Circular reference detected/);
  assert.throws(
    () => conn.perform(ID, 'publish', { when: new Date(0) }),
    /Object of type Date is not JSON serializable/
  );
  assert.throws(() => conn.perform(ID, 'publish', { u: undefined }), LocalProtocolError);
  assert.deepEqual(conn.dataToSend(), []);
});

test('misuse is a LocalProtocolError', () => {
  const conn = live();
  assert.throws(
    () => conn.subscribe('telemetry', { topic: 'plant/+/+/env' }),
    /already subscribed to/
  );
  assert.throws(() => conn.perform('{"channel":"nope"}', 'publish', {}), /no such subscription/);
  conn.subscribe('waiting');
  assert.throws(
    () => conn.perform('{"channel":"waiting"}', 'publish', {}),
    new LocalProtocolError(
      'perform(\'{"channel":"waiting"}\'): the subscription is pending, not confirmed'
    )
  );
  assert.throws(
    () => live(Subprotocol.PLAIN).subscribe('x', {}, new HistoryRequest({ since: 1 })),
    /history needs an extended subprotocol, not actioncable-v1-json/
  );
  assert.throws(
    () => new HistoryRequest({ since: -1 }),
    new LocalProtocolError('history since must be unix seconds (a finite number >= 0), got -1.0')
  );
  const fresh = new ClientConnection();
  assert.throws(() => fresh.receiveText('{}', T0), /receiveText\(\) before connectionOpened\(\)/);
  fresh.connectionOpened(T0);
  assert.throws(() => fresh.connectionOpened(T0), /connectionOpened\(\) twice/);
});

test('stale after two silent ping intervals on an open socket', () => {
  const conn = new ClientConnection({ pingInterval: 3 });
  assert.equal(conn.isStale(T0 + 100), false);
  conn.connectionOpened(T0);
  assert.equal(conn.isStale(T0 + 6), false);
  assert.equal(conn.isStale(T0 + 6.01), true);
  receive(conn, { type: 'ping', message: T0 + 6 }, T0 + 6);
  assert.equal(conn.isStale(T0 + 12), false);
  assert.equal(conn.isStale(T0 + 12.5), true);
  conn.connectionLost(T0 + 13);
  assert.equal(conn.isStale(T0 + 100), false);
});

test('unsubscribe sends only for what the server heard of, and rows after it are dropped', () => {
  const conn = live();
  conn.unsubscribe(ID);
  assert.deepEqual(commands(conn), [{ command: 'unsubscribe', identifier: ID }]);
  batch(conn, [1]);
  assert.deepEqual(conn.eventsReceived(), []);
  const offline = client();
  offline.subscribe('later');
  offline.unsubscribe('{"channel":"later"}');
  assert.deepEqual(offline.dataToSend(), []);
});
