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

/**
 * Takes `cost` from every bucket at once, or from none: a call passes only when all its
 * buckets (its key's and its tenant's) hold the cost. Pure; the stores apply it atomically.
 */
export function takeAll(
  states: readonly (BucketState | undefined)[],
  limits: readonly BucketLimit[],
  nowMs: number,
  cost = 1,
): { result: TakeResult; next: BucketState[] } {
  // Plain loops: this runs on every rate-limited call.
  const tokens: number[] = [];
  let refusedBy = -1;
  let retryAfterMs = 0;
  for (let i = 0; i < states.length; i++) {
    const t = tokensAt(states[i], limits[i]!, nowMs);
    tokens.push(t);
    if (t >= cost) continue;
    const wait = Math.ceil(((cost - t) / limits[i]!.ratePerSecond) * 1000);
    if (wait > retryAfterMs) {
      retryAfterMs = wait;
      refusedBy = i;
    }
  }
  const taken = refusedBy >= 0 ? 0 : cost;
  const next: BucketState[] = [];
  for (const t of tokens) next.push({ tokens: t - taken, atMs: nowMs });
  return { result: refusedBy >= 0 ? { allowed: false, refusedBy, retryAfterMs } : ALLOWED, next };
}

const ALLOWED: TakeResult = Object.freeze({ allowed: true });
