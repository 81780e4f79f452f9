/**
 * JSON in and out, strict the way the Python codec is (jupyter_iotcable/protocol/codec.py).
 *
 * In: `JSON.parse` does the work, then the value is checked for what Python refuses and
 * JavaScript lets through: numbers a 64-bit float cannot hold (JSON.parse turns `1e400`
 * into Infinity), lone surrogates (`"\ud800"`) and absurd nesting. A refused text is
 * explained in the words of Python's `json` module ("Expecting value: line 1 column 1
 * (char 0)") by scanner.ts, since those words reach the user in `ServerError` events and
 * must match the Python client's.
 *
 * Out: compact JSON as Python's `json.dumps(separators=(",", ":"), ensure_ascii=False,
 * allow_nan=False)` writes it, so that a frame is the same text whichever client wrote
 * it (`{"since":1699996400.0}`, not `{"since":1699996400}`).
 */

import { MAX_FRAME_DEPTH } from './limits';
import { explainRefusal, MAX_NESTING } from './scanner';
import { isWellFormed, pyFloatRepr } from './text';

export { MAX_NESTING };

// What a decodable payload is, is defined once (limits.ts, generated from
// jupyter_iotcable/protocol/limits.py): the server writes no frame nested deeper than
// MAX_FRAME_DEPTH, holds no number beyond a double and no frame beyond MAX_FRAME_BYTES,
// so this codec refuses none of its frames as long as it decodes at least that deep.
if (MAX_NESTING < MAX_FRAME_DEPTH) {
  throw new Error(`MAX_NESTING ${MAX_NESTING} is below the frames' ${MAX_FRAME_DEPTH} levels`);
}

/** A decoded JSON value (read-only: frames are shared with the events made from them). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;

/** A decoded JSON object. */
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

/** `loads` refused a text; `explanation` says why, as `explain_decode_error` does. */
export class JsonDecodeError extends Error {
  readonly explanation: string;

  constructor(explanation: string) {
    super(explanation);
    this.name = 'JsonDecodeError';
    this.explanation = explanation;
  }
}

/** `dumps` cannot encode a value (Python raises TypeError or ValueError). */
export class JsonEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonEncodeError';
  }
}

/** A number to write as a Python float: `1699996400.0`, never `1699996400`. */
export class PyFloat {
  constructor(readonly value: number) {}
}

const LONE_SURROGATE = 'not valid UTF-8: it holds a lone surrogate';
// A \uD800-\uDFFF escape; only text holding one needs the slower check of every string.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** Decode one strict JSON text, or throw JsonDecodeError saying why, in Python's words. */
export function loads(text: string): JsonValue {
  if (!isWellFormed(text)) {
    throw new JsonDecodeError(LONE_SURROGATE);
  }
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (exc) {
    // Both refuse the same texts, so the scanner finds the error; the fallback is a
    // safety net (an engine limit, say), never expected.
    throw new JsonDecodeError(explainRefusal(text) ?? `not JSON: ${String(exc)}`);
  }
  const found = inspect(value, 0, SURROGATE_ESCAPE.test(text));
  if (found === 'refused') {
    throw new JsonDecodeError(explainRefusal(text) ?? 'nested too deeply');
  }
  if (found === 'lone surrogate') {
    throw new JsonDecodeError(LONE_SURROGATE);
  }
  return value;
}

type Finding = 'ok' | 'refused' | 'lone surrogate';

/**
 * Look for what JSON.parse accepts and Python refuses: a non-finite number or nesting
 * beyond MAX_NESTING ('refused': the scanner will say where), else a lone surrogate in a
 * string or key (reported after a successful parse, as Python re-encodes the value).
 */
function inspect(value: JsonValue, depth: number, strings: boolean): Finding {
  if (typeof value === 'number') {
    return Number.isFinite(value) ? 'ok' : 'refused';
  }
  if (typeof value === 'string') {
    return strings && !isWellFormed(value) ? 'lone surrogate' : 'ok';
  }
  if (value === null || typeof value !== 'object') {
    return 'ok';
  }
  if (depth >= MAX_NESTING) {
    return 'refused';
  }
  let result: Finding = 'ok';
  const items: readonly JsonValue[] = Array.isArray(value)
    ? (value as readonly JsonValue[])
    : Object.values(value);
  for (const item of items) {
    const found = inspect(item, depth + 1, strings);
    if (found === 'refused') {
      return found;
    }
    if (found === 'lone surrogate') {
      result = found;
    }
  }
  if (strings && result === 'ok' && !Array.isArray(value)) {
    for (const key of Object.keys(value)) {
      if (!isWellFormed(key)) {
        return 'lone surrogate';
      }
    }
  }
  return result;
}

// -- out --------------------------------------------------------------------------------------

/**
 * Encode `value` as Python's compact, strict `json.dumps` does.
 *
 * Accepts null, booleans, strings, numbers (integers as integers, others in Python's
 * float spelling), bigints, PyFloat, arrays, plain objects and Maps with string keys
 * (written in insertion order, as a Python dict is). Throws JsonEncodeError for what
 * Python would refuse: NaN and infinities, other objects, cycles; and for a lone
 * surrogate, which Python would only refuse later, at the socket.
 */
export function dumps(value: unknown): string {
  try {
    return encode(value, new Set());
  } catch (exc) {
    if (exc instanceof RangeError) {
      // The engine's stack ran out on absurd nesting (Python: RecursionError).
      throw new JsonEncodeError('maximum recursion depth exceeded while encoding a JSON object');
    }
    throw exc;
  }
}

function encodeString(text: string): string {
  if (!isWellFormed(text)) {
    throw new JsonEncodeError('a string holds a lone surrogate, which cannot be sent as UTF-8');
  }
  // On well-formed text JSON.stringify escapes exactly what Python's encoder escapes.
  return JSON.stringify(text);
}

function encodeNumber(value: number, asFloat: boolean): string {
  if (!Number.isFinite(value)) {
    throw new JsonEncodeError('Out of range float values are not JSON compliant');
  }
  return !asFloat && Number.isSafeInteger(value) ? String(value) : pyFloatRepr(value);
}

function typeName(value: unknown): string {
  if (value === null || value === undefined || typeof value !== 'object') {
    return String(typeof value);
  }
  return (value as object).constructor?.name ?? 'object';
}

function encode(value: unknown, active: Set<object>): string {
  if (value === null) {
    return 'null';
  }
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value, false);
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      throw new JsonEncodeError(`Object of type ${typeof value} is not JSON serializable`);
  }
  const object = value as object;
  if (object instanceof PyFloat) {
    return encodeNumber(object.value, true);
  }
  if (active.has(object)) {
    throw new JsonEncodeError('Circular reference detected');
  }
  active.add(object);
  try {
    if (Array.isArray(object)) {
      const items = object as readonly unknown[];
      const encoded: string[] = [];
      for (let i = 0; i < items.length; i++) {
        encoded.push(encode(items[i], active)); // a hole is undefined: refused
      }
      return `[${encoded.join(',')}]`;
    }
    let entries: Iterable<[unknown, unknown]>;
    if (object instanceof Map) {
      entries = object.entries();
    } else {
      const prototype: unknown = Object.getPrototypeOf(object);
      if (prototype !== Object.prototype && prototype !== null) {
        throw new JsonEncodeError(`Object of type ${typeName(object)} is not JSON serializable`);
      }
      entries = Object.entries(object);
    }
    const members: string[] = [];
    for (const [key, item] of entries) {
      if (typeof key !== 'string') {
        throw new JsonEncodeError(`keys must be str, not ${typeName(key)}`);
      }
      members.push(`${encodeString(key)}:${encode(item, active)}`);
    }
    return `{${members.join(',')}}`;
  } finally {
    active.delete(object);
  }
}
