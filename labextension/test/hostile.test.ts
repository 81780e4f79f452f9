/**
 * Hostile device payloads, differentially: hostile_cases.py publishes poison payloads
 * (numbers beyond a double, nesting past the limit, lone surrogates, invalid UTF-8,
 * readings over max_reading_bytes) among good ones through the server's own layers, and
 * records the frames one subscriber got, live and as a history answer, with the rows the
 * Python client read from them. The TypeScript client must read the same rows from the
 * same frames: every reading once, the poison ones flagged, no frame refused.
 *
 * The Python interpreter is $IOTCABLE_PYTHON, else the repository's .venv.
 */

import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MAX_NESTING } from '../src/protocol';
import { FRAME_DEPTH, MAX_DEPTH, MAX_FRAME_DEPTH } from '../src/protocol/limits';
import { asSubprotocol, newClient, NOW, repoRoot } from './replay';

interface Run {
  subprotocol: string;
  path: string;
  frames: string[];
  rows: [number, string, string, string | null][];
  names: string[];
  poison: boolean[];
}

interface Cases {
  runs: Run[];
  max_depth: number;
}

let cached: Cases | null = null;

function cases(): Cases {
  if (cached !== null) {
    return cached;
  }
  const root = repoRoot();
  const python = process.env['IOTCABLE_PYTHON'] ?? path.join(root, '.venv', 'bin', 'python');
  assert.ok(fs.existsSync(python), `no Python at ${python}: run bash .ci/setup`);
  const script = path.join(root, 'labextension', 'test', 'hostile_cases.py');
  const out = execFileSync(python, [script], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024
  });
  cached = JSON.parse(out) as Cases;
  return cached;
}

test('the limits are the Python ones, and the codec decodes every frame within them', () => {
  const { max_depth } = cases();
  assert.equal(MAX_DEPTH, max_depth);
  assert.equal(MAX_FRAME_DEPTH, MAX_DEPTH + FRAME_DEPTH);
  assert.ok(MAX_NESTING >= MAX_FRAME_DEPTH, `MAX_NESTING ${MAX_NESTING} < ${MAX_FRAME_DEPTH}`);
});

test('poison payloads among good ones: the same rows as the Python client', () => {
  const { runs } = cases();
  assert.equal(runs.length, 4);
  for (const run of runs) {
    const conn = newClient(asSubprotocol(run.subprotocol));
    conn.receiveText('{"type":"welcome","sid":"s"}', NOW);
    const identifier = conn.subscribe('telemetry');
    conn.receiveText(JSON.stringify({ type: 'confirm_subscription', identifier }), NOW);
    conn.eventsReceived();
    const rows: [number, string, unknown, string | null][] = [];
    for (const frame of run.frames) {
      conn.receiveText(frame, NOW);
      for (const event of conn.eventsReceived()) {
        assert.equal(event.kind, 'RowsReceived', `${run.path}: ${JSON.stringify(event)}`);
        if (event.kind === 'RowsReceived') {
          for (const [offset, , topic, payload, error] of event.rows) {
            rows.push([offset, topic, payload, error]);
          }
        }
      }
    }
    const where = `${run.subprotocol} ${run.path}`;
    assert.equal(rows.length, run.rows.length, `${where}: row count`);
    rows.forEach((row, i) => {
      const [offset, topic, payload, error] = run.rows[i];
      const name = `${where}: ${run.names[i]}`;
      assert.equal(row[0], offset, name);
      assert.equal(row[1], topic, name);
      // Python's payload as JSON.parse reads it (integers past 2**53 become doubles).
      assert.deepStrictEqual(row[2], JSON.parse(payload), name);
      assert.equal(row[3], error, name);
      assert.equal(row[3] !== null, run.poison[i], name);
    });
  }
});
