/**
 * The JSON codec: Python's compact, strict spelling out; Python's refusals in.
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { dumps, JsonDecodeError, JsonEncodeError, loads } from '../src/protocol';
import { PyFloat } from '../src/protocol/codec';

test("dumps writes Python's compact JSON", () => {
  assert.equal(
    dumps({ a: [1, 2.5, null, true], b: 'é\n"' }),
    '{"a":[1,2.5,null,true],"b":"é\\n\\""}'
  );
  assert.equal(dumps(new PyFloat(1699996400)), '1699996400.0');
  assert.equal(dumps(new PyFloat(1e-5)), '1e-05');
  assert.equal(dumps(1e-7), '1e-07', 'a non-integer is a float, spelled as Python does');
  assert.equal(dumps(12345678901234567890n), '12345678901234567890');
  assert.equal(
    dumps(
      new Map<string, unknown>([
        ['2', 1],
        ['a', 2],
        ['1', 3]
      ])
    ),
    '{"2":1,"a":2,"1":3}',
    'a Map keeps insertion order, as a Python dict does'
  );
  assert.equal(dumps(JSON.parse('{"__proto__":1}')), '{"__proto__":1}');
  assert.equal(dumps(Object.assign(Object.create(null) as object, { k: 'v' })), '{"k":"v"}');
});

test('dumps refuses what Python refuses', () => {
  const refused: [unknown, string][] = [
    [NaN, 'Out of range float values are not JSON compliant'],
    [[Infinity], 'Out of range float values are not JSON compliant'],
    [new PyFloat(-Infinity), 'Out of range float values are not JSON compliant'],
    [{ f: () => 1 }, 'Object of type function is not JSON serializable'],
    [[undefined], 'Object of type undefined is not JSON serializable'],
    [new Set([1]), 'Object of type Set is not JSON serializable'],
    [new Map([[1, 2]]), 'keys must be str, not number'],
    ['\ud800', 'a string holds a lone surrogate, which cannot be sent as UTF-8'],
    [{ 'k\udc00': 1 }, 'a string holds a lone surrogate, which cannot be sent as UTF-8']
  ];
  for (const [value, message] of refused) {
    assert.throws(() => dumps(value), new JsonEncodeError(message));
  }
  // eslint-disable-next-line no-sparse-arrays -- a hole must be refused, not written as ""
  assert.throws(() => dumps([1, , 2]), JsonEncodeError);
  const shared = { x: 1 };
  assert.equal(dumps([shared, shared]), '[{"x":1},{"x":1}]', 'shared is not circular');
  let deep: unknown = 1;
  for (let i = 0; i < 100000; i++) {
    deep = [deep];
  }
  assert.throws(() => dumps(deep), JsonEncodeError);
});

test('loads gives JSON.parse values, own "__proto__" members included', () => {
  const value = loads('{"__proto__":{"polluted":true},"a":[1,2.5e3,"\\ud83d\\ude00"]}');
  assert.deepEqual(Object.keys(value as object), ['__proto__', 'a']);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  assert.deepEqual((value as Record<string, unknown>)['a'], [1, 2500, '\ud83d\ude00']);
});

test("loads refuses with Python's explanation", () => {
  const refused: [string, string][] = [
    ['{"a":1e400}', 'not usable JSON: the number 1e400 does not fit a 64-bit float'],
    [
      `[${'1'.repeat(309)}0]`,
      `not usable JSON: the number ${'1'.repeat(17)}... does not fit a 64-bit float`
    ],
    ['[-Infinity]', 'not JSON: -Infinity is not valid JSON'],
    ['{"k":"\\udfff"}', 'not valid UTF-8: it holds a lone surrogate'],
    ['["\ud800"]', 'not valid UTF-8: it holds a lone surrogate'],
    ['{"a":1}x', 'not JSON: Extra data: line 1 column 8 (char 7)'],
    ['"\\ud83d\\uzzzz"', 'not JSON: Invalid \\uXXXX escape: line 1 column 9 (char 8)']
  ];
  for (const [text, explanation] of refused) {
    assert.throws(
      () => loads(text),
      (exc: unknown) => exc instanceof JsonDecodeError && exc.explanation === explanation,
      text
    );
  }
});
