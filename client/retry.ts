// Retry plumbing shared by the SDK's unary calls and its streams: the error type callers see and
// the exponential backoff with jitter between attempts.

export interface RetryOptions {
  /**
   * Unary calls: retries after the first attempt. Streams: failures in a row (without an answer in
   * between) each replica may have before it counts as gone (default 5).
   */
  readonly maxRetries?: number;
  /** First backoff; doubles each retry, with jitter (default 100 ms). */
  readonly initialBackoffMs?: number;
  /** Largest backoff (default 5,000 ms). */
  readonly maxBackoffMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { maxRetries: 5, initialBackoffMs: 100, maxBackoffMs: 5000 };

/** A failed call: the gRPC status code and details of the last attempt. */
export class PairprefError extends Error {
  readonly code: number;
  readonly attempts: number;
  constructor(code: number, message: string, attempts: number) {
    super(message);
    this.name = 'PairprefError';
    this.code = code;
    this.attempts = attempts;
  }
}

/** Backoff before retry number `attempt` (1-based): doubling from initialBackoffMs, half of it jitter. */
export function backoffMs(retry: Required<RetryOptions>, attempt: number): number {
  const base = Math.min(retry.maxBackoffMs, retry.initialBackoffMs * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
