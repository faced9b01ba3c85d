import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { TemporalQueryPerformedSchema } from "../../gen/nexus/events/v1/eventstore_events_pb.js";
import { recordFacts } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { readStreamBetween, tenantOwnsStream } from "../kernel/events/index.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import type { BucketStore } from "../kernel/limits/bucket-store.js";

/** The limits of temporal queries (R1.5, R12). */
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

/** One temporal history read. */
export interface HistoryQuery {
  tenantId: string;
  /** The caller's API key id (rate limit and audit). */
  keyId: string;
  streamId: string;
  from: Date;
  to: Date;
  /** Continue after this version (0 for a new query). */
  afterVersion: number;
}

/** What a history read returned. */
export interface HistoryPage {
  events: RecordedEvent[];
  partial: boolean;
  /** The last version returned (continue after it) when partial. */
  lastVersion: number;
  scanned: number;
}

/** Options of {@link StreamHistory}. */
export interface StreamHistoryOptions {
  db: Database;
  /** Rate-limit buckets (shared by replicas on PostgreSQL). */
  buckets: BucketStore;
  logger: Logger;
  clock?: () => number;
  limits?: Partial<typeof TEMPORAL_LIMITS>;
}

/**
 * Temporal history reads: a tenant's stream between two times, bounded (90-day range, 10,000
 * events or 30 s per call with a continuation), rate-limited per API key, and recorded — range,
 * duration, events scanned, partial or not — as a TemporalQueryPerformed event that the audit
 * trail turns into an entry, and in the log.
 */
export class StreamHistory {
  private readonly limits: typeof TEMPORAL_LIMITS;
  private readonly clock: () => number;

  constructor(private readonly options: StreamHistoryOptions) {
    this.limits = { ...TEMPORAL_LIMITS, ...options.limits };
    this.clock = options.clock ?? Date.now;
  }

  async read(q: HistoryQuery): Promise<HistoryPage> {
    if (q.to.getTime() - q.from.getTime() > this.limits.maxRangeMs) {
      throw domainError(
        "INVALID_ARGUMENT",
        `the time range may span at most ${this.limits.maxRangeMs / 86_400_000} days; split the query`,
        {
          field: "end_time",
        },
      );
    }
    const perSecond = this.limits.perMinute / 60;
    const taken = await this.options.buckets.take([
      { name: `temporal:${q.keyId}`, limit: { ratePerSecond: perSecond, burst: this.limits.perMinute } },
    ]);
    if (!taken.allowed) {
      throw domainError(
        "RATE_LIMITED",
        `temporal queries are limited to ${this.limits.perMinute} a minute per API key; retry in ${Math.ceil(taken.retryAfterMs / 1000)} s`,
        { limit_per_minute: this.limits.perMinute },
        { retryAfterMs: taken.retryAfterMs, headers: { "retry-after": String(Math.ceil(taken.retryAfterMs / 1000)) } },
      );
    }
    const { db } = this.options;
    if (!(await tenantOwnsStream(db, q.streamId, q.tenantId))) {
      throw domainError("NOT_FOUND", `stream ${q.streamId} not found`, { stream_id: q.streamId });
    }
    const started = this.clock();
    const events: RecordedEvent[] = [];
    let after = q.afterVersion;
    let partial = false;
    for (;;) {
      const room = this.limits.maxEvents - events.length;
      if (room <= 0) {
        partial = true;
        break;
      }
      const page = await readStreamBetween(db, { ...q, afterVersion: after, limit: Math.min(1000, room + 1) });
      const take = page.slice(0, room);
      events.push(...take);
      if (take.length > 0) after = take[take.length - 1]!.version;
      if (page.length > room) {
        partial = true;
        break;
      }
      if (page.length < Math.min(1000, room + 1)) break;
      if (this.clock() - started >= this.limits.maxMs) {
        partial = true;
        break;
      }
    }
    const durationMs = this.clock() - started;
    await db.transaction((tx) =>
      recordFacts(
        tx,
        `temporal-${q.tenantId}`,
        [
          eventOf(TemporalQueryPerformedSchema, {
            tenantId: q.tenantId,
            query: "ReadStreamHistory",
            streamId: q.streamId,
            startTime: timestampFromDate(q.from),
            endTime: timestampFromDate(q.to),
            durationMs: BigInt(Math.round(durationMs)),
            eventsScanned: BigInt(events.length),
            partial,
          }),
        ],
        { metadata: { tenantId: q.tenantId, actor: q.keyId } },
      ),
    );
    this.options.logger.info(
      { tenantId: q.tenantId, keyId: q.keyId, streamId: q.streamId, from: q.from, to: q.to, durationMs, scanned: events.length, partial },
      "temporal query",
    );
    return { events, partial, lastVersion: after, scanned: events.length };
  }
}
