/**
 * Channel identifiers: the opaque strings that name a subscription.
 *
 * A client subscribes with an identifier such as `{"channel":"telemetry","topic":"a/+"}`
 * and the server echoes that exact string in every frame about the subscription, so the
 * machines keep the string as the key and parse it only to learn the channel and params.
 * Mirrors jupyter_iotcable/protocol/identifiers.py.
 */

import { JsonDecodeError, loads } from './codec';
import type { JsonValue } from './codec';
import { describe, excerpt, LocalProtocolError, RemoteProtocolError } from './errors';
import { ErrorCode, isJsonObject, member } from './messages';
import { codePointLength, loneSurrogateAt } from './text';

export const MAX_CHANNEL_LENGTH = 200;
const EXAMPLE = '{"channel":"telemetry","topic":"plant/+/+/env"}';

/** What an identifier names: a channel and its string params (`topic`...). */
export class ChannelRef {
  readonly channel: string;
  /** In the order given (a Map, so that any key, "__proto__" included, is just a key). */
  readonly params: ReadonlyMap<string, string>;

  constructor(
    channel: string,
    params: ReadonlyMap<string, string> | Readonly<Record<string, string>> = {}
  ) {
    this.channel = channel;
    this.params = new Map(params instanceof Map ? params : Object.entries(params));
    Object.freeze(this);
  }

  /** The optional narrower MQTT filter inside the channel. */
  get topic(): string | null {
    return this.params.get('topic') ?? null;
  }
}

/**
 * Build an identifier the way the JS clients do (`JSON.stringify({channel, ...params})`,
 * no spaces), exactly as Python's `make_identifier(channel, **params)` does with the
 * params in the same order.
 *
 * The text is assembled member by member rather than with JSON.stringify of an object,
 * which would move integer-like param names ("2") before "channel".
 */
export function makeIdentifier(
  channel: string,
  params: ReadonlyMap<string, string> | Readonly<Record<string, string>> = {}
): string {
  const length = codePointLength(channel);
  if (length < 1 || length > MAX_CHANNEL_LENGTH) {
    throw new LocalProtocolError(
      `channel must be 1 to ${MAX_CHANNEL_LENGTH} characters, got ${length}`
    );
  }
  checkUnicode(`channel "${excerpt(channel)}"`, channel);
  let identifier = `{"channel":${JSON.stringify(channel)}`;
  const entries = params instanceof Map ? [...params.entries()] : Object.entries(params);
  for (const [key, value] of entries) {
    // Python cannot be given "channel" twice (a TypeError); untyped JS callers could.
    if (key === 'channel') {
      throw new LocalProtocolError('params must not hold "channel": pass it as channel');
    }
    if (typeof value !== 'string') {
      throw new LocalProtocolError(
        `param "${excerpt(key)}" must be a string, got ${describe(value)}`
      );
    }
    checkUnicode(`param name "${excerpt(key)}"`, key);
    checkUnicode(`param "${excerpt(key)}" ("${excerpt(value)}")`, value);
    identifier += `,${JSON.stringify(key)}:${JSON.stringify(value)}`;
  }
  return `${identifier}}`;
}

/**
 * Refuse a lone surrogate now: the identifier could never be sent (the frame holding it
 * cannot be encoded as UTF-8), and the error would surface later, at the socket.
 */
function checkUnicode(what: string, text: string): void {
  const at = loneSurrogateAt(text);
  if (at === -1) {
    return;
  }
  // The lone surrogate is the code point at `at`; find its code unit.
  let unit = 0;
  for (let point = 0; point < at; point++) {
    const code = text.charCodeAt(unit);
    unit += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
  }
  const code = `\\u${text.charCodeAt(unit).toString(16).padStart(4, '0')}`;
  throw new LocalProtocolError(
    `${what} holds a lone surrogate (${code} at character ${at}), which cannot ` +
      'be sent as UTF-8; pass valid Unicode text'
  );
}

/** Read the channel and params of an identifier; RemoteProtocolError("bad_identifier"). */
export function parseIdentifier(identifier: string): ChannelRef {
  let value: JsonValue;
  try {
    value = loads(identifier);
  } catch (exc) {
    if (exc instanceof JsonDecodeError) {
      throw bad(
        `identifier must be a JSON object string like ${EXAMPLE}, ` +
          `got ${excerpt(identifier)} (${exc.explanation})`
      );
    }
    throw exc;
  }
  if (!isJsonObject(value)) {
    throw bad(`identifier must be a JSON object string like ${EXAMPLE}, got ${describe(value)}`);
  }
  const channel = member(value, 'channel');
  if (typeof channel !== 'string' || !inRange(codePointLength(channel))) {
    throw bad(
      `identifier needs a "channel" string of 1 to ${MAX_CHANNEL_LENGTH} characters, ` +
        `got ${describe(channel)}`
    );
  }
  const params = new Map<string, string>();
  for (const [key, param] of Object.entries(value)) {
    if (key === 'channel') {
      continue;
    }
    if (typeof param !== 'string') {
      throw bad(`identifier param "${excerpt(key)}" must be a string, got ${describe(param)}`);
    }
    params.set(key, param);
  }
  return new ChannelRef(channel, params);
}

function inRange(length: number): boolean {
  return length >= 1 && length <= MAX_CHANNEL_LENGTH;
}

function bad(message: string): RemoteProtocolError {
  return new RemoteProtocolError(ErrorCode.BAD_IDENTIFIER, message);
}
