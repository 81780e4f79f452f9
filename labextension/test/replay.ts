/**
 * Transcript replay for the TypeScript client machine: a port of
 * tests/core/transcripts.py (`to_json`, `apply_client`, `replay_client`), so that the
 * recorded conversations check this machine exactly as they check the Python one.
 */

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  Backoff,
  ClientConnection,
  HistoryRequest,
  StreamPosition,
  Subprotocol
} from '../src/protocol';
import type { ClientEvent } from '../src/protocol';

/** The client side runs at this time throughout (transcripts.py NOW). */
export const NOW = 1_700_000_000.0;

/** A recorded step; see the format in tests/core/transcripts.py. */
export interface Step {
  from?: 'client' | 'server';
  frame?: string;
  foreign?: boolean;
  client_does?: string;
  server_does?: string;
  args?: Record<string, unknown>;
  client_event?: unknown;
  server_event?: unknown;
  reconnect?: { sid: string };
}

export interface Transcript {
  name: string;
  subprotocol: string;
  sid: string;
  description: string;
  steps: Step[];
}

/** The repository root: the nearest ancestor holding tests/transcripts. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'tests', 'transcripts'))) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`no tests/transcripts above ${__dirname}`);
    }
    dir = parent;
  }
}

/** A deterministic uniform source in [0, 1) (mulberry32), for Backoff and fuzzing. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function asSubprotocol(value: string): Subprotocol {
  const known: readonly string[] = Object.values(Subprotocol);
  assert.ok(known.includes(value), `unknown subprotocol ${value}`);
  return value as Subprotocol;
}

// Each event's fields in Python's dataclass order: [TypeScript name, Python name].
const FIELDS: { [kind: string]: ReadonlyArray<readonly [string, string]> } = {
  Welcomed: [
    ['sid', 'sid'],
    ['restored', 'restored'],
    ['restoredIds', 'restored_ids']
  ],
  SubscriptionConfirmed: [
    ['identifier', 'identifier'],
    ['meta', 'meta']
  ],
  SubscriptionRejected: [
    ['identifier', 'identifier'],
    ['reason', 'reason']
  ],
  RowsReceived: [
    ['identifier', 'identifier'],
    ['streamId', 'stream_id'],
    ['epoch', 'epoch'],
    ['rows', 'rows'],
    ['dropped', 'dropped']
  ],
  Transmission: [
    ['identifier', 'identifier'],
    ['message', 'message']
  ],
  HistoryConfirmed: [['identifier', 'identifier']],
  GapReported: [
    ['identifier', 'identifier'],
    ['streamId', 'stream_id'],
    ['reason', 'reason'],
    ['epochChanged', 'epoch_changed'],
    ['afterOffset', 'after_offset'],
    ['availableFrom', 'available_from'],
    ['epoch', 'epoch'],
    ['since', 'since'],
    ['undecodable', 'undecodable']
  ],
  Disconnected: [
    ['reason', 'reason'],
    ['reconnect', 'reconnect']
  ],
  ServerError: [
    ['code', 'code'],
    ['message', 'message']
  ],
  BrokerStatus: [
    ['state', 'state'],
    ['detail', 'detail']
  ]
};

/** A plain copy of a JSON-like value (Maps become objects, frozen arrays plain ones). */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(plain);
  }
  if (value instanceof Map) {
    return Object.fromEntries([...value].map(([k, v]) => [k, plain(v)]));
  }
  if (value instanceof StreamPosition) {
    return { epoch: value.epoch, offset: value.offset };
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      Object.defineProperty(out, key, {
        value: plain(item),
        enumerable: true,
        writable: true,
        configurable: true
      });
    }
    return out;
  }
  return value;
}

/**
 * An event as the Python recorder writes it: `{"event": CLASS, field: value...}` with
 * Python's field names. Fails if the event has a field Python's does not, or lacks one.
 */
export function toJson(event: ClientEvent): Record<string, unknown> {
  const fields = FIELDS[event.kind];
  assert.ok(fields, `no Python counterpart for event ${event.kind}`);
  assert.deepEqual(
    Object.keys(event).sort(),
    ['kind', ...fields.map(([ts]) => ts)].sort(),
    `${event.kind} has other fields than Python's`
  );
  const out: Record<string, unknown> = { event: event.kind };
  const record = event as unknown as Record<string, unknown>;
  for (const [ts, py] of fields) {
    out[py] = plain(record[ts]);
  }
  return out;
}

function stringArg(args: Record<string, unknown>, key: string): string {
  const value = args[key];
  assert.equal(typeof value, 'string', `argument ${key} must be a string`);
  return value as string;
}

const ARGS: { [method: string]: readonly string[] } = {
  subscribe: ['channel', 'params', 'history'],
  unsubscribe: ['identifier'],
  perform: ['identifier', 'action', 'data'],
  request_history: ['identifier', 'since']
};

/** Perform one `client_does` step (apply_client). */
export function applyClient(
  conn: ClientConnection,
  method: string,
  args: Record<string, unknown>
): void {
  const allowed = ARGS[method];
  assert.ok(allowed, `client_does "${method}" has no TypeScript counterpart`);
  for (const key of Object.keys(args)) {
    assert.ok(allowed.includes(key), `client_does "${method}": unexpected argument ${key}`);
  }
  switch (method) {
    case 'subscribe': {
      const history = args['history'];
      conn.subscribe(
        stringArg(args, 'channel'),
        (args['params'] ?? {}) as Record<string, string>,
        history !== undefined && history !== null ? HistoryRequest.fromWire(history) : null
      );
      break;
    }
    case 'unsubscribe':
      conn.unsubscribe(stringArg(args, 'identifier'));
      break;
    case 'perform':
      conn.perform(
        stringArg(args, 'identifier'),
        stringArg(args, 'action'),
        args['data'] as Record<string, unknown>
      );
      break;
    case 'request_history':
      conn.requestHistory(stringArg(args, 'identifier'), {
        since: args['since'] as number | undefined
      });
      break;
  }
}

export class ReplayError extends Error {}

function expect(queue: unknown[], recorded: unknown, index: number, what: string): void {
  if (queue.length === 0) {
    throw new ReplayError(
      `step ${index}: recorded ${what} ${JSON.stringify(recorded)}, but none was produced`
    );
  }
  const produced = queue.shift();
  try {
    assert.deepStrictEqual(produced, recorded);
  } catch {
    throw new ReplayError(
      `step ${index}: recorded ${what}\n  ${JSON.stringify(recorded)}\n` +
        `produced\n  ${JSON.stringify(produced)}`
    );
  }
}

function finish(frames: unknown[], events: unknown[]): void {
  if (frames.length > 0 || events.length > 0) {
    throw new ReplayError(
      `produced more than recorded: frames ${JSON.stringify(frames)}, ` +
        `events ${JSON.stringify(events)}`
    );
  }
}

/** A client as transcripts.py's new_client makes it: opened at NOW. */
export function newClient(subprotocol: Subprotocol): ClientConnection {
  const conn = new ClientConnection({ subprotocol, backoff: new Backoff({ random: seeded(0) }) });
  conn.connectionOpened(NOW);
  return conn;
}

/**
 * Drive a ClientConnection through a transcript; throw ReplayError on any difference.
 * Returns how many frames and events were compared.
 */
export function replayClient(transcript: Transcript): { frames: number; events: number } {
  // One machine for the whole transcript: it outlives its sockets, as in Python.
  const conn = newClient(asSubprotocol(transcript.subprotocol));
  const frames: string[] = [];
  const events: unknown[] = [];
  const compared = { frames: 0, events: 0 };
  transcript.steps.forEach((step, index) => {
    if (step.reconnect !== undefined) {
      finish(frames, events);
      conn.connectionLost(NOW);
      conn.connectionOpened(NOW);
    } else if (step.client_does !== undefined) {
      applyClient(conn, step.client_does, step.args ?? {});
    } else if (step.from === 'server') {
      conn.receiveText(step.frame as string, NOW);
    } else if (step.from === 'client' && !step.foreign) {
      frames.push(...conn.dataToSend());
      expect(frames, step.frame, index, 'client frame');
      compared.frames++;
    } else if (step.client_event !== undefined) {
      events.push(...conn.eventsReceived().map(toJson));
      expect(events, step.client_event, index, 'client event');
      compared.events++;
    }
    frames.push(...conn.dataToSend());
    events.push(...conn.eventsReceived().map(toJson));
  });
  finish(frames, events);
  return compared;
}
