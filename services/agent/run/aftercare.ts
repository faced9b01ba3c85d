import { retryDelayMs } from "../../kernel/events/backoff.js";

/** Bounded retries with exponential backoff of what a run owes after it ended. */
export interface AftercareRetry {
  /** First delay. */
  initialMs: number;
  /** Longest delay. */
  maxMs: number;
  /** Give up (the caller logs an error) once this long has passed since the first try. */
  budgetMs: number;
}

/** 250 ms, 500 ms, 1 s … 5 s between tries, for at most 2 minutes. */
export const DEFAULT_AFTERCARE_RETRY: AftercareRetry = Object.freeze({ initialMs: 250, maxMs: 5_000, budgetMs: 120_000 });

/** How {@link keepTrying} ended. */
export type AftercareResult<T> = { kind: "done"; value: T } | { kind: "gave_up"; error: unknown; attempts: number };

/**
 * Runs `attempt` until it succeeds, retrying failures for which `shouldRetry` holds with
 * exponential backoff (kernel/events/backoff.ts) until `retry.budgetMs` has passed. For what a
 * run owes after its stream ended — its records, settling its quota — while the database or
 * metering is down: such writes are retried until the dependency is back, not dropped.
 */
export async function keepTrying<T>(
  attempt: (n: number) => Promise<T>,
  options: {
    retry?: AftercareRetry;
    shouldRetry: (err: unknown) => boolean;
    onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  },
): Promise<AftercareResult<T>> {
  const retry = options.retry ?? DEFAULT_AFTERCARE_RETRY;
  const deadline = performance.now() + retry.budgetMs;
  for (let n = 1; ; n++) {
    try {
      return { kind: "done", value: await attempt(n) };
    } catch (err) {
      const delay = retryDelayMs(n, { initialMs: retry.initialMs, maxMs: retry.maxMs });
      if (!options.shouldRetry(err) || performance.now() + delay > deadline) return { kind: "gave_up", error: err, attempts: n };
      options.onRetry?.(err, n, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
