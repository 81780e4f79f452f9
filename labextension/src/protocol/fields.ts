/**
 * Checks of the members of a server frame: each throws RemoteProtocolError
 * ("malformed_frame") with the message the Python client machine gives (the helpers at
 * the end of jupyter_iotcable/protocol/client.py).
 */

import type { JsonObject } from './codec';
import { describe, RemoteProtocolError } from './errors';
import { ErrorCode, hasMember, member } from './messages';

export function malformed(message: string): RemoteProtocolError {
  return new RemoteProtocolError(ErrorCode.MALFORMED_FRAME, message);
}

/** What kind of frame this is, for messages: "welcome frame", "batch frame"... */
export function what(frame: JsonObject): string {
  const kind = member(frame, 'type');
  if (typeof kind === 'string') {
    return `${kind} frame`;
  }
  if (hasMember(frame, 'batch')) {
    return 'batch frame';
  }
  if (hasMember(frame, 'offset') || hasMember(frame, 'stream_id')) {
    return 'data frame';
  }
  return 'frame';
}

export function str(frame: JsonObject, key: string): string {
  const value = member(frame, key);
  if (typeof value !== 'string') {
    throw malformed(`${what(frame)} "${key}" must be a string, got ${describe(value)}`);
  }
  return value;
}

/** Absent or null: null. */
export function optStr(frame: JsonObject, key: string): string | null {
  const value = member(frame, key);
  return value === undefined || value === null ? null : str(frame, key);
}

/**
 * A JSON integer. JSON.parse does not say whether "1" or "1.0" was written, so an
 * integral float literal passes here where Python would refuse it; our server writes
 * integers as integer literals.
 */
export function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/** Absent or null: null. */
export function optInt(frame: JsonObject, key: string): number | null {
  const value = member(frame, key);
  if (value === undefined || value === null) {
    return null;
  }
  if (!isInt(value)) {
    throw malformed(`${what(frame)} "${key}" must be an integer, got ${describe(value)}`);
  }
  return value;
}
