import type { Queryable } from "../db/ports.js";
import { counter, histogram } from "../metrics.js";

/**
 * Snapshots of event-sourced aggregates (R3): the state at a version, stored in
 * `platform.snapshots` — apart from the log, one row per stream, overwritten by newer ones.
 * A snapshot is a cache: deleting it (or it being unreadable) only makes the next
 * rehydration replay the whole stream, which then takes a fresh one.
 */

/** When and how an aggregate's state is snapshotted. */
export interface SnapshotPolicy<S> {
  /** The aggregate's kind, e.g. "tenant": stored with the snapshot and the metrics' label. */
  aggregate: string;
  /**
   * The version of the snapshot's shape. Bump it whenever `toSnapshot`'s output changes;
   * `fromSnapshot` then receives older snapshots with their version to upgrade or refuse.
   */
  schemaVersion: number;
  /** The state as JSON (Dates as ISO strings, bigints as strings: whatever `fromSnapshot` reads back). */
  toSnapshot(state: S): unknown;
  /**
   * The state from a stored snapshot written with `schemaVersion` (≤ the policy's). Return
   * undefined (or throw) when it cannot be read: it is discarded and the state rebuilt from
   * the stream.
   */
  fromSnapshot(data: unknown, schemaVersion: number): S | undefined;
  /** Take a snapshot once this many events were appended since the last one. Default 100 (NEXUS_SNAPSHOT_EVERY_EVENTS). */
  everyEvents?: number;
  /** … or once the payloads appended since the last one reach this many bytes. Default 256 KiB (NEXUS_SNAPSHOT_EVERY_BYTES). */
  everyBytes?: number;
  /** … or when the last one (or, without one, the stream's first event) is older than this and events were appended since. Default 24 h (NEXUS_SNAPSHOT_MAX_AGE_MS). */
  maxAgeMs?: number;
}

/** Built-in defaults of {@link SnapshotPolicy}'s thresholds (NEXUS_SNAPSHOT_* change them per process). */
export const SNAPSHOT_DEFAULTS = Object.freeze({ everyEvents: 100, everyBytes: 256 * 1024, maxAgeMs: 24 * 3600_000 });

/** The thresholds a policy that sets none uses. */
export type SnapshotThresholds = { everyEvents: number; everyBytes: number; maxAgeMs: number };

let configured: SnapshotThresholds = { ...SNAPSHOT_DEFAULTS };

/**
 * Sets this process's default snapshot thresholds (the runtime calls it with
 * NEXUS_SNAPSHOT_EVERY_EVENTS, NEXUS_SNAPSHOT_EVERY_BYTES and NEXUS_SNAPSHOT_MAX_AGE_MS); a
 * policy's own fields still win. Without arguments, back to {@link SNAPSHOT_DEFAULTS} (tests).
 */
export function configureSnapshotThresholds(thresholds: Partial<SnapshotThresholds> = SNAPSHOT_DEFAULTS): void {
  configured = { ...SNAPSHOT_DEFAULTS, ...thresholds };
}

/** The default thresholds in effect in this process. */
export function snapshotThresholds(): Readonly<SnapshotThresholds> {
  return configured;
}

/** A stored snapshot. */
export interface StoredSnapshot {
  streamId: string;
  aggregate: string;
  version: number;
  schemaVersion: number;
  state: unknown;
  sizeBytes: number;
  takenAt: Date;
}

/** Which threshold made a snapshot be taken. */
export type SnapshotTrigger = "count" | "size" | "age";

/** Snapshots taken, by aggregate and trigger (frequency: rate() of it). */
export const snapshotsTaken = counter(
  "nexus_snapshots_taken_total",
  "Aggregate snapshots taken, by aggregate and threshold that triggered it.",
  ["aggregate", "trigger"],
);

/** Snapshots that could not be used, by aggregate and reason (schema_newer, unreadable). */
export const snapshotsDiscarded = counter(
  "nexus_snapshots_discarded_total",
  "Aggregate snapshots discarded on load (written by a newer schema, or unreadable); the state was rebuilt from the stream.",
  ["aggregate", "reason"],
);

/** Size of the snapshots taken, in bytes. */
export const snapshotSize = histogram(
  "nexus_snapshot_size_bytes",
  "Size of aggregate snapshots taken, in bytes.",
  ["aggregate"],
  [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304],
);

/** Time to rehydrate an aggregate (read snapshot + replay), by aggregate and whether a snapshot was used. */
export const rehydrationSeconds = histogram(
  "nexus_rehydration_seconds",
  "Time to rehydrate an aggregate from its snapshot and stream, by aggregate and source (snapshot, stream).",
  ["aggregate", "source"],
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
);

/** Events replayed per rehydration. */
export const rehydrationEvents = histogram(
  "nexus_rehydration_events",
  "Events replayed through evolve per rehydration (after the snapshot, if any).",
  ["aggregate"],
  [0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000],
);

interface SnapshotRow {
  stream_id: string;
  aggregate: string;
  version: number;
  schema_version: number;
  state: unknown;
  size_bytes: number;
  taken_at: Date;
}

/** The latest snapshot of a stream at or below `maxVersion` (default: any), or undefined. */
export async function loadSnapshot(db: Queryable, streamId: string, maxVersion?: number): Promise<StoredSnapshot | undefined> {
  const { rows } = await db.query<SnapshotRow>(
    `SELECT stream_id, aggregate, version, schema_version, state, size_bytes, taken_at FROM platform.snapshots
     WHERE stream_id = $1 ${maxVersion === undefined ? "" : "AND version <= $2"}`,
    maxVersion === undefined ? [streamId] : [streamId, maxVersion],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    streamId: r.stream_id,
    aggregate: r.aggregate,
    version: r.version,
    schemaVersion: r.schema_version,
    state: r.state,
    sizeBytes: r.size_bytes,
    takenAt: r.taken_at instanceof Date ? r.taken_at : new Date(r.taken_at),
  };
}

/** Stores a snapshot unless a newer one is there; returns its size in bytes. */
export async function saveSnapshot(
  db: Queryable,
  snapshot: { streamId: string; aggregate: string; version: number; schemaVersion: number; state: unknown },
): Promise<number> {
  const json = JSON.stringify(snapshot.state ?? null);
  const size = Buffer.byteLength(json);
  await db.query(
    `INSERT INTO platform.snapshots (stream_id, aggregate, version, schema_version, state, size_bytes)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6)
     ON CONFLICT (stream_id) DO UPDATE SET aggregate = excluded.aggregate, version = excluded.version,
       schema_version = excluded.schema_version, state = excluded.state, size_bytes = excluded.size_bytes, taken_at = now()
     WHERE platform.snapshots.version < excluded.version OR platform.snapshots.schema_version <> excluded.schema_version`,
    [snapshot.streamId, snapshot.aggregate, snapshot.version, snapshot.schemaVersion, json, size],
  );
  return size;
}

/** Deletes a stream's snapshot (an operator's or a test's way to force a full replay). */
export async function deleteSnapshot(db: Queryable, streamId: string): Promise<void> {
  await db.query("DELETE FROM platform.snapshots WHERE stream_id = $1", [streamId]);
}

/**
 * Which threshold, if any, says a snapshot is due: `eventsSince` and `bytesSince` count what
 * was appended after the last snapshot (or since the stream began), `since` is when that
 * snapshot was taken (or the stream's first event happened).
 */
export function snapshotDue(
  policy: Pick<SnapshotPolicy<unknown>, "everyEvents" | "everyBytes" | "maxAgeMs">,
  progress: { eventsSince: number; bytesSince: number; since: Date | undefined; now: Date },
): SnapshotTrigger | undefined {
  if (progress.eventsSince <= 0) return undefined;
  if (progress.eventsSince >= (policy.everyEvents ?? configured.everyEvents)) return "count";
  if (progress.bytesSince >= (policy.everyBytes ?? configured.everyBytes)) return "size";
  const age = progress.since === undefined ? 0 : progress.now.getTime() - progress.since.getTime();
  if (age >= (policy.maxAgeMs ?? configured.maxAgeMs)) return "age";
  return undefined;
}
