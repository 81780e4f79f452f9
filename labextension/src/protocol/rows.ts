/**
 * Rows as the client reads them: from ActionCable data frames (one row each) and from
 * iotcable batch frames (many rows, offsets strictly increasing).
 *
 * The Python side encodes rows in jupyter_iotcable/protocol/rows.py and decodes them in
 * client.py (`_stream_fields`, `_data_row`, `_batch_rows`); these are the decoders, with
 * the same checks in the same order and the same messages.
 */

import type { JsonObject, JsonValue } from './codec';
import { describe } from './errors';
import { isInt, malformed, optInt, str } from './fields';
import { finiteFloat, hasMember, isJsonObject, member } from './messages';
import type { Row } from './messages';
import { pyIntStr } from './text';

/** The stream members of a data or batch frame. */
export interface StreamFields {
  streamId: string;
  epoch: string;
  /** Readings the server conflated away before these rows (0 when absent). */
  dropped: number;
}

export function streamFields(frame: JsonObject): StreamFields {
  const dropped = optInt(frame, 'dropped') ?? 0;
  if (dropped < 0) {
    throw malformed(`"dropped" must be >= 0, got ${pyIntStr(dropped)}`);
  }
  return { streamId: str(frame, 'stream_id'), epoch: str(frame, 'epoch'), dropped };
}

/** The row of an ActionCable data frame. */
export function dataRow(frame: JsonObject): Row {
  const offset = member(frame, 'offset');
  if (!isInt(offset)) {
    throw malformed(`data frame "offset" must be an integer, got ${describe(offset)}`);
  }
  const message = member(frame, 'message');
  if (!isJsonObject(message)) {
    throw malformed(`data frame "message" must be an object, got ${describe(message)}`);
  }
  const time = member(message, 'time');
  const seconds = finiteFloat(time);
  if (seconds === null) {
    throw malformed(`data frame "message.time" must be unix seconds, got ${describe(time)}`);
  }
  const topic = member(message, 'topic');
  if (typeof topic !== 'string') {
    throw malformed(`data frame "message.topic" must be a string, got ${describe(topic)}`);
  }
  if (!hasMember(message, 'payload')) {
    throw malformed('data frame "message" needs a "payload"');
  }
  const error = member(message, 'error') ?? null;
  if (error !== null && typeof error !== 'string') {
    throw malformed(`data frame "message.error" must be a string, got ${describe(error)}`);
  }
  return [offset, seconds, topic, message['payload'], error];
}

/** The rows of a batch frame's `batch` member. */
export function batchRows(batch: JsonValue | undefined): Row[] {
  if (!Array.isArray(batch)) {
    throw malformed(`"batch" must be an array of rows, got ${describe(batch)}`);
  }
  const raws = batch as readonly JsonValue[];
  const rows: Row[] = [];
  for (let index = 0; index < raws.length; index++) {
    const row = batchRow(index, raws[index]);
    const previous = rows.length > 0 ? rows[rows.length - 1][0] : null;
    if (previous !== null && row[0] <= previous) {
      throw malformed(
        `batch offsets must strictly increase: ${pyIntStr(row[0])} after ` +
          `${pyIntStr(previous)} (row ${index})`
      );
    }
    rows.push(row);
  }
  return rows;
}

const SHAPE = '[offset, time, topic, payload] or [offset, time, topic, payload, error]';

function batchRow(index: number, raw: JsonValue): Row {
  if (!Array.isArray(raw) || (raw.length !== 4 && raw.length !== 5)) {
    throw malformed(`batch row ${index} must be ${SHAPE}, got ${describe(raw)}`);
  }
  const [offset, time, topic, payload] = raw as readonly JsonValue[];
  const error = raw.length === 5 ? (raw as readonly JsonValue[])[4] : null;
  if (!isInt(offset)) {
    throw malformed(`batch row ${index}: offset must be an integer, got ${describe(offset)}`);
  }
  const seconds = finiteFloat(time);
  if (seconds === null) {
    throw malformed(`batch row ${index}: time must be unix seconds, got ${describe(time)}`);
  }
  if (typeof topic !== 'string') {
    throw malformed(`batch row ${index}: topic must be a string, got ${describe(topic)}`);
  }
  if (error !== null && typeof error !== 'string') {
    throw malformed(`batch row ${index}: error must be a string, got ${describe(error)}`);
  }
  return [offset, seconds, topic, payload, error];
}
