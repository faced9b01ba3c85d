import { randomUUID } from "node:crypto";
import { advisoryKey } from "../db/advisory-key.js";
import { PG_ERRORS, pgErrorCode, pgErrorConstraint } from "../db/pg-error.js";
import type { Queryable, Tx } from "../db/ports.js";
import { domainError } from "../errors.js";
import { currentEventMetadata, metadataFromJson, metadataToJson } from "./event-metadata.js";
import { domainOf, eventsAppended } from "./metrics.js";
import type { EventMetadata, NewEvent, RecordedEvent } from "./ports.js";
import { assertTopic, topicOfType } from "./topics.js";
import { currentSchemaVersion, upcast } from "./upcasters.js";

/**
 * What the appender believes the stream's current version is:
 * - a number: exactly that many events exist (0 = the stream is new);
 * - "no_stream": the stream has no events yet (same as 0);
 * - "any": append after whatever is there (no optimistic check).
 */
export type ExpectedVersion = number | "any" | "no_stream";

/** Options of {@link appendToStream}. */
export interface AppendOptions {
  /** Metadata for every appended event (e.g. tenantId, actor); request ids and trace context are added. */
  metadata?: EventMetadata;
}

/**
 * Appends serialize on this transaction-scoped lock, so global positions are handed out in
 * commit order: a reader that has seen position N will never later find a committed N-1.
 * That is what lets the relay and the local bus checkpoint a single number. The price is that
 * event-appending transactions commit one at a time — append as the last step of a transaction.
 */
const APPEND_LOCK = advisoryKey("nexus.events.append");

/**
 * The unique (stream_id, version) index a conflicting append trips: each hash partition's own
 * (`events_p07_stream_id_version_key`, the name PostgreSQL reports), or the parent's name.
 */
const STREAM_VERSION_CONSTRAINT = /^events(_p\d{2}_stream_id_version_key|_stream_version_key)$/;
/** Event ids are globally unique through `platform.event_ids` (written with the events). */
const EVENT_ID_CONSTRAINT = "event_ids_pkey";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface EventRow {
  position: bigint;
  event_id: string;
  stream_id: string;
  version: number;
  type: string;
  topic: string;
  payload: unknown;
  metadata: unknown;
  occurred_at: Date;
}

const COLUMNS = "position, event_id, stream_id, version, type, topic, payload, metadata, occurred_at";

/** A stored row as the event it is, upgraded to its type's current shape (upcasters.ts). */
function toRecorded(row: EventRow): RecordedEvent {
  return upcast({
    position: BigInt(row.position),
    eventId: row.event_id,
    streamId: row.stream_id,
    version: row.version,
    type: row.type,
    topic: row.topic,
    payload: row.payload,
    metadata: metadataFromJson(row.metadata),
    occurredAt: row.occurred_at instanceof Date ? row.occurred_at : new Date(row.occurred_at),
  });
}

function invalid(message: string, field: string): Error {
  return domainError("INVALID_ARGUMENT", message, { field });
}

function conflict(streamId: string, expected: ExpectedVersion, actual: number | undefined, cause?: unknown): Error {
  const metadata: Record<string, string> = { stream_id: streamId, expected_version: String(expected) };
  if (actual !== undefined) metadata.actual_version = String(actual);
  const seen = actual === undefined ? "another writer appended first" : `it is at version ${actual}`;
  return domainError(
    "CONCURRENCY_CONFLICT",
    `stream ${streamId} changed concurrently: expected version ${expected}, but ${seen}; re-read and retry`,
    metadata,
    cause === undefined ? {} : { cause },
  );
}

/** The stream's current version (0 when it has no events). */
export async function streamVersion(db: Queryable, streamId: string): Promise<number> {
  const { rows } = await db.query<{ version: number }>(
    "SELECT coalesce(max(version), 0)::int AS version FROM platform.events WHERE stream_id = $1",
    [streamId],
  );
  return rows[0]?.version ?? 0;
}

/**
 * Appends events to a stream inside the caller's transaction — the same transaction as the
 * state change, which makes `platform.events` the transactional outbox: the events exist if and
 * only if the state change committed.
 *
 * Fails with ABORTED / CONCURRENCY_CONFLICT when the stream is not at `expectedVersion`,
 * including when two transactions race at the same version (the loser waits for the winner's
 * commit, then sees the new version; a stale snapshot still trips the unique (stream, version)
 * constraint, which is translated too). After a conflict the transaction is unusable: roll it
 * back (throwing out of `db.transaction` does) and retry the command from a fresh read.
 *
 * Metadata: request/correlation ids and trace context are captured from the current scope;
 * `options.metadata` and each event's own metadata override them.
 */
export async function appendToStream(
  tx: Tx,
  streamId: string,
  expectedVersion: ExpectedVersion,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<RecordedEvent[]> {
  if (!streamId || streamId.length > 512) throw invalid("stream id must be 1 to 512 characters", "stream_id");
  if (typeof expectedVersion === "number" && (!Number.isInteger(expectedVersion) || expectedVersion < 0)) {
    throw invalid(`expected version must be a non-negative integer, "any" or "no_stream"`, "expected_version");
  }
  if (events.length === 0) return [];
  const base = currentEventMetadata(options.metadata);
  const prepared = events.map((e, i) => {
    if (!e.type) throw invalid(`event ${i} has no type`, "type");
    if (e.eventId !== undefined && !UUID.test(e.eventId)) throw invalid(`event ${i}: event id must be a UUID`, "event_id");
    const topic = e.topic ?? topicOfType(e.type);
    assertTopic(topic);
    const payload = JSON.stringify(e.payload ?? null);
    return {
      eventId: e.eventId ?? randomUUID(),
      type: e.type,
      topic,
      payload,
      metadata: JSON.stringify(metadataToJson({ ...base, ...schemaOf(e.type), ...dropUndefined(e.metadata) })),
      occurredAt: e.occurredAt ?? null,
    };
  });

  await tx.query("SELECT pg_advisory_xact_lock($1)", [APPEND_LOCK]);
  // The version check and the insert are one statement (its snapshot is taken after the lock
  // above, so it sees every committed append): one round trip less while the global lock is
  // held. No row inserted means the stream is not at the expected version.
  const expected = expectedVersion === "no_stream" ? 0 : expectedVersion;
  const params: unknown[] = [streamId, expected === "any" ? null : expected];
  const values = prepared.map((e, i) => {
    params.push(e.eventId, e.type, e.topic, e.payload, e.metadata, e.occurredAt);
    const n = 2 + i * 6;
    return `($${n + 1}::uuid, ${i + 1}, $${n + 2}, $${n + 3}, $${n + 4}::jsonb, $${n + 5}::jsonb, $${n + 6}::timestamptz)`;
  });
  let rows: EventRow[];
  try {
    ({ rows } = await tx.query<EventRow>(
      `WITH current AS (
         SELECT coalesce(max(version), 0)::int AS v FROM platform.events WHERE stream_id = $1
       ), at AS (
         SELECT v FROM current WHERE $2::int IS NULL OR v = $2::int
       ), appended AS (
         INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata, occurred_at)
         SELECT x.event_id, $1, at.v + x.ord, x.type, x.topic, x.payload, x.metadata, coalesce(x.occurred_at, now())
           FROM at, (VALUES ${values.join(", ")}) AS x(event_id, ord, type, topic, payload, metadata, occurred_at)
          ORDER BY x.ord
         RETURNING ${COLUMNS}
       ), ids AS (
         INSERT INTO platform.event_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM appended
       )
       SELECT ${COLUMNS} FROM appended`,
      params,
    ));
  } catch (err) {
    if (pgErrorCode(err) === PG_ERRORS.UNIQUE_VIOLATION) {
      const constraint = pgErrorConstraint(err);
      if (constraint !== undefined && STREAM_VERSION_CONSTRAINT.test(constraint)) throw conflict(streamId, expectedVersion, undefined, err);
      if (constraint === EVENT_ID_CONSTRAINT) {
        throw domainError("ALREADY_EXISTS", "an event with this id was already appended", { stream_id: streamId }, { cause: err });
      }
    }
    throw err;
  }
  if (rows.length === 0) throw conflict(streamId, expectedVersion, await streamVersion(tx, streamId));
  for (const e of prepared) eventsAppended.inc({ domain: domainOf(e.topic) });
  return rows.map(toRecorded).sort((a, b) => a.version - b.version);
}

/** The shape version stamped on a new event of `type` (none while the type has no upcasters). */
function schemaOf(type: string): EventMetadata {
  const v = currentSchemaVersion(type);
  return v > 1 ? { schemaVersion: String(v) } : {};
}

function dropUndefined(meta: EventMetadata | undefined): EventMetadata {
  const out: EventMetadata = {};
  for (const [k, v] of Object.entries(meta ?? {}) as [keyof EventMetadata, string | undefined][]) {
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** A stream's events from `fromVersion` (inclusive, default 1), oldest first. */
export async function readStream(db: Queryable, streamId: string, fromVersion = 1, limit?: number): Promise<RecordedEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT ${COLUMNS} FROM platform.events
     WHERE stream_id = $1 AND version >= $2
     ORDER BY version
     ${limit === undefined ? "" : "LIMIT $3"}`,
    limit === undefined ? [streamId, fromVersion] : [streamId, fromVersion, limit],
  );
  return rows.map(toRecorded);
}

/**
 * Every stream's events in global order, strictly after `afterPosition` (0n = from the start),
 * at most `limit` (default 500). Positions have gaps (rolled-back appends), never late arrivals,
 * so "the last position I processed" is a complete checkpoint.
 */
export async function readAll(db: Queryable, afterPosition: bigint = 0n, limit = 500): Promise<RecordedEvent[]> {
  const { rows } = await db.query<EventRow>(`SELECT ${COLUMNS} FROM platform.events WHERE position > $1 ORDER BY position LIMIT $2`, [
    afterPosition,
    limit,
  ]);
  return rows.map(toRecorded);
}

/** One event by id, or undefined. */
export async function readEvent(db: Queryable, eventId: string): Promise<RecordedEvent | undefined> {
  if (!UUID.test(eventId)) return undefined;
  // event_ids holds the stream and position (events has no index on event_id: one random-UUID
  // index per append is enough). Two statements, so the second names the stream and is planned
  // for its one partition (a join would plan all 16: ~0.5 ms against ~0.1).
  const { rows: ids } = await db.query<{ stream_id: string; position: bigint }>(
    "SELECT stream_id, position FROM platform.event_ids WHERE event_id = $1",
    [eventId],
  );
  const id = ids[0];
  if (id === undefined) return undefined;
  const { rows } = await db.query<EventRow>(`SELECT ${COLUMNS} FROM platform.events WHERE stream_id = $1 AND position = $2`, [
    id.stream_id,
    id.position,
  ]);
  return rows[0] ? toRecorded(rows[0]) : undefined;
}

/** The event at a global position, or undefined. */
export async function readEventAt(db: Queryable, position: bigint): Promise<RecordedEvent | undefined> {
  const { rows } = await db.query<EventRow>(`SELECT ${COLUMNS} FROM platform.events WHERE position = $1`, [position]);
  return rows[0] ? toRecorded(rows[0]) : undefined;
}

/** The highest position in the store (0n when empty). */
export async function lastPosition(db: Queryable): Promise<bigint> {
  const { rows } = await db.query<{ position: bigint }>("SELECT coalesce(max(position), 0)::int8 AS position FROM platform.events");
  return rows[0]?.position ?? 0n;
}

/** Which events {@link readTenantEvents} returns. */
export interface TenantEventQuery {
  tenantId: string;
  /** Strictly after this position. */
  afterPosition: bigint;
  /** At most up to this position (inclusive). */
  upToPosition: bigint;
  /** Only these streams (empty: all). */
  streamIds?: readonly string[];
  /** Only these types, as stored or upcast (empty: all). */
  types?: readonly string[];
  limit: number;
}

/** A page of {@link readTenantEvents}. */
export interface TenantEventPage {
  /** The matching events, oldest first. */
  events: RecordedEvent[];
  /** The position read up to: `upToPosition` when the page was not full, else the last row's. */
  readTo: bigint;
}

/**
 * One tenant's events (by `metadata.tenant_id`) in global order within (after, upTo], at most
 * `limit` rows, upgraded to their current shape. With `upTo` read from {@link lastPosition}
 * first, "nothing more up to upTo" is a complete answer (positions are handed out in commit
 * order); continue from `readTo`.
 */
export async function readTenantEvents(db: Queryable, q: TenantEventQuery): Promise<TenantEventPage> {
  const params: unknown[] = [q.afterPosition, q.upToPosition, q.tenantId];
  const where = ["position > $1", "position <= $2", "metadata->>'tenant_id' = $3"];
  if (q.streamIds && q.streamIds.length > 0) where.push(`stream_id = ANY($${params.push([...q.streamIds])}::text[])`);
  const { rows } = await db.query<EventRow>(
    `SELECT ${COLUMNS} FROM platform.events WHERE ${where.join(" AND ")} ORDER BY position LIMIT $${params.push(q.limit)}`,
    params,
  );
  const all = rows.map(toRecorded);
  const readTo = rows.length < q.limit ? q.upToPosition : (all[all.length - 1]?.position ?? q.upToPosition);
  // Types are matched after upcasting, so a watcher of the current type also gets renamed old events.
  const events = q.types && q.types.length > 0 ? all.filter((e) => q.types!.includes(e.type)) : all;
  return { events, readTo };
}

/** Which events {@link readStreamBetween} returns. */
export interface StreamRangeQuery {
  streamId: string;
  /** Only events carrying this tenant (metadata.tenant_id). */
  tenantId: string;
  /** occurred_at ≥ from. */
  from: Date;
  /** occurred_at < to. */
  to: Date;
  /** Only versions above this one (continuations). */
  afterVersion: number;
  limit: number;
}

/**
 * A stream's events that happened in [from, to), oldest first, after `afterVersion`, at most
 * `limit` (temporal history reads), upgraded to their current shape. Only the events of
 * `tenantId`: another tenant's stream reads as empty.
 */
export async function readStreamBetween(db: Queryable, q: StreamRangeQuery): Promise<RecordedEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT ${COLUMNS} FROM platform.events
     WHERE stream_id = $1 AND version > $2 AND metadata->>'tenant_id' = $3 AND occurred_at >= $4 AND occurred_at < $5
     ORDER BY version LIMIT $6`,
    [q.streamId, q.afterVersion, q.tenantId, q.from, q.to, q.limit],
  );
  return rows.map(toRecorded);
}

/** True when the stream has at least one event of `tenantId`. */
export async function tenantOwnsStream(db: Queryable, streamId: string, tenantId: string): Promise<boolean> {
  const { rows } = await db.query("SELECT 1 FROM platform.events WHERE stream_id = $1 AND metadata->>'tenant_id' = $2 LIMIT 1", [
    streamId,
    tenantId,
  ]);
  return rows.length > 0;
}
