/** Bounds of an exponential backoff. */
export interface BackoffBounds {
  /** Delay after the first failure. */
  initialMs: number;
  /** Longest delay. */
  maxMs: number;
  /**
   * Spread the delay over [½, 1) of its value so clients failing together do not retry
   * together. Default false (a bus redelivery is already spread by its own schedule).
   */
  jitter?: boolean;
}

/**
 * THE exponential backoff of Nexus: the delay before attempt `attempt + 1` after `attempt`
 * failures in a row, `min(initialMs × 2^(attempt-1), maxMs)` — initial, ×2, ×4 … capped. An
 * `attempt` below 1 counts as 1. Used by the buses' redelivery (`nak(delay)`), every
 * reconnect/resubscribe loop, the operator's work queue and the retry policy's backoff.
 * `random` is for tests (default `Math.random`).
 */
export function backoffDelayMs(attempt: number, bounds: BackoffBounds, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.min(Math.floor(attempt) - 1, 40));
  const delay = Math.min(bounds.initialMs * 2 ** exponent, bounds.maxMs);
  return bounds.jitter ? delay * (0.5 + random() / 2) : delay;
}
