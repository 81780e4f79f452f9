/**
 * Client commands as the client machine writes them, members in the order of
 * jupyter_iotcable/protocol/commands.py (`to_wire`), so that the text is byte for byte
 * the Python client's. Values are for `dumps` (Maps keep the member order).
 */

import { CommandName } from './messages';
import type { HistoryRequest } from './messages';

type Command = Map<string, unknown>;

export function subscribeCommand(identifier: string, history: HistoryRequest | null): Command {
  const wire: Command = new Map<string, unknown>([
    ['command', CommandName.SUBSCRIBE],
    ['identifier', identifier]
  ]);
  if (history !== null) {
    wire.set('history', history.toFrameValue());
  }
  return wire;
}

export function unsubscribeCommand(identifier: string): Command {
  return new Map<string, unknown>([
    ['command', CommandName.UNSUBSCRIBE],
    ['identifier', identifier]
  ]);
}

/** `data` is the JSON text of the action object (a string inside the frame). */
export function messageCommand(identifier: string, data: string): Command {
  return new Map<string, unknown>([
    ['command', CommandName.MESSAGE],
    ['identifier', identifier],
    ['data', data]
  ]);
}

export function historyCommand(identifier: string, history: HistoryRequest): Command {
  return new Map<string, unknown>([
    ['command', CommandName.HISTORY],
    ['identifier', identifier],
    ['history', history.toFrameValue()]
  ]);
}
