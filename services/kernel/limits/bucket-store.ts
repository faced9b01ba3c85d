import type { Database } from "../db/ports.js";
import { type BucketLimit, type BucketState, type TakeResult, takeAll } from "./token-bucket.js";

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

/** Buckets in this process's memory: `nexus dev` (one process) and tests. */
export function createMemoryBucketStore(options: { now?: () => number; maxBuckets?: number } = {}): BucketStore {
  const now = options.now ?? Date.now;
  const max = options.maxBuckets ?? 100_000;
  const buckets = new Map<string, BucketState>();
  const takeNow = (requests: readonly BucketRequest[]): TakeResult => {
    const t = now();
    const states: (BucketState | undefined)[] = [];
    const limits: BucketLimit[] = [];
    for (const r of requests) {
      states.push(buckets.get(r.name));
      limits.push(r.limit);
    }
    const { result, next } = takeAll(states, limits, t);
    for (let i = 0; i < requests.length; i++) {
      const name = requests[i]!.name;
      buckets.delete(name); // re-insert: the Map's order is then least recently used first
      buckets.set(name, next[i]!);
    }
    while (buckets.size > max) buckets.delete(buckets.keys().next().value as string);
    return result;
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
