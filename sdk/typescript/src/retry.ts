// When and how long the SDK waits before trying a request again (pure: no I/O), the policy of the
// Python SDK's recallstack/retry.py.
//
// Retried: 429, 502, 503, 504, a 409 `idempotency_in_progress` (the first try of the same write is
// still running), and transport failures (connection refused or reset, a try's timeout). Every write
// carries an Idempotency-Key that stays the same across its retries, so a retried write is applied
// once, whatever happened to the earlier try.
//
// Waits (n = 0 for the first retry):
// - no Retry-After: full jitter, uniform(0, min(maxDelayMs, baseDelayMs * 2**n));
// - Retry-After r (seconds or an HTTP date): r + uniform(0, min(maxDelayMs, baseDelayMs * 2**n)): never
//   earlier than the server asked, spread so that clients told the same r do not all come back at once.
//   A Retry-After beyond the remaining budget ends the retries at once.
// Limits: at most maxAttempts tries in all, and no new try starts totalTimeoutMs after the first (a try
// in flight runs to its own timeout).

export const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

export interface RetryOptions {
  /** Tries in all, the first included (default 5). */
  maxAttempts?: number;
  /** Milliseconds; doubles with each retry (default 250). */
  baseDelayMs?: number;
  /** Cap of the exponential part (default 8000). */
  maxDelayMs?: number;
  /** No try starts later than this after the first (default 30000). */
  totalTimeoutMs?: number;
  retryStatuses?: Iterable<number>;
}

/** The outcome of one try: an answer (with its error code, if the body had one) or a failure to get one. */
export type Outcome =
  | { kind: "response"; status: number; retryAfter: string | null; errorCode: string | null }
  | { kind: "transport"; error: unknown };

export class RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly totalTimeoutMs: number;
  readonly retryStatuses: ReadonlySet<number>;

  constructor(options: RetryOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 8000;
    this.totalTimeoutMs = options.totalTimeoutMs ?? 30_000;
    this.retryStatuses = new Set(options.retryStatuses ?? RETRY_STATUSES);
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new RangeError("maxAttempts must be at least 1");
    if (!(this.baseDelayMs >= 0 && this.maxDelayMs >= 0 && this.totalTimeoutMs >= 0)) {
      throw new RangeError("delays and totalTimeoutMs must not be negative");
    }
  }

  /** A policy that never retries. */
  static none(): RetryPolicy {
    return new RetryPolicy({ maxAttempts: 1 });
  }

  /** The full-jitter part of the wait before retry number `retry` (0-based), in milliseconds. */
  backoffMs(retry: number, random: () => number = Math.random): number {
    return random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(retry, 62));
  }

  start(clock: () => number = defaultClock, random: () => number = Math.random): RetryState {
    return new RetryState(this, clock, random);
  }
}

const defaultClock = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** A Retry-After header in seconds (delta-seconds or an HTTP date); null if absent or unreadable. */
export function retryAfterSeconds(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === "") return null;
  const seconds = Number(text);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, (when - now) / 1000);
}

export function retryable(outcome: Outcome, policy: RetryPolicy): boolean {
  if (outcome.kind === "transport") return true;
  if (policy.retryStatuses.has(outcome.status)) return true;
  return outcome.status === 409 && outcome.errorCode === "idempotency_in_progress";
}

/** The retries of one logical call: nextDelayMs(outcome) says how long to wait before the next try,
 * or null when the outcome is final (a success, an error not worth retrying, or the budget is spent). */
export class RetryState {
  readonly started: number;
  attempts = 0;
  /** Why the last retryable outcome was not retried. */
  gaveUp: string | null = null;
  lastRetryAfter: number | null = null;

  constructor(readonly policy: RetryPolicy, private clock: () => number, private random: () => number) {
    this.started = clock();
  }

  nextDelayMs(outcome: Outcome): number | null {
    this.attempts += 1;
    this.lastRetryAfter = null;
    if (!retryable(outcome, this.policy)) return null;
    if (outcome.kind === "response") this.lastRetryAfter = retryAfterSeconds(outcome.retryAfter);
    if (this.attempts >= this.policy.maxAttempts) {
      this.gaveUp = `gave up after ${this.attempts} attempts`;
      return null;
    }
    const remaining = this.policy.totalTimeoutMs - (this.clock() - this.started);
    if (remaining <= 0) {
      this.gaveUp = `gave up after ${this.policy.totalTimeoutMs / 1000}s`;
      return null;
    }
    const askMs = this.lastRetryAfter === null ? null : this.lastRetryAfter * 1000;
    if (askMs !== null && askMs > remaining) {
      this.gaveUp = `the server asked to retry after ${this.lastRetryAfter}s, beyond the remaining `
        + `${(remaining / 1000).toFixed(1)}s of the retry budget`;
      return null;
    }
    const delay = (askMs ?? 0) + this.policy.backoffMs(this.attempts - 1, this.random);
    return Math.min(delay, remaining);
  }
}
