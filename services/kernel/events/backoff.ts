import { backoffDelayMs } from "../resilience/backoff.js";
import type { BackoffOptions } from "./ports.js";

/** First retry delay after a failed delivery. */
export const DEFAULT_BACKOFF_INITIAL_MS = 1_000;
/** Longest retry delay (5 minutes). */
export const DEFAULT_BACKOFF_MAX_MS = 300_000;

/**
 * Delay before redelivering a message whose `deliveryCount`-th delivery failed: the kernel's
 * one backoff ({@link backoffDelayMs}) with the buses' defaults — 1 s, 2 s, 4 s … 5 min.
 * On NATS it is passed to `nak(delay)`: a bare `nak()` ignores the consumer's BackOff and
 * redelivers at once (nats-server#5856).
 */
export function retryDelayMs(deliveryCount: number, options: BackoffOptions = {}): number {
  return backoffDelayMs(deliveryCount, {
    initialMs: options.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS,
    maxMs: options.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
    ...(options.jitter ? { jitter: true } : {}),
  });
}
