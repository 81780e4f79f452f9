/**
 * The sidebar's wording of readings (src/readings.ts): topics shortened by the channel's
 * template or filters, payloads as `field = value` lines with times as times, and what
 * the publish form makes of the text a user typed.
 */

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { GapReported } from '../src/protocol';

import {
  clockText,
  fieldTime,
  gapsLine,
  gapText,
  numberText,
  payloadLines,
  publishInput,
  shortTopic,
  topicMatches,
  topicSuggestions
} from '../src/readings';

// Times of day below are local: pin the zone so that the expected texts hold anywhere.
process.env.TZ = 'UTC';

test('topics match filters as MQTT says', () => {
  assert.ok(topicMatches('plant/+/+/env', 'plant/lyon/pump1/env'));
  assert.ok(!topicMatches('plant/+/+/env', 'plant/lyon/pump1/cmd'));
  assert.ok(!topicMatches('plant/+/+/env', 'plant/lyon/env'));
  assert.ok(topicMatches('num/#', 'num/a/b'));
  assert.ok(topicMatches('num/#', 'num'));
  assert.ok(topicMatches('#', 'a'));
  assert.ok(!topicMatches('#', '$SYS/broker'));
  assert.ok(!topicMatches('+/broker', '$SYS/broker'));
  assert.ok(topicMatches('$SYS/#', '$SYS/broker'));
  assert.ok(topicMatches('a/b', 'a/b'));
  assert.ok(!topicMatches('a/b', 'a/b/c'));
});

test('a topic is shortened to the levels the template names, with their names', () => {
  assert.deepEqual(shortTopic('plant/lyon/pump1/env', 'plant/{site}/{device}/env', []), {
    text: 'lyon/pump1',
    columns: [
      ['site', 'lyon'],
      ['device', 'pump1']
    ]
  });
});

test('without a template, the wildcard levels of the matching filter are kept', () => {
  assert.equal(shortTopic('num/a/b', null, ['num/#']).text, 'a/b');
  assert.equal(shortTopic('plant/lyon/pump1/cmd', null, ['plant/+/+/cmd']).text, 'lyon/pump1');
  assert.deepEqual(shortTopic('plant/lyon/pump1/cmd', null, ['plant/+/+/cmd']).columns, []);
  // The second filter matches when the first does not.
  assert.equal(shortTopic('b/x', null, ['a/+', 'b/+']).text, 'x');
});

test('a topic that nothing shortens is shown whole', () => {
  // A literal filter leaves no level to tell readings apart.
  assert.equal(shortTopic('sensors/temp', null, ['sensors/temp']).text, 'sensors/temp');
  // A template that does not fit this topic falls back to the filters, then to the topic.
  assert.equal(shortTopic('x/y/z', 'plant/{site}/env', ['x/+/z']).text, 'y');
  assert.equal(shortTopic('x/y/z', 'plant/{site}/env', []).text, 'x/y/z');
  assert.equal(shortTopic('num', null, ['num/#']).text, 'num');
});

test('numbers are rounded for the eye, integers kept whole', () => {
  assert.equal(numberText(21.299999999999997), '21.3');
  assert.equal(numberText(42), '42');
  assert.equal(numberText(-0.000123456789), '-0.000123457');
  assert.equal(numberText(12345678901234), '12345678901234');
  assert.equal(numberText(1234567.891), '1234570');
});

test('times are recognized by name and range, epoch seconds, milliseconds or ISO', () => {
  const when = Date.UTC(2026, 0, 2, 12, 3, 4, 500);
  assert.equal(fieldTime('ts', when / 1000)?.getTime(), when);
  assert.equal(fieldTime('timestamp', when)?.getTime(), when);
  assert.equal(fieldTime('meta.created_at', '2026-01-02T12:03:04.500Z')?.getTime(), when);
  assert.equal(fieldTime('sampleTime', when / 1000)?.getTime(), when);
  // A time-like name with a value that is no time, and a time-like value without the name.
  assert.equal(fieldTime('t', 42), null);
  assert.equal(fieldTime('ts', 'soon'), null);
  assert.equal(fieldTime('seq', when / 1000), null);
  // The channel's time_field counts whatever its name.
  assert.equal(fieldTime('clock', when / 1000, 'clock')?.getTime(), when);
  assert.equal(clockText(new Date(when)), '12:03:04');
  assert.equal(clockText(new Date(when), true), '12:03:04.500');
});

test('a JSON object reads as field = value lines; times as times', () => {
  const ts = Date.UTC(2026, 0, 2, 12, 3, 4, 250) / 1000;
  const { lines, more } = payloadLines({
    temperature: 21.299999999999997,
    seq: 7,
    ok: true,
    note: null,
    ts,
    pos: { x: 1, y: 2.5 },
    tags: ['a', 'b']
  });
  assert.equal(more, 0);
  assert.deepEqual(
    lines.map(l => [l.key, l.text, l.kind]),
    [
      ['temperature', '21.3', 'number'],
      ['seq', '7', 'number'],
      ['ok', 'true', 'bool'],
      ['note', 'null', 'null'],
      ['ts', '12:03:04.250', 'time'],
      ['pos.x', '1', 'number'],
      ['pos.y', '2.5', 'number'],
      ['tags', '["a","b"]', 'json']
    ]
  );
  // The exact values are kept for the title.
  assert.equal(lines[0].title, '21.299999999999997');
  assert.equal(lines[4].title, `2026-01-02T12:03:04.250Z (${ts})`);
});

test('lines beyond the limit are counted, not shown; long values are cut', () => {
  const payload: { [k: string]: number } = {};
  for (let i = 0; i < 12; i++) {
    payload[`f${i}`] = i;
  }
  const { lines, more } = payloadLines(payload, { maxLines: 5 });
  assert.deepEqual(
    lines.map(l => l.key),
    ['f0', 'f1', 'f2', 'f3', 'f4']
  );
  assert.equal(more, 7);
  const long = 'x'.repeat(500);
  const [cut] = payloadLines({ text: long }).lines;
  assert.equal(cut.text.length, 80);
  assert.ok(cut.text.endsWith('…'));
  assert.equal(cut.title, long);
});

test("a number is followed by its field's unit; other values are not", () => {
  const units = { temperature: '°C', 'pos.x': 'm', status: 'x' };
  const { lines } = payloadLines(
    { temperature: 21.299999999999997, humidity: 45, pos: { x: 1.5 }, status: 'ok' },
    { units }
  );
  assert.deepEqual(
    lines.map(l => [l.key, l.text, l.title]),
    [
      ['temperature', '21.3 °C', '21.299999999999997 °C'],
      ['humidity', '45', '45'],
      ['pos.x', '1.5 m', '1.5 m'],
      ['status', 'ok', 'ok']
    ]
  );
  // A plain value has no field name to look a unit up by, unless the admin used `value`;
  // and an inherited name (toString) is no unit.
  assert.equal(payloadLines(21.5, { units: { value: 'V' } }).lines[0].text, '21.5 V');
  assert.equal(payloadLines({ toString: 1 }, { units: {} }).lines[0].text, '1');
});

test('a value that is not an object is one line named value', () => {
  assert.deepEqual(
    payloadLines(21.5).lines.map(l => [l.key, l.text]),
    [['value', '21.5']]
  );
  assert.deepEqual(
    payloadLines('23,4').lines.map(l => [l.key, l.text]),
    [['value', '23,4']]
  );
  assert.deepEqual(
    payloadLines([1, 2]).lines.map(l => [l.key, l.text]),
    [['value', '[1,2]']]
  );
  assert.deepEqual(
    payloadLines({}).lines.map(l => [l.key, l.text]),
    [['value', '{}']]
  );
  // Deep nesting stops flattening and shows the rest as JSON.
  assert.deepEqual(
    payloadLines({ a: { b: { c: { d: 1 } } } }).lines.map(l => [l.key, l.text]),
    [['a.b.c', '{"d":1}']]
  );
});

test('the publish form parses JSON for a JSON channel and says where it is wrong', () => {
  assert.deepEqual(publishInput('json', '{"setpoint": 25}'), {
    ok: true,
    payload: { setpoint: 25 }
  });
  assert.deepEqual(publishInput('json', '"text"'), { ok: true, payload: 'text' });
  assert.deepEqual(publishInput('json', '  '), { ok: false, reason: 'empty' });
  // V8's own words, with the position when it gives one (Node and Chromium share V8).
  const bad = publishInput('json', '{"setpoint": 25');
  assert.ok(!bad.ok && /after property value/.test(bad.reason));
  assert.equal(!bad.ok && bad.position, 15);
  const typo = publishInput('json', 'not json {');
  assert.ok(!typo.ok && /not valid JSON/.test(typo.reason));
});

test('other formats send the text as typed: the server checks it against the format', () => {
  assert.deepEqual(publishInput('number', ' 21.5 '), { ok: true, payload: ' 21.5 ' });
  assert.deepEqual(publishInput('number', ''), { ok: false, reason: 'empty' });
  assert.deepEqual(publishInput('text', 'hello {'), { ok: true, payload: 'hello {' });
  assert.deepEqual(publishInput('text', ''), { ok: true, payload: '' });
});

test('topic suggestions: seen topics a write filter accepts, then the filters', () => {
  assert.deepEqual(
    topicSuggestions(
      ['plant/+/+/cmd'],
      ['plant/lyon/pump2/cmd', 'plant/lyon/pump1/env', 'plant/lyon/pump2/cmd', 'plant/a/b/cmd']
    ),
    ['plant/lyon/pump2/cmd', 'plant/a/b/cmd', 'plant/+/+/cmd']
  );
  assert.deepEqual(topicSuggestions(['a/#', 'b'], []), ['a/#', 'b']);
  assert.deepEqual(topicSuggestions(['a/+'], ['a/1', 'a/2', 'a/3'], 2), ['a/1', 'a/2', 'a/+']);
});

/** JupyterLab's bundle substitutes %1, %2... (nullTranslator does the same). */
const TRANS = {
  __: (msgid: string, ...args: unknown[]): string =>
    msgid.replace(/%(\d+)/g, (_, n: string) => String(args[Number(n) - 1])),
  _n: (one: string, many: string, n: number, ...args: unknown[]): string =>
    (n === 1 ? one : many).replace(/%(\d+)/g, (_, i: string) => String([n, ...args][Number(i) - 1]))
};

test('each cause of a gap in words, lost continuity not called a restart', () => {
  const gap = (epochChanged: boolean, epoch: string | null, undecodable = false) =>
    new GapReported('i', 'telemetry', 'r', epochChanged, 6, null, epoch, null, undecodable);
  assert.equal(
    gapText(gap(true, 'e1.2'), TRANS),
    'The server lost its MQTT broker session: readings after offset 6 never reached it.'
  );
  assert.equal(
    gapText(gap(true, 'e2'), TRANS),
    'The server restarted: readings after offset 6 may be missing.'
  );
  assert.match(gapText(gap(false, 'e1', true), TRANS), /frame this browser cannot decode/);
  assert.equal(
    gapText(new GapReported('i', 'telemetry', 'r', false, 10, 100, 'e1'), TRANS),
    'Readings after offset 10 are missing: the server kept only offset 100 onwards.'
  );
  assert.equal(
    gapsLine(2, gap(true, 'e1.2'), TRANS),
    '2 gaps: The server lost its MQTT broker session: readings after offset 6 never reached it.'
  );
  assert.match(gapsLine(1, gap(true, 'e2'), TRANS), /^1 gap: The server restarted/);
});
