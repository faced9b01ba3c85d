import type { Logger } from "pino";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { readStreamBetween, tenantOwnsStream } from "../kernel/events/index.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import {
  admitTemporalQuery,
  assertTemporalRange,
  recordTemporalQuery,
  TEMPORAL_LIMITS,
  type TemporalLimits,
} from "../kernel/events/temporal-queries.js";
import type { BucketStore } from "../kernel/limits/bucket-store.js";

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
  limits?: Partial<TemporalLimits>;
}

/**
 * Temporal history reads: a tenant's stream between two times, bounded (90-day range, 10,000
 * events or 30 s per call with a continuation), rate-limited per API key, and recorded — range,
 * duration, events scanned, partial or not — as a TemporalQueryPerformed event that the audit
 * trail turns into an entry, and in the log.
 */
export class StreamHistory {
  private readonly limits: TemporalLimits;
  private readonly clock: () => number;

  constructor(private readonly options: StreamHistoryOptions) {
    this.limits = { ...TEMPORAL_LIMITS, ...options.limits };
    this.clock = options.clock ?? Date.now;
  }

  async read(q: HistoryQuery): Promise<HistoryPage> {
    assertTemporalRange(q.from, q.to, this.limits);
    await admitTemporalQuery(this.options.buckets, q.keyId, this.limits);
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
    await recordTemporalQuery(db, this.options.logger, {
      tenantId: q.tenantId,
      keyId: q.keyId,
      query: "ReadStreamHistory",
      streamId: q.streamId,
      from: q.from,
      to: q.to,
      durationMs,
      scanned: events.length,
      partial,
    });
    return { events, partial, lastVersion: after, scanned: events.length };
  }
}
