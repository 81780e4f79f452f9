/**
 * How the sidebar words a reading, and how it reads what a user types to publish. Pure
 * (no DOM, no Lumino): the panel builds elements from what these return, and the
 * node:test tests check them directly.
 *
 * - A topic is shortened to the levels that tell readings apart: the channel's `columns`
 *   template names them (`plant/{site}/{device}/env` turns `plant/lyon/pump1/env` into
 *   `lyon/pump1`); without a template, the levels a filter's `+` and `#` matched.
 * - A payload becomes `field = value` lines: nested objects flattened with dots, numbers
 *   rounded for the eye (the exact value in the line's title) with the channel's unit for
 *   the field, and fields that hold a time
 *   (the channel's `time_field`, or a time-like name with an epoch or ISO value) shown as a
 *   time of day rather than 1.7e9.
 */

import { gapCause } from './protocol';
import type { GapReported, JsonObject, JsonValue } from './protocol';

/** What the wording needs of a TranslationBundle (kept structural: no DOM here). */
export interface IGapTranslator {
  __(msgid: string, ...args: unknown[]): string;
  _n(msgid: string, msgidPlural: string, n: number, ...args: unknown[]): string;
}

/**
 * A reported gap in a sentence, by its cause (the Python client's `GapCause`): lost
 * continuity (the server's broker lost its session: the readings never reached it), a
 * server restart, a frame this browser could not decode, or readings the server no longer
 * keeps. The server's own words are `gap.reason` (the panel's tooltip).
 */
export function gapText(gap: GapReported, trans: IGapTranslator): string {
  const after = gap.afterOffset !== null ? String(gap.afterOffset) : '?';
  switch (gapCause(gap)) {
    case 'continuity_lost':
      return trans.__(
        'The server lost its MQTT broker session: readings after offset %1 never reached it.',
        after
      );
    case 'server_restarted':
      return trans.__('The server restarted: readings after offset %1 may be missing.', after);
    case 'undecodable':
      return trans.__(
        'Readings after offset %1 came in a frame this browser cannot decode (an older or foreign server?).',
        after
      );
    default:
      return gap.availableFrom !== null
        ? trans.__(
            'Readings after offset %1 are missing: the server kept only offset %2 onwards.',
            after,
            String(gap.availableFrom)
          )
        : trans.__('Readings are missing: the server did not keep them.');
  }
}

/** "2 gaps: <the last one in words>", for the channel's gap line. */
export function gapsLine(count: number, last: GapReported, trans: IGapTranslator): string {
  return trans.__('%1: %2', trans._n('%1 gap', '%1 gaps', count), gapText(last, trans));
}

/** MQTT filter matching (`+` one level, a final `#` the rest, `$` topics only by name). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) {
    return false;
  }
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') {
      return i === f.length - 1;
    }
    if (i >= t.length) {
      return false;
    }
    if (f[i] !== '+' && f[i] !== t[i]) {
      return false;
    }
  }
  return f.length === t.length;
}

export interface IShortTopic {
  /** The levels that tell topics apart, joined by `/`; the whole topic when none do. */
  text: string;
  /** The template's named levels (`site` -> `lyon`), in template order. */
  columns: [string, string][];
}

/** The levels of `topic` under the wildcard levels of `pattern` (null: no match). */
function wildcardLevels(pattern: string, topic: string): IShortTopic | null {
  const p = pattern.split('/');
  const t = topic.split('/');
  const kept: string[] = [];
  const columns: [string, string][] = [];
  for (let i = 0; i < p.length; i++) {
    const level = p[i];
    if (level === '#' && i === p.length - 1) {
      kept.push(...t.slice(i));
      return { text: kept.join('/'), columns };
    }
    if (i >= t.length) {
      return null;
    }
    if (level.length >= 2 && level.startsWith('{') && level.endsWith('}')) {
      columns.push([level.slice(1, -1), t[i]]);
      kept.push(t[i]);
    } else if (level === '+') {
      kept.push(t[i]);
    } else if (level !== t[i]) {
      return null;
    }
  }
  return p.length === t.length ? { text: kept.join('/'), columns } : null;
}

/**
 * `topic` shortened by the channel's `columns` template, else by the first of its
 * `filters` that matches; the whole topic when neither leaves anything (a literal filter).
 */
export function shortTopic(
  topic: string,
  template: string | null | undefined,
  filters: readonly string[] = []
): IShortTopic {
  const patterns = template ? [template, ...filters] : filters;
  for (const pattern of patterns) {
    const short = wildcardLevels(pattern, topic);
    if (short && short.text) {
      return short;
    }
  }
  return { text: topic, columns: [] };
}

/** `12:03:04` (or `12:03:04.512` with `millis`), local time. */
export function clockText(date: Date, millis = false): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const text = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return millis ? `${text}.${pad(date.getMilliseconds(), 3)}` : text;
}

/** A number for the eye: integers as they are, others to 6 significant digits. */
export function numberText(value: number): string {
  if (!Number.isFinite(value) || Number.isInteger(value)) {
    return String(value);
  }
  return String(Number(value.toPrecision(6)));
}

/** Names that say "this is a time": ts, time, timestamp, created_at, sampleTime... */
const TIME_NAME = /^(ts|t|time|timestamp|datetime|date)$|(_at|_time|_ts|Time|At|Timestamp)$/;
// Epoch seconds from 2001 to 2100 (milliseconds: the same range times 1000). A field named
// `t` holding 42 stays a number: only a value in range is taken for a time.
const EPOCH_MIN = 1e9;
const EPOCH_MAX = 4102444800;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/;

/** The time `value` stands for when `key` names a time (null when it does not). */
export function fieldTime(key: string, value: JsonValue, timeField?: string | null): Date | null {
  const name = key.split('.').pop() ?? key;
  if (key !== timeField && !TIME_NAME.test(name)) {
    return null;
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (value >= EPOCH_MIN && value <= EPOCH_MAX) {
      return new Date(value * 1000);
    }
    if (value >= EPOCH_MIN * 1000 && value <= EPOCH_MAX * 1000) {
      return new Date(value);
    }
    return null;
  }
  if (typeof value === 'string' && ISO_DATE.test(value)) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  return null;
}

export type FieldKind = 'number' | 'string' | 'bool' | 'null' | 'time' | 'json';

/** One `field = value` line of a reading. */
export interface IFieldLine {
  key: string;
  /** The value as shown (rounded, a time of day, truncated). */
  text: string;
  /** The exact value, for the line's title. */
  title: string;
  kind: FieldKind;
}

export interface IPayloadLines {
  lines: IFieldLine[];
  /** Fields left out after `maxLines`. */
  more: number;
}

/** Longest value text shown on a line (the title holds the rest). */
const MAX_VALUE_CHARS = 80;
/** Nested objects are flattened this deep; deeper ones are shown as compact JSON. */
const MAX_DEPTH = 3;

function truncate(text: string, max = MAX_VALUE_CHARS): string {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function jsonText(value: JsonValue): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function line(
  key: string,
  value: JsonValue,
  timeField: string | null | undefined,
  unit: string | undefined
): IFieldLine {
  const time = fieldTime(key, value, timeField);
  if (time) {
    return {
      key,
      text: clockText(time, true),
      title: `${time.toISOString()} (${jsonText(value)})`,
      kind: 'time'
    };
  }
  if (typeof value === 'number') {
    const suffix = unit ? ` ${unit}` : '';
    return {
      key,
      text: numberText(value) + suffix,
      title: String(value) + suffix,
      kind: 'number'
    };
  }
  if (typeof value === 'string') {
    return { key, text: truncate(value), title: value, kind: 'string' };
  }
  if (typeof value === 'boolean') {
    return { key, text: String(value), title: String(value), kind: 'bool' };
  }
  if (value === null) {
    return { key, text: 'null', title: 'null', kind: 'null' };
  }
  const json = jsonText(value);
  return { key, text: truncate(json), title: json, kind: 'json' };
}

function isObject(value: JsonValue): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A payload as `field = value` lines, at most `maxLines` (the count of the others in
 * `more`). An object gives one line per field (nested objects as `a.b`); any other value
 * one line named `value`. A number whose field has a unit (the channel's `units`, by
 * field name or dotted path) is followed by it.
 */
export function payloadLines(
  payload: JsonValue,
  options: {
    maxLines?: number;
    timeField?: string | null;
    units?: { readonly [field: string]: string };
  } = {}
): IPayloadLines {
  const units = options.units ?? {};
  const maxLines = options.maxLines ?? 8;
  const lines: IFieldLine[] = [];
  let total = 0;
  const walk = (prefix: string, value: JsonValue, depth: number) => {
    if (isObject(value) && depth < MAX_DEPTH && Object.keys(value).length > 0) {
      for (const [key, inner] of Object.entries(value)) {
        walk(prefix ? `${prefix}.${key}` : key, inner, depth + 1);
      }
      return;
    }
    total += 1;
    if (lines.length < maxLines) {
      const key = prefix || 'value';
      const unit = Object.prototype.hasOwnProperty.call(units, key) ? units[key] : undefined;
      lines.push(line(key, value, options.timeField, unit));
    }
  };
  walk('', payload, isObject(payload) ? 0 : MAX_DEPTH);
  return { lines, more: total - lines.length };
}

export type PublishInput =
  { ok: true; payload: JsonValue } | { ok: false; reason: string; position?: number };

/**
 * What the publish form sends for the text a user typed, in the channel's `format`: a
 * JSON channel takes a JSON value (parsed here, so a typo is shown before anything is
 * sent); the others take the text itself, which the server checks against the format
 * (a `number` channel decodes it with the channel's own decoder).
 */
export function publishInput(format: string, text: string): PublishInput {
  if (format === 'json') {
    if (!text.trim()) {
      return { ok: false, reason: 'empty' };
    }
    try {
      return { ok: true, payload: JSON.parse(text) as JsonValue };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const found = /position (\d+)/.exec(message);
      return found
        ? { ok: false, reason: message, position: Number(found[1]) }
        : { ok: false, reason: message };
    }
  }
  if (format === 'number' && !text.trim()) {
    return { ok: false, reason: 'empty' };
  }
  return { ok: true, payload: text };
}

/**
 * Topics to offer in the publish form: those seen on the channel that a write filter
 * accepts (newest first, no repeats), then the write filters themselves, for a user to
 * fill in the wildcard levels.
 */
export function topicSuggestions(
  writeFilters: readonly string[],
  seenNewestFirst: readonly string[],
  limit = 20
): string[] {
  const result: string[] = [];
  for (const topic of seenNewestFirst) {
    if (
      result.length < limit &&
      !result.includes(topic) &&
      writeFilters.some(f => topicMatches(f, topic))
    ) {
      result.push(topic);
    }
  }
  for (const filter of writeFilters) {
    if (!result.includes(filter)) {
      result.push(filter);
    }
  }
  return result;
}
