/**
 * The iotcable REST endpoints, typed: `GET iotcable/api/channels` and
 * `GET iotcable/api/status` (jupyter_iotcable/server/handlers.py and engine.py).
 *
 * A failed request becomes an `ApiProblem` that says, for a person, what is wrong and
 * what to do: a 404 means the server extension is not enabled on this server, a 403 that
 * this user may not use the channels. Fields the server may add later are ignored; fields
 * missing from an older server read as absent, never as a crash.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One channel this user may read or write (engine.channel_list). */
export interface IChannelInfo {
  name: string;
  description: string;
  topics: string[];
  columns: string | null;
  format: string;
  read: boolean;
  write: boolean;
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
    message: string,
    readonly status?: number
  ) {
    super(message);
    this.name = 'ApiProblem';
  }
}

/** The messages the panel shows, one per kind (the tests look for these words). */
export const PROBLEM_TEXT: { [K in ProblemKind]: string } = {
  not_enabled:
    'The iotcable server extension is not enabled on this Jupyter server. ' +
    'An admin enables it with `jupyter server extension enable jupyter_iotcable` ' +
    'and restarts the server.',
  forbidden: 'You are not allowed to use the IoT channels on this server.',
  unauthorized: 'Your Jupyter session has expired: reload the page to log in again.',
  unreachable: 'The Jupyter server cannot be reached.',
  server_error: 'The Jupyter server failed to answer.'
};

async function getJson<T>(path: string, settings: ServerConnection.ISettings): Promise<T> {
  const url = URLExt.join(settings.baseUrl, path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch {
    // A network error (server down, connection refused): fetch says no more than that.
    throw new ApiProblem('unreachable', PROBLEM_TEXT.unreachable);
  }
  if (response.status === 404) {
    throw new ApiProblem('not_enabled', PROBLEM_TEXT.not_enabled, 404);
  }
  if (response.status === 403) {
    throw new ApiProblem('forbidden', PROBLEM_TEXT.forbidden, 403);
  }
  if (response.status === 401) {
    throw new ApiProblem('unauthorized', PROBLEM_TEXT.unauthorized, 401);
  }
  if (!response.ok) {
    throw new ApiProblem(
      'server_error',
      `${PROBLEM_TEXT.server_error} (${path}: HTTP ${response.status})`,
      response.status
    );
  }
  return (await response.json()) as T;
}

export function fetchStatus(settings: ServerConnection.ISettings): Promise<IStatus> {
  return getJson<IStatus>('iotcable/api/status', settings);
}

export function fetchChannels(settings: ServerConnection.ISettings): Promise<IChannelList> {
  return getJson<IChannelList>('iotcable/api/channels', settings);
}
