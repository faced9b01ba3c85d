import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { TemporalQueryPerformedSchema } from "../../../gen/nexus/events/v1/eventstore_events_pb.js";
import type { Database } from "../db/ports.js";
import { domainError } from "../errors.js";
import type { BucketStore } from "../limits/bucket-store.js";
import { appendToStream } from "./event-store.js";
import { eventOf } from "./protobuf-event.js";

/**
 * The rules every temporal query obeys (R1.5, R6.4, R12), whichever service serves it: a
 * bounded time range, a per-key rate limit, a cut-off with a continuation, and an audit record
 * of each call (a TemporalQueryPerformed event, which the audit trail turns into an entry).
 */
export const TEMPORAL_LIMITS = Object.freeze({
  /** Longest time range of one query. */
  maxRangeMs: 90 * 24 * 3600_000,
  /** Events one call scans before it stops with a continuation. */
  maxEvents: 10_000,
  /** Time one call runs before it stops with a continuation. */
  maxMs: 30_000,
  /** Calls per minute per API key. */
  perMinute: 10,
});

/** The limits of temporal queries, with overrides (tests). */
export type TemporalLimits = typeof TEMPORAL_LIMITS;

/** Refuses a range longer than the limit (INVALID_ARGUMENT naming `field`). */
export function assertTemporalRange(from: Date, to: Date, limits: TemporalLimits = TEMPORAL_LIMITS, field = "end_time"): void {
  if (to.getTime() - from.getTime() > limits.maxRangeMs) {
    throw domainError("INVALID_ARGUMENT", `the time range may span at most ${limits.maxRangeMs / 86_400_000} days; split the query`, {
      field,
    });
  }
}

/** Takes one call from the key's temporal-query bucket, or refuses with RESOURCE_EXHAUSTED RATE_LIMITED. */
export async function admitTemporalQuery(buckets: BucketStore, keyId: string, limits: TemporalLimits = TEMPORAL_LIMITS): Promise<void> {
  const taken = await buckets.take([
    { name: `temporal:${keyId}`, limit: { ratePerSecond: limits.perMinute / 60, burst: limits.perMinute } },
  ]);
  if (taken.allowed) return;
  const seconds = Math.ceil(taken.retryAfterMs / 1000);
  throw domainError(
    "RATE_LIMITED",
    `temporal queries are limited to ${limits.perMinute} a minute per API key; retry in ${seconds} s`,
    { limit_per_minute: limits.perMinute },
    { retryAfterMs: taken.retryAfterMs, headers: { "retry-after": String(seconds) } },
  );
}

/** One temporal query as the audit trail records it. */
export interface TemporalQueryRecord {
  tenantId: string;
  /** The caller's API key id. */
  keyId: string;
  /** The RPC, e.g. "ReadStreamHistory". */
  query: string;
  streamId: string;
  /** The range read (a point-in-time read sets only `to`). */
  from?: Date;
  to?: Date;
  /** The version read up to (point-in-time reads by version). */
  atVersion?: number;
  durationMs: number;
  scanned: number;
  partial: boolean;
}

/** Records a temporal query: a TemporalQueryPerformed fact on `temporal-<tenant>`, and a log line. */
export async function recordTemporalQuery(db: Database, logger: Logger, r: TemporalQueryRecord): Promise<void> {
  await db.transaction((tx) =>
    appendToStream(
      tx,
      `temporal-${r.tenantId}`,
      "any",
      [
        eventOf(TemporalQueryPerformedSchema, {
          tenantId: r.tenantId,
          query: r.query,
          streamId: r.streamId,
          ...(r.from ? { startTime: timestampFromDate(r.from) } : {}),
          ...(r.to ? { endTime: timestampFromDate(r.to) } : {}),
          atVersion: BigInt(r.atVersion ?? 0),
          durationMs: BigInt(Math.round(r.durationMs)),
          eventsScanned: BigInt(r.scanned),
          partial: r.partial,
        }),
      ],
      { metadata: { tenantId: r.tenantId, actor: r.keyId } },
    ),
  );
  logger.info({ ...r }, "temporal query");
}
