/**
 * The iotcable REST endpoints, typed: `GET iotcable/api/channels`,
 * `GET iotcable/api/status` and `POST iotcable/api/channels/NAME/publish`
 * (jupyter_iotcable/server/handlers.py and engine.py).
 *
 * A failed request becomes an `ApiProblem` that says, for a person, what is wrong and
 * what to do: a 404 means the server extension is not enabled on this server, a 403 that
 * this user may not use the channels. Fields the server may add later are ignored; fields
 * missing from an older server read as absent, never as a crash.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import type { JsonValue } from './protocol';

/** One channel this user may read or write (engine.channel_list). */
export interface IChannelInfo {
  name: string;
  description: string;
  topics: string[];
  columns: string | null;
  format: string;
  read: boolean;
  write: boolean;
  /** The filters a publish topic must match (listed for writers; older servers omit it). */
  write_topics?: string[];
  /** The payload field that holds a reading's time, when the channel names one. */
  time_field?: string | null;
  /** Units of payload fields (`temperature` -> `°C`), as the admin configured them. */
  units?: { [field: string]: string };
}

export interface IChannelList {
  channels: IChannelInfo[];
  user: string;
}

/** A channel's counters in the status (only channels this user may read are listed). */
export interface IChannelCounters {
  offset: number;
  messages_in: number;
  /** Readings per second, as the server's meter measures it. */
  rate: number;
  subscribers: number;
  history: { size: number; oldest: number | null; evicted: number };
}

/** The broker part of the status; the bridge's fields are there only when it runs. */
export interface IBrokerHealth {
  /** connected | reconnecting | disconnected | not_configured | (starting...) */
  state: string;
  detail: string;
  since?: number | null;
  outages?: number;
  last_outage_at?: number | null;
  embedded?: boolean;
  last_error?: string | null;
  backlog?: number;
  dropped?: number;
  overloaded?: boolean;
  load?: number;
  client_id_conflict?: boolean;
}

export interface IStatus {
  version: string;
  /** false: the package is installed but nobody configured channels; see `hint`. */
  configured?: boolean;
  hint?: string;
  broker: IBrokerHealth;
  channels: { [name: string]: IChannelCounters };
  connections?: number;
  uptime?: number;
}

/** Why the panel has nothing to show, in words for the user. */
export type ProblemKind =
  'not_enabled' | 'forbidden' | 'unauthorized' | 'unreachable' | 'server_error';

export class ApiProblem extends Error {
  constructor(
    readonly kind: ProblemKind,
    /** What went wrong beyond the kind (`iotcable/api/status: HTTP 500`), if anything. */
    readonly detail: string = '',
    readonly status?: number
  ) {
    super(problemText(kind, nullTranslator.load('jupyter_iotcable'), detail));
    this.name = 'ApiProblem';
  }
}

/** The message the panel shows for a problem, in the user's language. */
export function problemText(kind: ProblemKind, trans: TranslationBundle, detail = ''): string {
  let text: string;
  switch (kind) {
    case 'not_enabled':
      text = trans.__(
        'The iotcable server extension is not enabled on this Jupyter server. An admin enables it with %1 and restarts the server.',
        '`jupyter server extension enable jupyter_iotcable`'
      );
      break;
    case 'forbidden':
      text = trans.__('You are not allowed to use the IoT channels on this server.');
      break;
    case 'unauthorized':
      text = trans.__('Your Jupyter session has expired: reload the page to log in again.');
      break;
    case 'unreachable':
      text = trans.__('The Jupyter server cannot be reached.');
      break;
    case 'server_error':
      text = trans.__('The Jupyter server failed to answer.');
      break;
  }
  return detail ? `${text} (${detail})` : text;
}

async function getJson<T>(path: string, settings: ServerConnection.ISettings): Promise<T> {
  const url = URLExt.join(settings.baseUrl, path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch {
    // A network error (server down, connection refused): fetch says no more than that.
    throw new ApiProblem('unreachable');
  }
  if (response.status === 404) {
    throw new ApiProblem('not_enabled', '', 404);
  }
  if (response.status === 403) {
    throw new ApiProblem('forbidden', '', 403);
  }
  if (response.status === 401) {
    throw new ApiProblem('unauthorized', '', 401);
  }
  if (!response.ok) {
    throw new ApiProblem('server_error', `${path}: HTTP ${response.status}`, response.status);
  }
  return (await response.json()) as T;
}

export function fetchStatus(settings: ServerConnection.ISettings): Promise<IStatus> {
  return getJson<IStatus>('iotcable/api/status', settings);
}

export function fetchChannels(settings: ServerConnection.ISettings): Promise<IChannelList> {
  return getJson<IChannelList>('iotcable/api/channels', settings);
}

/** The server's answer to a publish: `ok`, or the reason it refused. */
export interface IPublishAnswer {
  ok: boolean;
  /** The topic published to (as the server checked it). */
  topic: string;
  /** Why not, in the server's words (or ours when there was no answer). */
  reason: string | null;
  /** The HTTP status; 0 when the server could not be reached. */
  status: number;
}

/**
 * Publish `payload` to `topic` of `channel` through the REST endpoint. Never throws: a
 * refusal, a network error or an unexpected answer all come back as `ok: false` with a
 * reason for the user.
 */
export async function publish(
  settings: ServerConnection.ISettings,
  channel: string,
  topic: string,
  payload: JsonValue,
  trans: TranslationBundle = nullTranslator.load('jupyter_iotcable')
): Promise<IPublishAnswer> {
  const url = URLExt.join(
    settings.baseUrl,
    'iotcable/api/channels',
    encodeURIComponent(channel),
    'publish'
  );
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'POST', body: JSON.stringify({ topic, payload }) },
      settings
    );
  } catch {
    return { ok: false, topic, reason: problemText('unreachable', trans), status: 0 };
  }
  type Answer = { ok?: unknown; topic?: unknown; reason?: unknown };
  let body: Answer | null = null;
  try {
    body = (await response.json()) as Answer;
  } catch {
    // Not JSON: not our handler (a proxy's error page, a server without the extension).
  }
  if (response.ok && body?.ok === true) {
    return {
      ok: true,
      topic: typeof body.topic === 'string' ? body.topic : topic,
      reason: null,
      status: response.status
    };
  }
  let reason: string;
  if (body && typeof body.reason === 'string' && body.reason) {
    reason = body.reason;
  } else if (response.status === 404) {
    reason = problemText('not_enabled', trans);
  } else if (response.status === 403) {
    reason = problemText('forbidden', trans);
  } else {
    reason = problemText('server_error', trans, `HTTP ${response.status}`);
  }
  return { ok: false, topic, reason, status: response.status };
}
