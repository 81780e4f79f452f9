/**
 * Words and numbers of the live chart: times in UTC or local time, exact numbers, series
 * order, marks for status-like text, and the status line. No DOM here.
 */

export type TimeZone = 'UTC' | 'local';

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** The parts of a unix time (seconds) in UTC or in the browser's time zone. */
function parts(seconds: number, zone: TimeZone) {
  const d = new Date(seconds * 1000);
  const utc = zone === 'UTC';
  return {
    year: utc ? d.getUTCFullYear() : d.getFullYear(),
    month: (utc ? d.getUTCMonth() : d.getMonth()) + 1,
    day: utc ? d.getUTCDate() : d.getDate(),
    hours: utc ? d.getUTCHours() : d.getHours(),
    minutes: utc ? d.getUTCMinutes() : d.getMinutes(),
    seconds: utc ? d.getUTCSeconds() : d.getSeconds(),
    ms: utc ? d.getUTCMilliseconds() : d.getMilliseconds()
  };
}

/** `14:03:27.125` (with the date first when `withDate`). */
export function formatTime(seconds: number, zone: TimeZone, withDate = false): string {
  const p = parts(seconds, zone);
  const time = `${pad(p.hours)}:${pad(p.minutes)}:${pad(p.seconds)}.${pad(p.ms, 3)}`;
  return withDate ? `${p.year}-${pad(p.month)}-${pad(p.day)} ${time}` : time;
}

/** The name of a time zone as an axis title says it: `UTC` or `local, Europe/Paris`. */
export function zoneName(zone: TimeZone): string {
  if (zone === 'UTC') {
    return 'UTC';
  }
  let name = '';
  try {
    name = Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    name = '';
  }
  return name ? `local, ${name}` : 'local';
}

/**
 * Tick labels for a time axis: as coarse as the spacing allows (`14:03`, `14:03:20`,
 * `14:03:27.5`), with the date on the first tick and where the day changes.
 */
export function timeTicks(ticks: number[], spacing: number, zone: TimeZone): string[] {
  let lastDay = '';
  return ticks.map(t => {
    const p = parts(t, zone);
    const day = `${p.year}-${pad(p.month)}-${pad(p.day)}`;
    let text: string;
    if (spacing >= 60 && p.seconds === 0) {
      text = `${pad(p.hours)}:${pad(p.minutes)}`;
    } else if (spacing >= 1) {
      text = `${pad(p.hours)}:${pad(p.minutes)}:${pad(p.seconds)}`;
    } else {
      const fraction = spacing >= 0.1 ? String(Math.round(p.ms / 100)) : pad(p.ms, 3);
      text = `${pad(p.hours)}:${pad(p.minutes)}:${pad(p.seconds)}.${fraction}`;
    }
    if (day !== lastDay) {
      text += `\n${day}`;
      lastDay = day;
    }
    return text;
  });
}

const TIME_NAME = /^(ts|time|timestamp|datetime|epoch)$|(_ts|_time|_at|_timestamp)$/i;

/**
 * A payload field holding a unix time (`ts`, `created_at`...), in seconds or
 * milliseconds, as seconds; else null. The table shows such fields as times.
 */
export function asTimestamp(name: string, value: unknown): number | null {
  if (typeof value !== 'number' || !TIME_NAME.test(name.split('.').pop() ?? name)) {
    return null;
  }
  if (value > 1e9 && value < 1e10) {
    return value;
  }
  if (value > 1e12 && value < 1e13) {
    return value / 1000;
  }
  return null;
}

/** A number exactly as the kernel sent it: JavaScript prints the shortest exact form. */
export function exactNumber(value: number): string {
  return Object.is(value, -0) ? '0' : String(value);
}

/** A chart value for the hover read-out: up to 6 significant digits, no exponent below 1e6. */
export function shortNumber(value: number): string {
  if (!Number.isFinite(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) {
    return value.toPrecision(4);
  }
  return String(Number(value.toPrecision(6)));
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Natural order: `pump2` before `pump10`. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

export type Mark = 'bad' | 'warn' | 'good' | 'text';

const BAD = /fault|error|alarm|fail|critical|trip|down|offline|stopped|dead/i;
const WARN = /warn|degraded|unstable|maintenance|high|low/i;
const GOOD = /^(ok|okay|normal|running|online|up|good|healthy|idle|on)$/i;

/** How a text cell of the table is marked: a status word that says trouble stands out. */
export function markText(value: string): Mark {
  if (BAD.test(value)) {
    return 'bad';
  }
  if (WARN.test(value)) {
    return 'warn';
  }
  if (GOOD.test(value)) {
    return 'good';
  }
  return 'text';
}

/** The kernel's status fields (see chart.py `LiveView.status`). */
export interface IKernelStatus {
  state: string;
  reason: string | null;
  cable: string;
  rate: number;
  rows: number;
  gaps: number;
  dropped: number;
  points: number;
  /** Window requests the kernel got from views. */
  requests?: number;
  error: string | null;
  note?: string;
}

/** What the view knows of the kernel besides its messages. */
export interface IViewFacts {
  /** Seconds since the kernel's last message (Infinity: none yet). */
  silence: number;
  /** The comm to the kernel is gone (kernel restarted, shut down, or widget closed). */
  disconnected: boolean;
  /** The window the view asked for has not come yet. */
  waitingForWindow: boolean;
}

/** Seconds without a kernel message after which the chart stops claiming to be live. */
export const SILENCE = 5;

export interface IStatusLine {
  /** One word for styling and tests: live, waiting, stale, reconnecting, ended, disconnected. */
  kind: string;
  text: string;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

/** The status line: whether the chart is live, and if not, why. */
export function statusLine(status: IKernelStatus | null, facts: IViewFacts): IStatusLine {
  if (facts.disconnected) {
    return {
      kind: 'disconnected',
      text: 'kernel disconnected (restarted or shut down): run the cell again to follow the readings'
    };
  }
  if (!status) {
    return { kind: 'waiting', text: 'waiting for the kernel…' };
  }
  if (facts.silence > SILENCE) {
    return {
      kind: 'stale',
      text: `no word from the kernel for ${Math.round(facts.silence)} s (busy, restarted or gone?); the chart shows what it had`
    };
  }
  const counts = [
    `${status.rate.toFixed(1)} readings/s`,
    plural(status.rows, 'row'),
    plural(status.gaps, 'gap')
  ];
  if (status.dropped) {
    counts.push(`${status.dropped.toLocaleString('en-US')} conflated`);
  }
  const tail = counts.join(' · ');
  if (status.error) {
    return { kind: 'stale', text: `chart error in the kernel: ${status.error}` };
  }
  if (status.cable === 'reconnecting') {
    return { kind: 'reconnecting', text: `reconnecting to the server… · ${tail}` };
  }
  if (status.cable === 'closed' || status.state === 'closed') {
    return { kind: 'ended', text: `cable closed${status.reason ? `: ${status.reason}` : ''}` };
  }
  if (status.state === 'stopped') {
    return { kind: 'ended', text: 'stopped following (live_view.stop())' };
  }
  if (status.state !== 'live') {
    const why = status.reason ? `: ${status.reason}` : '';
    return {
      kind: status.state === 'pending' ? 'waiting' : 'ended',
      text: `${status.state}${why}`
    };
  }
  if (status.note) {
    return { kind: 'waiting', text: `${status.note} · ${tail}` };
  }
  return { kind: 'live', text: `live · ${tail}` };
}
