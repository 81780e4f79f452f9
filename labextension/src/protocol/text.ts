/**
 * Python's spellings of numbers and strings, for messages and frames that must read
 * exactly as the Python core writes them.
 *
 * The Python machines count text in code points (`len(str)`) and print floats with
 * `repr` ("1700000000.0", "1e-05"); JavaScript counts UTF-16 code units and prints
 * "1700000000" and "0.00001". Frames and error messages are compared byte for byte
 * with the Python recordings, so the mirror spells them the Python way.
 */

const HIGH_FIRST = 0xd800;
const HIGH_LAST = 0xdbff;
const LOW_FIRST = 0xdc00;
const LOW_LAST = 0xdfff;

function isHigh(unit: number): boolean {
  return unit >= HIGH_FIRST && unit <= HIGH_LAST;
}

function isLow(unit: number): boolean {
  return unit >= LOW_FIRST && unit <= LOW_LAST;
}

/** The index, in code points, of the first lone surrogate in `text`, else -1. */
export function loneSurrogateAt(text: string): number {
  let points = 0;
  for (let i = 0; i < text.length; i++, points++) {
    const unit = text.charCodeAt(i);
    if (isHigh(unit)) {
      if (i + 1 < text.length && isLow(text.charCodeAt(i + 1))) {
        i++; // a pair: one code point
        continue;
      }
      return points;
    }
    if (isLow(unit)) {
      return points;
    }
  }
  return -1;
}

// Engines since 2023 have String.prototype.isWellFormed, much faster than a loop.
type MaybeWellFormed = { isWellFormed?: () => boolean };

/** True when `text` holds no lone surrogate (it can be sent as UTF-8). */
export function isWellFormed(text: string): boolean {
  const native = (text as unknown as MaybeWellFormed).isWellFormed;
  return native !== undefined ? native.call(text) : loneSurrogateAt(text) === -1;
}

/** Python's `len()` of a string: code points, a lone surrogate counting as one. */
export function codePointLength(text: string): number {
  let length = text.length;
  for (let i = 0; i + 1 < text.length; i++) {
    if (isHigh(text.charCodeAt(i)) && isLow(text.charCodeAt(i + 1))) {
      length--;
      i++;
    }
  }
  return length;
}

/** Python's `repr(float)`: shortest round-trip digits, fixed between 1e-4 and 1e16. */
export function pyFloatRepr(value: number): string {
  if (Number.isNaN(value)) {
    return 'nan';
  }
  if (!Number.isFinite(value)) {
    return value > 0 ? 'inf' : '-inf';
  }
  if (value === 0) {
    return Object.is(value, -0) ? '-0.0' : '0.0';
  }
  const sign = value < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that round-trip, the
  // same ones Python's repr picks (both choose the closest when several are shortest).
  const [mantissa, exponentText] = Math.abs(value).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= digits.length - 1) {
      return `${sign}${digits}${'0'.repeat(exponent - digits.length + 1)}.0`;
    }
    if (exponent >= 0) {
      return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
    }
    return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  }
  const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const magnitude = Math.abs(exponent);
  const padded = magnitude < 10 ? `0${magnitude}` : `${magnitude}`;
  return `${sign}${head}e${exponent < 0 ? '-' : '+'}${padded}`;
}

/**
 * A JSON number as Python would print the value it decoded to.
 *
 * JSON.parse forgets whether "1" or "1.0" was written; a number that a double holds
 * exactly as an integer is taken for a Python int (the server writes offsets and counts
 * as integer literals), anything else for a float.
 */
export function pyNumberRepr(value: number): string {
  return Number.isSafeInteger(value) ? String(value) : pyFloatRepr(value);
}

/**
 * Python's `repr(str)`, used in messages of errors raised to our own callers.
 *
 * Exact for ASCII and common text; for other non-printable characters it escapes the
 * general categories Python's `str.isprintable` refuses, as this engine's Unicode
 * tables know them.
 */
export function pyStrRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const char of text) {
    const point = char.codePointAt(0) ?? 0;
    if (char === '\\' || char === quote) {
      out += `\\${char}`;
    } else if (char === '\t') {
      out += '\\t';
    } else if (char === '\n') {
      out += '\\n';
    } else if (char === '\r') {
      out += '\\r';
    } else if (char !== ' ' && NOT_PRINTABLE.test(char)) {
      const hex = point.toString(16);
      if (point < 0x100) {
        out += `\\x${hex.padStart(2, '0')}`;
      } else if (point < 0x10000) {
        out += `\\u${hex.padStart(4, '0')}`;
      } else {
        out += `\\U${hex.padStart(8, '0')}`;
      }
    } else {
      out += char;
    }
  }
  return out + quote;
}

const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/** Python's `str(int)` of a number known to be an integer: all its digits. */
export function pyIntStr(value: number): string {
  return Number.isSafeInteger(value) ? String(value) : BigInt(value).toString();
}
