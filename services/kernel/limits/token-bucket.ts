/** A bucket's sustained rate (tokens per second) and capacity (burst). */
export interface BucketLimit {
  ratePerSecond: number;
  burst: number;
}

/** A bucket as stored: tokens left at a moment. */
export interface BucketState {
  tokens: number;
  atMs: number;
}

/** What taking from a set of buckets answered. */
export type TakeResult =
  | { allowed: true }
  | {
      allowed: false;
      /** Index (in the request) of the bucket that refused; the longest wait when several did. */
      refusedBy: number;
      /** How long until the refusing bucket holds the cost. */
      retryAfterMs: number;
    };

/** A bucket's tokens at `nowMs`: refilled at its rate since it was stored, capped at its burst. */
export function tokensAt(state: BucketState | undefined, limit: BucketLimit, nowMs: number): number {
  if (state === undefined) return limit.burst;
  const elapsed = Math.max(0, nowMs - state.atMs) / 1000;
  return Math.min(limit.burst, state.tokens + elapsed * limit.ratePerSecond);
}

/** How long a bucket holding `tokens` needs to refill to `cost`, in whole milliseconds. */
export function refillWaitMs(tokens: number, limit: BucketLimit, cost = 1): number {
  return Math.ceil(((cost - tokens) / limit.ratePerSecond) * 1000);
}

export const ALLOWED: TakeResult = Object.freeze({ allowed: true });
