/**
 * Why Python's JSON codec refuses a text, in its words: a scanner that follows CPython
 * 3.11's `_json.c` step by step (scan_once_unicode, scanstring_unicode, _parse_object,
 * _parse_array, _match_number_unicode) plus the range checks of codec.py's parse_int and
 * parse_float hooks. It only explains: values come from JSON.parse (see codec.ts).
 */

import { codePointLength } from './text';

/**
 * Python's recursion limit (1000 frames, minus the caller's stack) refuses nesting
 * around 950 deep; the mirror refuses beyond 900, a depth no real frame comes near.
 */
export const MAX_NESTING = 900;

class Refusal {
  constructor(readonly explanation: string) {}
}

/** CPython raises StopIteration(idx) where no value starts; decode() says "Expecting value". */
class NoValue {
  constructor(readonly index: number) {}
}

/**
 * Why Python's codec refuses `text` (known to hold no raw lone surrogate): the first
 * error its scanner meets, in its words and with its positions (in code points); null
 * when the scanner accepts the text.
 */
export function explainRefusal(text: string): string | null {
  const scanner = new PythonScanner(text);
  try {
    scanner.decode();
  } catch (exc) {
    if (exc instanceof Refusal) {
      return exc.explanation;
    }
    throw exc;
  }
  return null;
}

function isDigit(unit: number): boolean {
  return unit >= 0x30 && unit <= 0x39;
}

function isHex(unit: number): boolean {
  return isDigit(unit) || (unit >= 0x41 && unit <= 0x46) || (unit >= 0x61 && unit <= 0x66);
}

function hexValue(unit: number): number {
  return isDigit(unit) ? unit - 0x30 : (unit | 0x20) - 0x61 + 10;
}

function isWhitespace(unit: number): boolean {
  return unit === 0x20 || unit === 0x09 || unit === 0x0a || unit === 0x0d;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SIMPLE_ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
// Integer literals this short are below 1e308 in magnitude (codec.py's _SURELY_FLOAT_SIZED).
const SURELY_FLOAT_SIZED = 308;

/**
 * The checks of CPython 3.11's `_json.c` scanner (scan_once_unicode, scanstring_unicode,
 * _parse_object/_parse_array, _match_number_unicode) plus codec.py's hooks, on UTF-16
 * text: the characters it tests are all ASCII, so indexes differ only in the messages,
 * which convert them to code points.
 */
class PythonScanner {
  private readonly end: number;

  constructor(private readonly s: string) {
    this.end = s.length;
  }

  decode(): void {
    let idx = this.skipWhitespace(0);
    try {
      idx = this.scanOnce(idx, 0);
    } catch (exc) {
      if (exc instanceof NoValue) {
        throw this.error('Expecting value', exc.index);
      }
      throw exc;
    }
    idx = this.skipWhitespace(idx);
    if (idx !== this.end) {
      throw this.error('Extra data', idx);
    }
  }

  private at(idx: number): number {
    return this.s.charCodeAt(idx); // NaN past the end: equal to nothing
  }

  private skipWhitespace(idx: number): number {
    while (idx < this.end && isWhitespace(this.at(idx))) {
      idx++;
    }
    return idx;
  }

  /** JSONDecodeError's text: "MSG: line L column C (char P)", positions in code points. */
  private error(message: string, pos: number): Refusal {
    const before = this.s.slice(0, pos);
    const point = codePointLength(before);
    const newline = before.lastIndexOf('\n');
    const line = before.split('\n').length;
    const column = newline === -1 ? point + 1 : point - codePointLength(before.slice(0, newline));
    return new Refusal(`not JSON: ${message}: line ${line} column ${column} (char ${point})`);
  }

  private matches(idx: number, word: string): boolean {
    return idx + word.length <= this.end && this.s.startsWith(word, idx);
  }

  private scanOnce(idx: number, depth: number): number {
    if (idx >= this.end) {
      throw new NoValue(idx);
    }
    switch (this.s[idx]) {
      case '"':
        return this.scanString(idx + 1);
      case '{':
        return this.parseObject(idx + 1, this.enter(depth));
      case '[':
        return this.parseArray(idx + 1, this.enter(depth));
      case 'n':
        if (this.matches(idx, 'null')) {
          return idx + 4;
        }
        break;
      case 't':
        if (this.matches(idx, 'true')) {
          return idx + 4;
        }
        break;
      case 'f':
        if (this.matches(idx, 'false')) {
          return idx + 5;
        }
        break;
      case 'N':
        if (this.matches(idx, 'NaN')) {
          throw new Refusal('not JSON: NaN is not valid JSON');
        }
        break;
      case 'I':
        if (this.matches(idx, 'Infinity')) {
          throw new Refusal('not JSON: Infinity is not valid JSON');
        }
        break;
      case '-':
        if (this.matches(idx, '-Infinity')) {
          throw new Refusal('not JSON: -Infinity is not valid JSON');
        }
        break;
    }
    return this.matchNumber(idx);
  }

  private enter(depth: number): number {
    if (depth + 1 > MAX_NESTING) {
      throw new Refusal('nested too deeply');
    }
    return depth + 1;
  }

  private parseObject(idx: number, depth: number): number {
    idx = this.skipWhitespace(idx);
    if (idx < this.end && this.at(idx) === 0x7d) {
      return idx + 1;
    }
    for (;;) {
      if (idx >= this.end || this.at(idx) !== QUOTE) {
        throw this.error('Expecting property name enclosed in double quotes', idx);
      }
      idx = this.skipWhitespace(this.scanString(idx + 1));
      if (idx >= this.end || this.at(idx) !== 0x3a) {
        throw this.error("Expecting ':' delimiter", idx);
      }
      idx = this.skipWhitespace(idx + 1);
      idx = this.skipWhitespace(this.scanOnce(idx, depth));
      if (idx < this.end && this.at(idx) === 0x7d) {
        return idx + 1;
      }
      if (idx >= this.end || this.at(idx) !== 0x2c) {
        throw this.error("Expecting ',' delimiter", idx);
      }
      idx = this.skipWhitespace(idx + 1);
    }
  }

  private parseArray(idx: number, depth: number): number {
    idx = this.skipWhitespace(idx);
    if (idx < this.end && this.at(idx) === 0x5d) {
      return idx + 1;
    }
    for (;;) {
      idx = this.skipWhitespace(this.scanOnce(idx, depth));
      if (idx < this.end && this.at(idx) === 0x5d) {
        return idx + 1;
      }
      if (idx >= this.end || this.at(idx) !== 0x2c) {
        throw this.error("Expecting ',' delimiter", idx);
      }
      idx = this.skipWhitespace(idx + 1);
    }
  }

  /** scanstring_unicode: `end` is the index after the opening quote. */
  private scanString(end: number): number {
    const begin = end - 1;
    for (;;) {
      let next = end;
      let unit = NaN;
      for (; next < this.end; next++) {
        unit = this.at(next);
        if (unit === QUOTE || unit === BACKSLASH) {
          break;
        }
        if (unit <= 0x1f) {
          throw this.error('Invalid control character at', next);
        }
      }
      if (unit !== QUOTE && unit !== BACKSLASH) {
        throw this.error('Unterminated string starting at', begin);
      }
      next++;
      if (unit === QUOTE) {
        return next;
      }
      if (next === this.end) {
        throw this.error('Unterminated string starting at', begin);
      }
      if (this.s[next] !== 'u') {
        end = next + 1;
        if (!SIMPLE_ESCAPES.has(this.s[next])) {
          throw this.error('Invalid \\escape', end - 2);
        }
        continue;
      }
      next++;
      end = next + 4;
      if (end >= this.end) {
        throw this.error('Invalid \\uXXXX escape', next - 1);
      }
      let code = 0;
      for (; next < end; next++) {
        if (!isHex(this.at(next))) {
          throw this.error('Invalid \\uXXXX escape', end - 5);
        }
        code = (code << 4) | hexValue(this.at(next));
      }
      if (
        code >= 0xd800 &&
        code <= 0xdbff &&
        end + 6 < this.end &&
        this.at(next++) === BACKSLASH &&
        this.at(next++) === 0x75
      ) {
        end += 6;
        let low = 0;
        for (; next < end; next++) {
          if (!isHex(this.at(next))) {
            throw this.error('Invalid \\uXXXX escape', end - 5);
          }
          low = (low << 4) | hexValue(this.at(next));
        }
        if (low < 0xdc00 || low > 0xdfff) {
          end -= 6; // not a pair: the second escape is read again on its own
        }
      }
    }
  }

  /** _match_number_unicode, then codec.py's parse_int / parse_float range checks. */
  private matchNumber(start: number): number {
    const last = this.end - 1;
    let idx = start;
    let isFloat = false;
    if (this.at(idx) === 0x2d) {
      idx++;
      if (idx > last) {
        throw new NoValue(start);
      }
    }
    const first = this.at(idx);
    if (first >= 0x31 && first <= 0x39) {
      idx++;
      while (idx <= last && isDigit(this.at(idx))) {
        idx++;
      }
    } else if (first === 0x30) {
      idx++;
    } else {
      throw new NoValue(start);
    }
    if (idx < last && this.at(idx) === 0x2e && isDigit(this.at(idx + 1))) {
      isFloat = true;
      idx += 2;
      while (idx <= last && isDigit(this.at(idx))) {
        idx++;
      }
    }
    if (idx < last && (this.at(idx) === 0x65 || this.at(idx) === 0x45)) {
      const exponentStart = idx;
      idx++;
      if (idx < last && (this.at(idx) === 0x2d || this.at(idx) === 0x2b)) {
        idx++;
      }
      while (idx <= last && isDigit(this.at(idx))) {
        idx++;
      }
      if (isDigit(this.at(idx - 1))) {
        isFloat = true;
      } else {
        idx = exponentStart;
      }
    }
    const token = this.s.slice(start, idx);
    const fits = isFloat
      ? Number.isFinite(Number(token))
      : token.length <= SURELY_FLOAT_SIZED ||
        (token.length <= SURELY_FLOAT_SIZED + 2 && Number.isFinite(Number(token)));
    if (!fits) {
      const shown = token.length <= 20 ? token : `${token.slice(0, 17)}...`;
      throw new Refusal(`not usable JSON: the number ${shown} does not fit a 64-bit float`);
    }
    return idx;
  }
}
