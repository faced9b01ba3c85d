import { handleWhen, type IBackoff, type IRetryBackoffContext, retry } from "cockatiel";
import { backoffDelayMs } from "./backoff.js";

/** Options of {@link retryPolicy}. */
export interface RetryOptions {
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). */
  maxRetries: number;
  /** Delay before the first retry; doubles each retry. Default 500 ms. */
  initialMs?: number;
  /** Longest delay, also the cap of a server's hint. Default 10 000 ms. */
  maxMs?: number;
  /** Spread each delay over [½, 1) of its value. Default true. */
  jitter?: boolean;
  /** Which errors another attempt may fix; every other error is thrown at once. */
  retryWhen: (error: unknown) => boolean;
  /** The wait a failure asks for (an HTTP `Retry-After`, a RetryInfo); the delay is at least that. */
  retryAfterMs?: (error: unknown) => number | undefined;
}

/** A retry policy built by {@link retryPolicy}. */
export interface RetryPolicy {
  /**
   * Runs `attempt` until it succeeds, fails with an error `retryWhen` refuses, or the retries
   * are spent (the last error is thrown). `attempt` gets its 0-based number. When `signal`
   * aborts, no further attempt starts and the wait ends at once with the signal's reason.
   */
  execute<T>(attempt: (attemptNumber: number) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/**
 * Retry with exponential backoff and jitter, on cockatiel's retry policy with
 * {@link backoffDelayMs} as its backoff (a server's `retryAfterMs` hint wins when longer, up to
 * `maxMs`). Cockatiel's wait does not listen to the caller's signal, so the policy races it:
 * a cancelled caller is answered at once and the pending timer is unref'd.
 */
export function retryPolicy(options: RetryOptions): RetryPolicy {
  const bounds = { initialMs: options.initialMs ?? 500, maxMs: options.maxMs ?? 10_000, jitter: options.jitter ?? true };
  const delayFor = (context: IRetryBackoffContext<unknown>): number => {
    const backoff = backoffDelayMs(context.attempt, bounds);
    const hint = "error" in context.result ? options.retryAfterMs?.(context.result.error) : undefined;
    return Math.min(bounds.maxMs, Math.max(backoff, hint ?? 0));
  };
  const backoff = (context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> => ({
    duration: delayFor(context),
    next: backoff,
  });
  const policy = retry(handleWhen(options.retryWhen), { maxAttempts: options.maxRetries, backoff: { next: backoff } }).dangerouslyUnref();
  return {
    async execute(attempt, signal) {
      signal?.throwIfAborted();
      const run = policy.execute(({ attempt: n }) => {
        signal?.throwIfAborted();
        return attempt(n);
      }, signal);
      if (!signal) return run;
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      run.catch(() => undefined);
      try {
        return await Promise.race([run, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort!);
      }
    },
  };
}
