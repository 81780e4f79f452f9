/**
 * Identifiers: byte for byte what Python's make_identifier writes (the expected texts
 * below were printed by the project's Python), and the same refusals.
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ChannelRef,
  ErrorCode,
  LocalProtocolError,
  makeIdentifier,
  MAX_CHANNEL_LENGTH,
  parseIdentifier,
  RemoteProtocolError
} from '../src/protocol';

// [channel, params, make_identifier(channel, **params)] from
// .venv/bin/python -c 'from jupyter_iotcable.protocol import make_identifier; ...'
const FROM_PYTHON: [string, Record<string, string>, string][] = [
  ['telemetry', {}, '{"channel":"telemetry"}'],
  ['telemetry', { topic: 'plant/+/+/env' }, '{"channel":"telemetry","topic":"plant/+/+/env"}'],
  [
    't\u00e9l\u00e9m\u00e9trie',
    { topic: 'usine/\u00e9/\ud83d\ude00/#' },
    '{"channel":"t\u00e9l\u00e9m\u00e9trie","topic":"usine/\u00e9/\ud83d\ude00/#"}'
  ],
  ['t', { b: '1', a: '2' }, '{"channel":"t","b":"1","a":"2"}'],
  [
    'q"b\\s',
    { k: 'line\nbreak\ttab\u0001\u007f' },
    '{"channel":"q\\"b\\\\s","k":"line\\nbreak\\ttab\\u0001\u007f"}'
  ],
  ['sep\u2028', { nbsp: '\u00a0' }, '{"channel":"sep\u2028","nbsp":"\u00a0"}']
];

test('makeIdentifier writes what Python writes, byte for byte', () => {
  for (const [channel, params, expected] of FROM_PYTHON) {
    const identifier = makeIdentifier(channel, params);
    assert.equal(identifier, expected);
    assert.deepEqual(Buffer.from(identifier, 'utf8'), Buffer.from(expected, 'utf8'));
  }
});

test('params keep their order, integer-like names included (a Map)', () => {
  // JSON.stringify({channel, "2": ..}) would write "2" first; Python keeps the order.
  assert.equal(
    makeIdentifier(
      't',
      new Map([
        ['2', 'x'],
        ['topic', 'a']
      ])
    ),
    '{"channel":"t","2":"x","topic":"a"}'
  );
  assert.equal(
    makeIdentifier('t', { __proto__: 'p' } as unknown as Record<string, string>),
    '{"channel":"t"}',
    "an object literal's __proto__ is its prototype, not a param"
  );
  assert.equal(
    makeIdentifier('t', new Map([['__proto__', 'p']])),
    '{"channel":"t","__proto__":"p"}'
  );
});

test('the channel is 1 to 200 characters, counted as Python counts them', () => {
  assert.equal(makeIdentifier('x'.repeat(MAX_CHANNEL_LENGTH)).length, MAX_CHANNEL_LENGTH + 14);
  // 200 emoji are 400 UTF-16 units but 200 characters for Python.
  makeIdentifier('\ud83d\ude00'.repeat(200));
  assert.throws(
    () => makeIdentifier('\ud83d\ude00'.repeat(201)),
    new LocalProtocolError('channel must be 1 to 200 characters, got 201')
  );
  assert.throws(
    () => makeIdentifier(''),
    new LocalProtocolError('channel must be 1 to 200 characters, got 0')
  );
});

test('lone surrogates are refused now, not at the socket', () => {
  assert.throws(
    () => makeIdentifier('ab\ud800'),
    new LocalProtocolError(
      'channel "ab\\ud800" holds a lone surrogate (\\ud800 at character 2), which ' +
        'cannot be sent as UTF-8; pass valid Unicode text'
    )
  );
  assert.throws(
    () => makeIdentifier('ok', { topic: '\ud83d\ude00x\udc00' }),
    new LocalProtocolError(
      'param "topic" ("\ud83d\ude00x\\udc00") holds a lone surrogate (\\udc00 at ' +
        'character 2), which cannot be sent as UTF-8; pass valid Unicode text'
    )
  );
  assert.throws(
    () => makeIdentifier('ok', { 'k\ud800': 'v' }),
    /param name "k\\ud800" holds a lone surrogate/
  );
});

test('params cannot name the channel again, and must be strings', () => {
  assert.throws(() => makeIdentifier('t', { channel: 'x' }), LocalProtocolError);
  assert.throws(
    () => makeIdentifier('t', { n: 1 } as unknown as Record<string, string>),
    new LocalProtocolError('param "n" must be a string, got 1')
  );
});

test('parseIdentifier reads channel and params back', () => {
  const ref = parseIdentifier('{"channel":"telemetry","topic":"plant/+/+/env"}');
  assert.ok(ref instanceof ChannelRef);
  assert.equal(ref.channel, 'telemetry');
  assert.equal(ref.topic, 'plant/+/+/env');
  assert.deepEqual([...ref.params], [['topic', 'plant/+/+/env']]);
  assert.equal(parseIdentifier('{"channel":"c"}').topic, null);
});

test('parseIdentifier refuses what Python refuses, with bad_identifier', () => {
  const refusals: [string, string][] = [
    [
      '{"chanel":"telemetry"}',
      'identifier needs a "channel" string of 1 to 200 characters, got null'
    ],
    [
      '[1]',
      'identifier must be a JSON object string like ' +
        '{"channel":"telemetry","topic":"plant/+/+/env"}, got an array'
    ],
    [
      'nope',
      'identifier must be a JSON object string like ' +
        '{"channel":"telemetry","topic":"plant/+/+/env"}, got nope ' +
        '(not JSON: Expecting value: line 1 column 1 (char 0))'
    ],
    ['{"channel":"c","topic":7}', 'identifier param "topic" must be a string, got 7'],
    [
      `{"channel":"${'x'.repeat(201)}"}`,
      'identifier needs a "channel" string of 1 to 200 characters, got the string ' +
        `"${'x'.repeat(57)}..."`
    ]
  ];
  for (const [identifier, message] of refusals) {
    assert.throws(
      () => parseIdentifier(identifier),
      (exc: unknown) => {
        assert.ok(exc instanceof RemoteProtocolError);
        assert.equal(exc.code, ErrorCode.BAD_IDENTIFIER);
        assert.equal(exc.message, message);
        return true;
      }
    );
  }
});
