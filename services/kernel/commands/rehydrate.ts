import { performance } from "node:perf_hooks";
import { advisoryKey } from "../db/advisory-key.js";
import type { Queryable, Tx } from "../db/ports.js";
import { readStream } from "../events/event-store.js";
import type { RecordedEvent } from "../events/ports.js";
import {
  loadSnapshot,
  rehydrationEvents,
  rehydrationSeconds,
  type SnapshotPolicy,
  type SnapshotTrigger,
  saveSnapshot,
  snapshotDue,
  snapshotSize,
  snapshotsDiscarded,
  snapshotsTaken,
} from "./snapshots.js";

/**
 * Event sourcing for real (R2): an aggregate that declares this is rebuilt from its stream —
 * snapshot, then the events after it through `evolve` — and its state table becomes a
 * projection written in the same transaction. Opt-in per aggregate (see docs/event-sourcing.md
 * for which are and why the others are not).
 */
export interface EventSourcing<S, E, K> {
  /**
   * The domain event a stored event stands for. Return undefined for events on the stream
   * that are not the aggregate's own (facts recorded on the same stream): they are skipped but
   * still count toward the version. Old event shapes are upgraded here (or by upcasters).
   */
  fromEvent(event: RecordedEvent, key: K): E | undefined;
  /** Snapshots of long streams; without a policy every rehydration replays the whole stream. */
  snapshots?: SnapshotPolicy<S>;
}

/** What an aggregate needs to be rehydrated. */
export interface Rehydratable<S, E, K> {
  streamId(key: K): string;
  evolve(state: S | undefined, event: E, key: K): S;
  eventSourcing?: EventSourcing<S, E, K>;
}

/** An aggregate's state rebuilt from its stream, with how it was rebuilt. */
export interface Rehydrated<S> {
  state: S | undefined;
  /** The stream version the state is at (0 = no events). */
  version: number;
  /** The snapshot's version the replay started from (0 = none used). */
  snapshotVersion: number;
  /** Events replayed through `evolve` (after the snapshot). */
  replayed: number;
  /** Bytes of payload replayed (what was appended since the snapshot). */
  bytesSinceSnapshot: number;
  /** When the snapshot used was taken, else when the stream's first event happened. */
  since: Date | undefined;
  /** The `occurredAt` of the last event read (undefined: none). */
  lastOccurredAt: Date | undefined;
}

/** Options of {@link rehydrate}. */
export interface RehydrateOptions {
  /** Stop at this version (temporal reads: the state as it was after N events). */
  toVersion?: number;
  /** Stop before the first event that happened after this instant (temporal reads). */
  asOf?: Date;
  /** Start from the latest usable snapshot (default true). */
  useSnapshots?: boolean;
}

const PAGE = 1000;

/** The metrics label of an aggregate: its snapshot policy's name, else its stream id's prefix. */
function aggregateLabel<S, E, K>(aggregate: Rehydratable<S, E, K>, streamId: string): string {
  return aggregate.eventSourcing?.snapshots?.aggregate ?? streamId.split("-", 1)[0] ?? streamId;
}

/**
 * Rebuilds an aggregate from its stream: the latest usable snapshot (unless `useSnapshots` is
 * false, or it lies beyond `toVersion`, or — with `asOf` — one of its events happened after
 * that instant), then the events after it, page by page, through
 * `evolve`. A snapshot written by a newer schema, or one `fromSnapshot` refuses, is discarded
 * (counted) and the whole stream replayed. Works in or out of a transaction.
 */
export async function rehydrate<S, E, K>(
  db: Queryable,
  aggregate: Rehydratable<S, E, K>,
  key: K,
  options: RehydrateOptions = {},
): Promise<Rehydrated<S>> {
  const es = aggregate.eventSourcing;
  if (!es) throw new Error("rehydrate: the aggregate does not declare eventSourcing");
  const streamId = aggregate.streamId(key);
  const label = aggregateLabel(aggregate, streamId);
  const started = performance.now();
  let state: S | undefined;
  let version = 0;
  let snapshotVersion = 0;
  let since: Date | undefined;
  const policy = es.snapshots;
  if (policy && options.useSnapshots !== false) {
    const found = await loadSnapshot(db, streamId, options.toVersion);
    // As of an instant: only a snapshot whose events all happened by then (the replay below
    // stops at the first event after it, so the state it would reach includes the snapshot's).
    const snap =
      found && options.asOf !== undefined && (await happenedAfter(db, streamId, found.version, options.asOf)) ? undefined : found;
    if (snap) {
      let restored: S | undefined;
      let reason: string | undefined;
      if (snap.schemaVersion > policy.schemaVersion) reason = "schema_newer";
      else {
        try {
          restored = policy.fromSnapshot(snap.state, snap.schemaVersion);
        } catch {
          restored = undefined;
        }
        if (restored === undefined) reason = "unreadable";
      }
      if (reason === undefined) {
        state = restored;
        version = snap.version;
        snapshotVersion = snap.version;
        since = snap.takenAt;
      } else {
        snapshotsDiscarded.inc({ aggregate: label, reason });
      }
    }
  }
  let replayed = 0;
  let bytes = 0;
  let lastOccurredAt: Date | undefined;
  for (;;) {
    const limit = options.toVersion === undefined ? PAGE : Math.min(PAGE, options.toVersion - version);
    if (limit <= 0) break;
    const page = await readStream(db, streamId, version + 1, limit);
    let stop = false;
    for (const recorded of page) {
      if (options.asOf !== undefined && recorded.occurredAt.getTime() > options.asOf.getTime()) {
        stop = true;
        break;
      }
      since ??= recorded.occurredAt;
      const event = es.fromEvent(recorded, key);
      if (event !== undefined) {
        state = aggregate.evolve(state, event, key);
        replayed += 1;
      }
      bytes += Buffer.byteLength(JSON.stringify(recorded.payload ?? null));
      version = recorded.version;
      lastOccurredAt = recorded.occurredAt;
    }
    if (stop || page.length < limit) break;
  }
  rehydrationSeconds.observe(
    { aggregate: label, source: snapshotVersion > 0 ? "snapshot" : "stream" },
    (performance.now() - started) / 1000,
  );
  rehydrationEvents.observe({ aggregate: label }, replayed);
  return { state, version, snapshotVersion, replayed, bytesSinceSnapshot: bytes, since, lastOccurredAt };
}

/** Whether any of the stream's first `version` events happened after `instant` (an index range scan, no payloads). */
async function happenedAfter(db: Queryable, streamId: string, version: number, instant: Date): Promise<boolean> {
  const { rows } = await db.query<{ later: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM platform.events WHERE stream_id = $1 AND version <= $2 AND occurred_at > $3) AS later",
    [streamId, version, instant],
  );
  return rows[0]?.later === true;
}

/**
 * Serialises commands on one stream until the transaction ends, as `SELECT … FOR UPDATE` on a
 * state row would: an event-sourced aggregate has no row to lock before it exists, and its
 * commands must queue rather than fail on each other.
 */
export async function lockStream(tx: Tx, streamId: string): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock($1)", [advisoryKey(`nexus.stream.${streamId}`)]);
}

/**
 * After a command appended `appended` to a rehydrated aggregate, takes a snapshot of `state`
 * in the same transaction when a threshold of the policy is passed. Returns the trigger, if any.
 */
export async function snapshotIfDue<S, E, K>(
  tx: Tx,
  aggregate: Rehydratable<S, E, K>,
  key: K,
  before: Rehydrated<S>,
  after: { state: S; version: number; appended: readonly RecordedEvent[] },
  now: Date = new Date(),
): Promise<SnapshotTrigger | undefined> {
  const policy = aggregate.eventSourcing?.snapshots;
  if (!policy) return undefined;
  let bytes = before.bytesSinceSnapshot;
  for (const e of after.appended) bytes += Buffer.byteLength(JSON.stringify(e.payload ?? null));
  const trigger = snapshotDue(policy, {
    eventsSince: after.version - before.snapshotVersion,
    bytesSince: bytes,
    since: before.since ?? after.appended[0]?.occurredAt,
    now,
  });
  if (trigger === undefined) return undefined;
  const size = await saveSnapshot(tx, {
    streamId: aggregate.streamId(key),
    aggregate: policy.aggregate,
    version: after.version,
    schemaVersion: policy.schemaVersion,
    state: policy.toSnapshot(after.state),
  });
  snapshotsTaken.inc({ aggregate: policy.aggregate, trigger });
  snapshotSize.observe({ aggregate: policy.aggregate }, size);
  return trigger;
}
