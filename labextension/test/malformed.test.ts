/**
 * Whatever the server sends, receiveText never throws: a frame the client cannot
 * understand becomes a ServerError event and the connection goes on. Arbitrary strings,
 * numbers beyond a double, wrong types in every member, absurd nesting.
 */

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import {
  BrokerStatus,
  ClientConnection,
  Disconnected,
  ErrorCode,
  GapReported,
  HistoryConfirmed,
  makeIdentifier,
  MAX_NESTING,
  RowsReceived,
  ServerError,
  SubscriptionConfirmed,
  SubscriptionRejected,
  Transmission,
  Welcomed
} from '../src/protocol';
import type { ClientEvent } from '../src/protocol';
import { newClient, NOW, repoRoot, seeded } from './replay';

const ID = makeIdentifier('telemetry', { topic: 'plant/+/+/env' });
const KINDS = [
  Welcomed,
  SubscriptionConfirmed,
  SubscriptionRejected,
  RowsReceived,
  Transmission,
  HistoryConfirmed,
  GapReported,
  Disconnected,
  ServerError,
  BrokerStatus
];

function subscribed(): ClientConnection {
  const conn = newClient('iotcable-v1-json');
  conn.receiveText('{"type":"welcome","sid":"sid-1"}', NOW);
  conn.subscribe('telemetry', { topic: 'plant/+/+/env' });
  conn.receiveText(JSON.stringify({ type: 'confirm_subscription', identifier: ID }), NOW);
  conn.eventsReceived();
  conn.dataToSend();
  return conn;
}

/** Feed one frame; it must not throw, and must give only known events. */
function feed(conn: ClientConnection, text: string): ClientEvent[] {
  assert.doesNotThrow(() => conn.receiveText(text, NOW), `receiveText threw on ${text}`);
  const events = conn.eventsReceived();
  for (const event of events) {
    assert.ok(
      KINDS.some(kind => event instanceof kind),
      `unknown event ${String(event)}`
    );
  }
  return events;
}

/**
 * Why a frame was refused: a ServerError's message, or for a frame of a subscription
 * (its rows become a gap) what the undecodable gap says.
 */
function refusal(conn: ClientConnection, text: string): string {
  const events = feed(conn, text);
  assert.equal(events.length, 1, `${text} gave ${JSON.stringify(events)}`);
  const [event] = events;
  if (event instanceof GapReported) {
    assert.ok(event.undecodable, JSON.stringify(event));
    const match =
      /^a frame of stream \S+ could not be decoded by this client \((.*)\): its readings( after offset \d+)? up to the next one received are missing$/s.exec(
        event.reason
      );
    assert.ok(match, event.reason);
    return match[1];
  }
  return serverError(conn, text, events);
}

function serverError(
  conn: ClientConnection,
  text: string,
  given: ClientEvent[] | null = null
): string {
  const events = given ?? feed(conn, text);
  assert.equal(events.length, 1, `${text} gave ${JSON.stringify(events)}`);
  const [event] = events;
  assert.ok(event instanceof ServerError, `${text} gave ${JSON.stringify(event)}`);
  assert.equal(event.code, ErrorCode.MALFORMED_FRAME);
  return event.message;
}

test('numbers beyond a double are refused in every place, as Python refuses them', () => {
  const conn = subscribed();
  const places = [
    `{"type":"welcome","sid":"s","x":NUM}`,
    `{"identifier":${JSON.stringify(ID)},"batch":[[3,NUM,"t",0]],"stream_id":"s","epoch":"e"}`,
    `{"identifier":${JSON.stringify(ID)},"batch":[[NUM,1,"t",0]],"stream_id":"s","epoch":"e"}`,
    `{"identifier":${JSON.stringify(ID)},"message":{"topic":"t","time":NUM,"payload":1},` +
      '"stream_id":"s","epoch":"e","offset":1}',
    `{"identifier":${JSON.stringify(ID)},"batch":[[4,1,"t",{"v":[NUM]}]],"stream_id":"s",` +
      '"epoch":"e","dropped":1}',
    `{"type":"reject_history","identifier":${JSON.stringify(ID)},"reason":"r",` +
      '"stream_id":"s","epoch":"e","available_from":NUM}'
  ];
  const numbers: [string, string][] = [
    ['1e400', '1e400'],
    ['-1e400', '-1e400'],
    ['1.5e309', '1.5e309'],
    ['9'.repeat(311), `${'9'.repeat(17)}...`],
    [`-${'9'.repeat(309)}`, `-${'9'.repeat(16)}...`]
  ];
  for (const place of places) {
    for (const [number, shown] of numbers) {
      assert.equal(
        refusal(conn, place.replace('NUM', number)),
        `frame is not usable JSON: the number ${shown} does not fit a 64-bit float`
      );
    }
  }
  // The largest doubles are fine.
  assert.equal(feed(conn, '{"type":"ping","message":1.7976931348623157e308}').length, 0);
});

test('wrong types in every member are reported, never thrown', () => {
  const frames: Record<string, unknown>[] = [
    { type: 'welcome', sid: 'x', restored: true, restored_ids: [ID] },
    { type: 'confirm_subscription', identifier: ID, meta: {} },
    { type: 'reject_subscription', identifier: ID, reason: 'r' },
    { type: 'confirm_history', identifier: ID },
    {
      type: 'reject_history',
      identifier: ID,
      reason: 'r',
      stream_id: 's',
      epoch: 'e',
      available_from: 1
    },
    { type: 'disconnect', reason: 'too_slow', reconnect: true },
    { type: 'broker', state: 'connected', detail: 'd' },
    { type: 'error', reason: 'r', message: 'm' },
    { identifier: ID, message: { action: 'x' } },
    {
      identifier: ID,
      message: { topic: 't', time: 1, payload: 1, error: 'e' },
      stream_id: 's',
      epoch: 'e',
      offset: 1,
      dropped: 1
    },
    { identifier: ID, batch: [[1, 1, 't', 1, 'e']], stream_id: 's', epoch: 'e', dropped: 1 }
  ];
  const wrong: unknown[] = [null, true, -1, 0.5, 'x', '', [], [1, 'a'], {}, { a: [] }];
  let reported = 0;
  for (const frame of frames) {
    for (const key of Object.keys(frame)) {
      for (const value of [...wrong, undefined]) {
        const changed: Record<string, unknown> = { ...frame, [key]: value };
        if (value === undefined) {
          delete changed[key];
        }
        const events = feed(subscribed(), JSON.stringify(changed));
        reported += events.filter(
          e => e instanceof ServerError || (e instanceof GapReported && e.undecodable)
        ).length;
      }
    }
  }
  // Most substitutions are errors; the rest are legitimate frames (e.g. another sid).
  assert.ok(reported > 300, `only ${reported} reported`);
  // The frames themselves are understood (the welcome by a socket not yet welcomed).
  assert.deepEqual(
    feed(newClient('iotcable-v1-json'), JSON.stringify(frames[0]))[0],
    new Welcomed('x', true, [ID])
  );
  for (const frame of frames.slice(1)) {
    const events = feed(subscribed(), JSON.stringify(frame));
    assert.ok(
      events.every(e => !(e instanceof ServerError) || e.code === 'r'),
      JSON.stringify(events)
    );
  }
});

test('arbitrary strings and mutated frames never throw', () => {
  const random = seeded(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const dir = path.join(repoRoot(), 'tests', 'transcripts');
  const seeds: string[] = [];
  for (const file of fs.readdirSync(dir).filter(f => f.endsWith('.json'))) {
    const transcript = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
      steps: { from?: string; frame?: string }[];
    };
    for (const step of transcript.steps) {
      if (step.from === 'server' && step.frame !== undefined) {
        seeds.push(step.frame);
      }
    }
  }
  const alphabet = [
    ...'"\\{}[],:0123456789eE-+.u ntfNIa',
    '\n',
    '\u0001',
    '\ud800',
    '\udc00',
    '\ud83d\ude00',
    'é',
    '\u2028',
    '1e400',
    'NaN',
    '\\ud800',
    'null'
  ];
  const conn = subscribed();
  let errors = 0;
  for (let i = 0; i < 20000; i++) {
    let text: string;
    if (i % 4 === 0) {
      text = Array.from({ length: Math.floor(random() * 30) }, () => pick(alphabet)).join('');
    } else {
      text = pick(seeds);
      for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
        const at = Math.floor(random() * (text.length + 1));
        const cut = random() < 0.4 ? 1 : 0;
        text = text.slice(0, at) + (cut ? '' : pick(alphabet)) + text.slice(at + cut);
      }
    }
    errors += feed(conn, text).filter(e => e instanceof ServerError).length;
    if (!conn.connected) {
      // A mutated frame may be a valid disconnect: start a new socket, as a transport would.
      conn.connectionLost(NOW);
      conn.connectionOpened(NOW);
      feed(conn, '{"type":"welcome","sid":"s"}');
    }
  }
  assert.ok(errors > 10000, `only ${errors} errors reported`);
});

test('frames that are not objects, or not JSON, are malformed_frame', () => {
  const conn = subscribed();
  const cases: [string, string][] = [
    ['<html>', 'frame is not JSON: Expecting value: line 1 column 1 (char 0)'],
    ['', 'frame is not JSON: Expecting value: line 1 column 1 (char 0)'],
    ['{"type":"ping"', "frame is not JSON: Expecting ',' delimiter: line 1 column 15 (char 14)"],
    ['\n\n{"a" 1}', "frame is not JSON: Expecting ':' delimiter: line 3 column 6 (char 7)"],
    [
      '"\ud83d\ude00\u0001"',
      'frame is not JSON: Invalid control character at: line 1 column 3 (char 2)'
    ],
    ['[NaN]', 'frame is not JSON: NaN is not valid JSON'],
    ['"\ud800"', 'frame is not valid UTF-8: it holds a lone surrogate'],
    ['{"type":"ping","x":"\\udc00"}', 'frame is not valid UTF-8: it holds a lone surrogate'],
    ['[1]', 'a server frame must be a JSON object, got an array'],
    ['"x"', 'a server frame must be a JSON object, got the string "x"'],
    ['null', 'a server frame must be a JSON object, got null'],
    ['1.5', 'a server frame must be a JSON object, got 1.5'],
    ['{"type":7}', '"type" must be a string, got 7'],
    [
      `{"identifier":${JSON.stringify(ID)},"batch":[[2,1,"t",0],[1,1,"t",0]],` +
        '"stream_id":"s","epoch":"e"}',
      'batch offsets must strictly increase: 1 after 2 (row 1)'
    ],
    [
      `{"identifier":${JSON.stringify(ID)},"batch":[[2,1,"t",0]],"stream_id":"s",` +
        '"epoch":"e","dropped":-3}',
      '"dropped" must be >= 0, got -3'
    ]
  ];
  for (const [text, message] of cases) {
    assert.equal(refusal(conn, text), message);
  }
  const opened = newClient('iotcable-v1-json');
  assert.equal(
    serverError(opened, '{"type":"welcome","sid":3}'),
    'welcome "sid" must be a string, got 3'
  );
  assert.equal(serverError(conn, '{"type":"welcome"}'), 'a second welcome on one connection');
  assert.deepEqual(feed(conn, '{"type":"stats"}'), [
    new ServerError(ErrorCode.UNKNOWN_MESSAGE, 'unknown message type "stats"')
  ]);
});

test('absurd nesting is refused, not a stack overflow', () => {
  const conn = subscribed();
  const nested = (depth: number): string =>
    `{"type":"ping","x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
  assert.deepEqual(feed(conn, nested(MAX_NESTING)), []);
  assert.equal(serverError(conn, nested(MAX_NESTING + 1)), 'frame is nested too deeply');
  assert.equal(serverError(conn, '['.repeat(200000)), 'frame is nested too deeply');
  assert.equal(
    serverError(conn, '['.repeat(100000) + ']'.repeat(100000)),
    'frame is nested too deeply'
  );
});

test('a huge frame is reported briefly', () => {
  const conn = subscribed();
  const huge = 'x'.repeat(1_000_000);
  assert.deepEqual(feed(conn, `{"type":"${huge}"}`), [
    new ServerError(ErrorCode.UNKNOWN_MESSAGE, `unknown message type "${'x'.repeat(57)}..."`)
  ]);
  assert.equal(
    serverError(newClient('iotcable-v1-json'), `{"type":"welcome","sid":["${huge}"]}`),
    'welcome "sid" must be a string, got an array'
  );
  assert.equal(
    serverError(conn, `{"type":"error","reason":"r","message":${huge.length}${huge}}`),
    "frame is not JSON: Expecting ',' delimiter: line 1 column 47 (char 46)"
  );
});
