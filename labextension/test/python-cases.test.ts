/**
 * The mirror against the Python core itself, case by case: python_cases.py computes the
 * expected answers with the project's virtualenv each run (identifiers, Python's number
 * and text spellings, JSON refusals in Python's words, history requests, odd server
 * frames, and random conversations in the transcript format), and every one must come
 * out of the TypeScript modules identical.
 *
 * The Python interpreter is $IOTCABLE_PYTHON, else the repository's .venv; without one
 * these tests fail (they are never skipped): run `bash .ci/setup` first.
 */

import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import {
  BrokerState,
  ClientConnection,
  CommandName,
  DisconnectReason,
  ErrorCode,
  isBatched,
  isExtended,
  MAX_CHANNEL_LENGTH,
  MessageType,
  PLAIN_HISTORY_REASON,
  PREFERENCE,
  requiredReconnect,
  Subprotocol,
  describe as describeValue,
  dumps,
  excerpt,
  HistoryRequest,
  JsonDecodeError,
  loads,
  LocalProtocolError,
  makeIdentifier,
  parseIdentifier,
  RemoteProtocolError
} from '../src/protocol';
import { pyFloatRepr } from '../src/protocol/text';
import { asSubprotocol, newClient, NOW, replayClient, repoRoot, toJson } from './replay';
import type { Transcript } from './replay';

interface Cases {
  literals: Record<string, unknown>;
  identifiers: {
    channel: string;
    params: [string, string][];
    identifier?: string;
    error?: string;
  }[];
  repr: string[];
  describe: { value: unknown; describe: string }[];
  excerpt: { text: string; limit: number; excerpt: string }[];
  loads: { text: string; value?: unknown; error?: string }[];
  history: { value: unknown; wire?: unknown; frame?: string; error?: string }[];
  frames: { subprotocol: string; frame: string; events: unknown[]; sent: string[] }[];
  scenarios: Transcript[];
  transcripts: string[];
  skipped: Record<string, number>;
}

const ROOT = repoRoot();
let cached: Cases | null = null;

function cases(): Cases {
  if (cached === null) {
    const python = process.env['IOTCABLE_PYTHON'] ?? path.join(ROOT, '.venv', 'bin', 'python');
    assert.ok(
      fs.existsSync(python),
      `no Python at ${python}: run bash .ci/setup, or set IOTCABLE_PYTHON`
    );
    const script = path.join(ROOT, 'labextension', 'test', 'python_cases.py');
    const out = execFileSync(python, [script], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024
    });
    cached = JSON.parse(out) as Cases;
  }
  return cached;
}

/** Run `check` on every case; fail once with the first mismatches, not at the first. */
function each<T>(items: readonly T[], check: (item: T) => void): void {
  assert.ok(items.length > 0, 'no cases');
  const failures: string[] = [];
  for (const item of items) {
    try {
      check(item);
    } catch (exc) {
      failures.push(`${JSON.stringify(item).slice(0, 300)}\n    ${String(exc)}`);
    }
  }
  assert.deepEqual(
    failures.slice(0, 10),
    [],
    `${failures.length} of ${items.length} cases differ from Python`
  );
}

function errorMessage(run: () => unknown): string {
  try {
    run();
  } catch (exc) {
    if (exc instanceof LocalProtocolError || exc instanceof RemoteProtocolError) {
      return exc.message;
    }
    throw exc;
  }
  throw new Error('no error thrown');
}

test('every wire literal is spelled as in messages.py', () => {
  const subprotocols = Object.values(Subprotocol);
  const reasons = Object.values(DisconnectReason);
  assert.deepEqual(
    {
      Subprotocol,
      CommandName,
      MessageType,
      DisconnectReason,
      BrokerState,
      ErrorCode,
      extended: Object.fromEntries(subprotocols.map(s => [s, isExtended(s)])),
      batched: Object.fromEntries(subprotocols.map(s => [s, isBatched(s)])),
      required_reconnect: Object.fromEntries(reasons.map(r => [r, requiredReconnect(r)])),
      PREFERENCE,
      PLAIN_HISTORY_REASON,
      MAX_CHANNEL_LENGTH
    },
    cases().literals
  );
});

test('make_identifier: the same text, or the same refusal', () => {
  each(cases().identifiers, item => {
    const params = new Map(item.params);
    if (item.error !== undefined) {
      assert.equal(
        errorMessage(() => makeIdentifier(item.channel, params)),
        item.error
      );
      return;
    }
    const identifier = makeIdentifier(item.channel, params);
    assert.equal(identifier, item.identifier);
    const ref = parseIdentifier(identifier);
    assert.equal(ref.channel, item.channel);
    assert.deepEqual([...ref.params].sort(), [...item.params].sort());
  });
});

test("repr(float): Python's spelling of 2000+ doubles", () => {
  each(cases().repr, text => assert.equal(pyFloatRepr(Number(text)), text));
});

test('describe and excerpt: the same words for peer values', () => {
  each(cases().describe, item => assert.equal(describeValue(item.value), item.describe));
  each(cases().excerpt, item => assert.equal(excerpt(item.text, item.limit), item.excerpt));
});

test('loads: the same values, and the same refusals in the same words', () => {
  const all = cases().loads;
  assert.ok(all.filter(c => c.error !== undefined).length > 500);
  each(all, item => {
    if (item.error !== undefined) {
      assert.throws(
        () => loads(item.text),
        (exc: unknown) => {
          assert.ok(exc instanceof JsonDecodeError, String(exc));
          assert.equal(exc.explanation, item.error);
          return true;
        }
      );
    } else {
      // Through JSON.stringify: Python's int 0 and float -0.0 are one number here.
      assert.equal(JSON.stringify(loads(item.text)), JSON.stringify(item.value));
    }
  });
});

test('HistoryRequest.fromWire: the same request and frame text, or the same refusal', () => {
  each(cases().history, item => {
    if (item.error !== undefined) {
      assert.equal(
        errorMessage(() => HistoryRequest.fromWire(item.value)),
        item.error
      );
      return;
    }
    const request = HistoryRequest.fromWire(item.value);
    assert.deepEqual(request.toWire(), item.wire);
    assert.equal(dumps(request.toFrameValue()), item.frame);
  });
});

function subscribedClient(subprotocol: string): ClientConnection {
  // As python_cases.py subscribed_client: welcomed, subscribed, confirmed, one row held.
  const conn = newClient(asSubprotocol(subprotocol));
  conn.receiveText('{"type":"welcome","sid":"sid-1"}', NOW);
  const identifier = conn.subscribe('telemetry', { topic: 'plant/+/+/env' });
  conn.receiveText(
    JSON.stringify({
      type: 'confirm_subscription',
      identifier,
      meta: { columns: 'plant/{site}/{device}/env', format: 'json' }
    }),
    NOW
  );
  conn.receiveText(
    JSON.stringify({
      identifier,
      batch: [[1, NOW, 'plant/lyon/pump1/env', { t: 0 }]],
      stream_id: 'telemetry',
      epoch: 'e1'
    }),
    NOW
  );
  conn.eventsReceived();
  conn.dataToSend();
  return conn;
}

test('odd and malformed server frames: the same events and frames as Python', () => {
  const frames = cases().frames;
  assert.ok(frames.length > 1000);
  each(frames, item => {
    const conn = subscribedClient(item.subprotocol);
    conn.receiveText(item.frame, NOW);
    assert.deepStrictEqual(conn.eventsReceived().map(toJson), item.events);
    assert.deepStrictEqual(conn.dataToSend(), item.sent);
  });
});

test('random conversations recorded from the Python client replay identically', () => {
  const scenarios = cases().scenarios;
  let compared = 0;
  each(scenarios, transcript => {
    const counts = replayClient(transcript);
    compared += counts.frames + counts.events;
  });
  console.log(`${scenarios.length} random conversations, ${compared} frames and events compared`);
});

test('tests/transcripts holds exactly the files the Python recorder writes', () => {
  const files = fs
    .readdirSync(path.join(ROOT, 'tests', 'transcripts'))
    .filter(name => name.endsWith('.json'))
    .sort();
  assert.deepEqual(files, cases().transcripts);
});

test('cases left out, where the mirror knowingly differs', () => {
  // Reported, not hidden: see python_cases.py for why each kind is left out.
  const skipped = cases().skipped;
  console.log(`left out: ${JSON.stringify(skipped)}`);
  for (const why of Object.keys(skipped)) {
    assert.ok(
      why.endsWith('an integral float literal') ||
        why.endsWith('an integer beyond 2**53') ||
        why.endsWith('nesting near the limit'),
      why
    );
  }
});
