/**
 * Reconnect delays: exponential backoff with full jitter.
 *
 * Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the clients
 * of a restarted server over the whole window instead of having them all knock at once.
 * The random source is injected so that tests are deterministic. Mirrors
 * jupyter_iotcable/protocol/backoff.py.
 */

/**
 * What to do after a connection ended. `reason` is the server's `disconnect` reason when
 * it sent one (`unauthorized`, `server_restart`...), else `connection_lost`.
 */
export class ReconnectDecision {
  constructor(
    readonly reconnect: boolean,
    /** Seconds to wait before the next attempt (0 when not reconnecting). */
    readonly delay: number,
    readonly reason: string
  ) {
    Object.freeze(this);
  }
}

export interface BackoffOptions {
  /** The first ceiling, in seconds. */
  base?: number;
  factor?: number;
  /** The ceiling never exceeds this many seconds. */
  cap?: number;
  /** Uniform in [0, 1), like Math.random (the default). */
  random?: () => number;
}

/** Delay before reconnect attempt `n`: uniform in `[0, min(cap, base * factor ** n)]`. */
export class Backoff {
  readonly base: number;
  readonly factor: number;
  readonly cap: number;
  attempts = 0;
  private readonly random: () => number;
  private ceiling: number;

  constructor(options: BackoffOptions = {}) {
    const { base = 0.5, factor = 2.0, cap = 30.0, random = Math.random } = options;
    // Written to refuse NaN too, which Python's `base <= 0 or ...` lets through.
    if (!(base > 0 && factor >= 1 && cap >= base && Number.isFinite(cap))) {
      throw new RangeError(
        `backoff needs base > 0, factor >= 1 and cap >= base; got ${base}, ${factor}, ${cap}`
      );
    }
    this.base = base;
    this.factor = factor;
    this.cap = cap;
    this.random = random;
    this.ceiling = base;
  }

  /** The delay before the next attempt; each call counts one attempt. */
  nextDelay(): number {
    const delay = this.random() * this.ceiling;
    this.attempts += 1;
    // Grow the ceiling step by step: factor ** attempts would overflow after a long outage.
    this.ceiling = Math.min(this.cap, this.ceiling * this.factor);
    return delay;
  }

  /** Back to the first delay (after a successful connection). */
  reset(): void {
    this.attempts = 0;
    this.ceiling = this.base;
  }
}
