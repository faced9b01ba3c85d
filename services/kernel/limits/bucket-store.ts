import type { Database } from "../db/ports.js";
import { ALLOWED, type BucketLimit, type BucketState, refillWaitMs, type TakeResult, tokensAt } from "./token-bucket.js";

/** One bucket a call draws from: its name (scope, owner and route class) and its limit. */
export interface BucketRequest {
  name: string;
  limit: BucketLimit;
}

/** Where buckets live: in this process, or shared by every replica. */
export interface BucketStore {
  readonly kind: "memory" | "postgres";
  /** Takes one token from every bucket, or from none (atomically). */
  take(buckets: readonly BucketRequest[]): Promise<TakeResult>;
  /** The same as `take`, answered at once, for stores that need no I/O (memory): callers skip an async turn. */
  takeNow?(buckets: readonly BucketRequest[]): TakeResult;
  close(): void;
}

/** A bucket in memory: its state (updated in place) and the limit it was last taken with. */
interface MemoryBucket extends BucketState {
  limit: BucketLimit;
}

/**
 * Buckets in this process's memory: `nexus dev` (one process) and tests. A take updates the
 * buckets in place (no arrays or state objects per call). Past `maxBuckets`, buckets that have
 * refilled to their burst are dropped first (a full bucket is the same as none), then the
 * oldest, down to nine tenths of the maximum.
 */
export function createMemoryBucketStore(options: { now?: () => number; maxBuckets?: number } = {}): BucketStore {
  const now = options.now ?? Date.now;
  const max = options.maxBuckets ?? 100_000;
  const buckets = new Map<string, MemoryBucket>();
  const evict = (t: number) => {
    for (const [name, b] of buckets) if (tokensAt(b, b.limit, t) >= b.limit.burst) buckets.delete(name);
    const keep = Math.floor(max * 0.9);
    for (const name of buckets.keys()) {
      if (buckets.size <= keep) break;
      buckets.delete(name);
    }
  };
  const takeNow = (requests: readonly BucketRequest[]): TakeResult => {
    const t = now();
    let refusedBy = -1;
    let retryAfterMs = 0;
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i]!;
      const tokens = tokensAt(buckets.get(r.name), r.limit, t);
      if (tokens >= 1) continue;
      const wait = refillWaitMs(tokens, r.limit);
      if (wait > retryAfterMs) {
        retryAfterMs = wait;
        refusedBy = i;
      }
    }
    // All or nothing: a refused call takes from no bucket.
    if (refusedBy >= 0) return { allowed: false, refusedBy, retryAfterMs };
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i]!;
      const b = buckets.get(r.name);
      const tokens = tokensAt(b, r.limit, t) - 1;
      if (b === undefined) buckets.set(r.name, { tokens, atMs: t, limit: r.limit });
      else {
        b.tokens = tokens;
        b.atMs = t;
        b.limit = r.limit;
      }
    }
    if (buckets.size > max) evict(t);
    return ALLOWED;
  };
  return {
    kind: "memory",
    takeNow,
    take: async (requests) => takeNow(requests),
    close() {
      buckets.clear();
    },
  };
}

/**
 * Buckets in PostgreSQL (`platform.rate_buckets`), shared by every replica: one statement per
 * call, `platform.take_tokens`, locks the call's bucket rows in name order, refills them by the
 * database's own clock (replicas' clocks may disagree) and takes one token from each, or from
 * none. A refused bucket is remembered locally until it could hold a token again, so a client
 * hammering a limit costs the database nothing more until then.
 */
export function createPostgresBucketStore(db: Database): BucketStore {
  const refusedUntil = new Map<string, { until: number; retryAfterMs: number }>();
  return {
    kind: "postgres",
    async take(requests) {
      const now = Date.now();
      for (let i = 0; i < requests.length; i++) {
        const hit = refusedUntil.get(requests[i]!.name);
        if (hit && hit.until > now) return { allowed: false, refusedBy: i, retryAfterMs: hit.until - now };
        if (hit) refusedUntil.delete(requests[i]!.name);
      }
      // Name order everywhere: concurrent first calls insert and lock rows in the same order.
      const sorted = requests.map((r, i) => ({ r, i })).sort((a, b) => (a.r.name < b.r.name ? -1 : a.r.name > b.r.name ? 1 : 0));
      const { rows } = await db.query<{ refused_by: number; retry_after_ms: number }>(
        "SELECT refused_by, retry_after_ms FROM platform.take_tokens($1::text[], $2::float8[], $3::float8[])",
        [sorted.map((s) => s.r.name), sorted.map((s) => s.r.limit.ratePerSecond), sorted.map((s) => s.r.limit.burst)],
      );
      const row = rows[0];
      if (!row || Number(row.refused_by) < 0) return { allowed: true };
      const refusedBy = sorted[Number(row.refused_by)]!.i;
      const retryAfterMs = Math.max(1, Number(row.retry_after_ms));
      if (refusedUntil.size > 10_000) refusedUntil.clear();
      refusedUntil.set(requests[refusedBy]!.name, { until: now + retryAfterMs, retryAfterMs });
      return { allowed: false, refusedBy, retryAfterMs };
    },
    close() {
      refusedUntil.clear();
    },
  };
}
