/**
 * Every recorded conversation in tests/transcripts, replayed against the TypeScript
 * client machine exactly as tests/core/transcripts.py replay_client replays it against
 * the Python one: the client's frames byte for byte, its events field by field.
 */

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { Subprotocol } from '../src/protocol';
import { replayClient, repoRoot } from './replay';
import type { Transcript } from './replay';

const DIRECTORY = path.join(repoRoot(), 'tests', 'transcripts');
const FILES = fs
  .readdirSync(DIRECTORY)
  .filter(name => name.endsWith('.json'))
  .sort();

const replayed = new Map<string, { frames: number; events: number }>();

describe('transcripts', () => {
  for (const file of FILES) {
    test(file, () => {
      const transcript = JSON.parse(
        fs.readFileSync(path.join(DIRECTORY, file), 'utf8')
      ) as Transcript;
      assert.equal(file, `${transcript.name}.${transcript.subprotocol}.json`);
      const compared = replayClient(transcript);
      // A transcript that compares nothing would pass without testing anything.
      assert.ok(compared.events > 0, `${file} holds no client event`);
      replayed.set(file, compared);
    });
  }

  after(() => {
    const frames = [...replayed.values()].reduce((sum, c) => sum + c.frames, 0);
    const events = [...replayed.values()].reduce((sum, c) => sum + c.events, 0);
    console.log(
      `replayed ${replayed.size} of ${FILES.length} transcripts ` +
        `(${frames} client frames and ${events} client events compared)`
    );
  });
});

test('every transcript file was replayed, in all three subprotocols', () => {
  // Runs after the describe block above (node:test runs top-level tests in order).
  assert.ok(FILES.length > 0, `no transcript in ${DIRECTORY}`);
  const missing = FILES.filter(file => !replayed.has(file));
  assert.deepEqual(missing, [], 'transcripts not replayed (or failed)');
  const subprotocols = new Set(FILES.map(file => file.split('.').slice(-2)[0]));
  assert.deepEqual([...subprotocols].sort(), Object.values(Subprotocol).sort());
});
