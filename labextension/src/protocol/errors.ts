/**
 * Protocol errors, split like h11's: who broke the rules decides what happens next.
 *
 * A RemoteProtocolError means the peer sent something invalid. The client machine
 * never lets it escape `receiveText`: it becomes a `ServerError` event, so one bad frame
 * never ends a connection. A LocalProtocolError means our own code misused the machine
 * (performing on a subscription that is not confirmed...): a bug to fix, so it is
 * thrown to the caller. Mirrors jupyter_iotcable/protocol/errors.py.
 */

import { pyNumberRepr } from './text';

/** Base class of every error thrown by the protocol modules. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    // Subclass names survive minification only if set explicitly.
    this.name = 'ProtocolError';
  }
}

/**
 * The peer sent something the protocol does not allow.
 *
 * `code` is a short snake_case word (an `ErrorCode`); `message` says what was wrong and
 * what is expected, for a human.
 */
export class RemoteProtocolError extends ProtocolError {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'RemoteProtocolError';
    this.code = code;
  }
}

/** Our own code used a connection machine in a way the protocol does not allow. */
export class LocalProtocolError extends ProtocolError {
  constructor(message: string) {
    super(message);
    this.name = 'LocalProtocolError';
  }
}

/**
 * Quote peer-supplied text inside an error message, safely and briefly.
 *
 * Lone surrogates become backslash escapes (`\ud800`, as Python's "backslashreplace"
 * writes them) so that the message can always be sent as UTF-8, and the result is cut to
 * `limit` code points so that a huge frame does not come back as a huge error.
 */
export function excerpt(text: string, limit = 60): string {
  // Python counts the escaped text in code points; collect one more than the limit to
  // know whether it must be cut, without walking a huge text to its end.
  const chars: string[] = [];
  for (const char of text) {
    if (char.length === 1 && isSurrogate(char.charCodeAt(0))) {
      for (const escaped of `\\u${char.charCodeAt(0).toString(16)}`) {
        chars.push(escaped);
      }
    } else {
      chars.push(char);
    }
    if (chars.length > limit) {
      break;
    }
  }
  if (chars.length <= limit) {
    return chars.join('');
  }
  return chars.slice(0, Math.max(limit - 3, 0)).join('') + '...';
}

function isSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdfff;
}

/** Name a decoded JSON value for an error message: `null`, `3.5`, `an array`... */
export function describe(value: unknown): string {
  // A missing member reads as Python's None: `frame.get(key)` gives None for both.
  if (value === null || value === undefined) {
    return 'null';
  }
  if (typeof value === 'boolean') {
    return value ? 'true' : 'false';
  }
  if (typeof value === 'number') {
    return excerpt(pyNumberRepr(value));
  }
  if (typeof value === 'string') {
    return value ? `the string "${excerpt(value)}"` : 'an empty string';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (typeof value === 'object') {
    return 'an object';
  }
  return `a ${typeof value}`;
}
