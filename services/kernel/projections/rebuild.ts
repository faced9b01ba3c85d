import { performance } from "node:perf_hooks";
import type { Database, Queryable, Tx } from "../db/ports.js";
import { domainError } from "../errors.js";
import { lastPosition } from "../events/event-store.js";
import { counter, histogram } from "../metrics.js";
import type { Projection } from "./projection.js";

/** Events read by projection rebuilds. */
export const rebuildEvents = counter("nexus_projection_rebuild_events_total", "Events read by projection rebuilds.", ["projection"]);
/** Duration of projection rebuilds. */
export const rebuildSeconds = histogram("nexus_projection_rebuild_seconds", "Duration of projection rebuilds, shadow to swap.", [
  "projection",
]);

/** What a rebuild did. */
export interface RebuildResult {
  projection: string;
  streams: number;
  events: number;
  inserted: number;
  updated: number;
  deleted: number;
  /** Streams re-projected in the swap transaction (written while the rebuild ran). */
  caughtUp: number;
  /** Rows derived from the projection (e.g. quota windows) that the swap recomputed and changed. */
  derivedChanged: number;
  durationMs: number;
  eventsPerSecond: number;
}

/** A projection's health (`nexus projections status`). */
export interface ProjectionStatus {
  projection: string;
  table: string;
  /** "ok", "rebuilding", or "failed" (the last rebuild's error kept in `lastError`). */
  state: "ok" | "rebuilding" | "failed";
  rows: number;
  /** Rows whose version is behind their stream's. */
  behind: number;
  /** Age in seconds of the oldest event not yet reflected (0 = up to date); undefined when it could not be measured in time. */
  lagSeconds: number | undefined;
  lastRebuild?: { startedAt: Date; finishedAt?: Date; events: number; changed: number; error?: string };
}

const IDENT = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

function assertIdent(name: string): string {
  if (!IDENT.test(name)) throw new Error(`not a plain SQL identifier: ${name}`);
  return name;
}

/** FAILED_PRECONDITION when the projection's table is not there (its service never ran on this database). */
async function assertTableExists(db: Queryable, p: Projection): Promise<void> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [p.table]);
  if (rows[0]?.ok !== true) {
    throw domainError(
      "FAILED_PRECONDITION",
      `${p.table} does not exist in this database: its service has not run here (start it once to create its schema)`,
      { projection: p.name },
    );
  }
}

async function streamsUpTo(db: Queryable, p: Projection, after: bigint, upTo: bigint): Promise<{ streams: string[]; events: number }> {
  const { rows } = await db.query<{ stream_id: string; n: number }>(
    `SELECT stream_id, count(*)::int AS n FROM platform.events
     WHERE position > $1 AND position <= $2 AND starts_with(stream_id, $3)
     GROUP BY stream_id ORDER BY stream_id`,
    [after, upTo, p.streamPrefix],
  );
  return { streams: rows.map((r) => r.stream_id), events: rows.reduce((s, r) => s + r.n, 0) };
}

/**
 * Rebuilds a projection from the event log while the live table keeps serving:
 *
 * 1. a shadow table shaped like the live one is filled from every stream of the projection
 *    up to the log's current position P1 (in batches, each its own transaction);
 * 2. one swap transaction locks the live table against writers (readers go on), re-projects
 *    the streams that got events after P1 into the shadow, then makes the live table equal to
 *    the shadow — deleting, inserting and updating only the rows that differ — and drops the
 *    shadow. Readers see the old content until the commit, the rebuilt one after it.
 *
 * Commands that write the live table wait during the swap (it holds SHARE ROW EXCLUSIVE) and
 * continue afterwards against the rebuilt rows. A second rebuild of the same projection while
 * one runs fails with FAILED_PRECONDITION REBUILD_IN_PROGRESS.
 */
export async function rebuildProjection(db: Database, p: Projection, options: { batchStreams?: number } = {}): Promise<RebuildResult> {
  const table = assertIdent(p.table);
  const shadow = assertIdent(`${p.table}__rebuild`);
  const key = assertIdent(p.key);
  const cols = p.columns.map(assertIdent);
  const started = performance.now();
  await assertTableExists(db, p);
  const { rows: claimed } = await db.query(
    `INSERT INTO platform.projection_rebuilds (projection, state, started_at) VALUES ($1, 'rebuilding', now())
     ON CONFLICT (projection) DO UPDATE SET state = 'rebuilding', started_at = now(), finished_at = NULL, events = 0, changed = 0, error = NULL
     WHERE platform.projection_rebuilds.state <> 'rebuilding' OR platform.projection_rebuilds.started_at < now() - interval '1 hour'
     RETURNING projection`,
    [p.name],
  );
  if (claimed.length === 0) {
    throw domainError("FAILED_PRECONDITION", `projection ${p.name} is being rebuilt already; wait for it (nexus projections status)`, {
      projection: p.name,
    });
  }
  try {
    await db.exec(`DROP TABLE IF EXISTS ${shadow}; CREATE UNLOGGED TABLE ${shadow} (LIKE ${table} INCLUDING DEFAULTS INCLUDING INDEXES)`);
    await p.beforeRebuild?.(db);
    const p1 = await lastPosition(db);
    const initial = await streamsUpTo(db, p, 0n, p1);
    const batch = options.batchStreams ?? 500;
    for (let i = 0; i < initial.streams.length; i += batch) {
      await db.transaction((tx) => p.project(tx, shadow, initial.streams.slice(i, i + batch)));
    }
    const swap = await db.transaction(async (tx: Tx) => {
      await tx.query(`LOCK TABLE ${table} IN SHARE ROW EXCLUSIVE MODE`);
      const p2 = await lastPosition(tx);
      const late = await streamsUpTo(tx, p, p1, p2);
      if (late.streams.length > 0) await p.project(tx, shadow, late.streams);
      const derived = (await p.onSwap?.(tx, shadow)) ?? 0;
      const set = cols.filter((c) => c !== key).map((c) => `${c} = EXCLUDED.${c}`);
      const differs = cols
        .filter((c) => c !== key)
        .map((c) => `${table}.${c} IS DISTINCT FROM EXCLUDED.${c}`)
        .join(" OR ");
      const deleted = await tx.query(`DELETE FROM ${table} l WHERE NOT EXISTS (SELECT 1 FROM ${shadow} s WHERE s.${key} = l.${key})`);
      const { rows } = await tx.query<{ inserted: boolean }>(
        `INSERT INTO ${table} (${cols.join(", ")}) SELECT ${cols.join(", ")} FROM ${shadow}
         ON CONFLICT (${key}) DO UPDATE SET ${set.join(", ")} WHERE ${differs}
         RETURNING (xmax = 0) AS inserted`,
      );
      await tx.exec(`DROP TABLE ${shadow}`);
      const inserted = rows.filter((r) => r.inserted).length;
      return { late, inserted, updated: rows.length - inserted, deleted: deleted.rowCount ?? 0, derived };
    });
    await p.afterRebuild?.(db);
    const events = initial.events + swap.late.events;
    const durationMs = performance.now() - started;
    const changed = swap.inserted + swap.updated + swap.deleted;
    await db.query(
      "UPDATE platform.projection_rebuilds SET state = 'ok', finished_at = now(), events = $2, changed = $3 WHERE projection = $1",
      [p.name, events, changed],
    );
    rebuildEvents.inc({ projection: p.name }, events);
    rebuildSeconds.observe({ projection: p.name }, durationMs / 1000);
    return {
      projection: p.name,
      streams: new Set([...initial.streams, ...swap.late.streams]).size,
      events,
      inserted: swap.inserted,
      updated: swap.updated,
      deleted: swap.deleted,
      caughtUp: swap.late.streams.length,
      derivedChanged: swap.derived,
      durationMs,
      eventsPerSecond: events / Math.max(durationMs / 1000, 1e-6),
    };
  } catch (err) {
    await db
      .query("UPDATE platform.projection_rebuilds SET state = 'failed', finished_at = now(), error = $2 WHERE projection = $1", [
        p.name,
        err instanceof Error ? err.message : String(err),
      ])
      .catch(() => undefined);
    await db.exec(`DROP TABLE IF EXISTS ${shadow}`).catch(() => undefined);
    await p.afterRebuild?.(db).catch(() => undefined);
    throw err;
  }
}

/**
 * A projection's health: the last rebuild, row count, rows behind their stream and the lag in
 * seconds — the age of the oldest event a row does not reflect yet. The lag query gets
 * `budgetMs` (default 100 ms); past it the lag is reported as unknown rather than waited for.
 */
export async function projectionStatus(db: Database, p: Projection, budgetMs = 100): Promise<ProjectionStatus> {
  const table = assertIdent(p.table);
  const key = assertIdent(p.key);
  await assertTableExists(db, p);
  const { rows: last } = await db.query<{
    state: string;
    started_at: Date;
    finished_at: Date | null;
    events: string;
    changed: string;
    error: string | null;
  }>("SELECT state, started_at, finished_at, events::text, changed::text, error FROM platform.projection_rebuilds WHERE projection = $1", [
    p.name,
  ]);
  const { rows: count } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  let behind = 0;
  let lagSeconds: number | undefined;
  try {
    const measured = await db.transaction(async (tx) => {
      await tx.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(budgetMs))}`);
      if (p.measureLag) return p.measureLag(tx).then((m) => ({ behind: m.behind, lag: m.lagSeconds }));
      const version = assertIdent(p.versionColumn ?? "version");
      const { rows } = await tx.query<{ behind: number; lag: number | null }>(
        `WITH heads AS (
           SELECT stream_id, max(version) AS version FROM platform.events WHERE starts_with(stream_id, $1) GROUP BY stream_id
         ), missing AS (
           SELECT h.stream_id, coalesce(t.${version}, 0) AS at FROM heads h
           LEFT JOIN ${table} t ON $1 || t.${key} = h.stream_id
           WHERE coalesce(t.${version}, 0) < h.version
         )
         SELECT (SELECT count(*)::int FROM missing) AS behind,
                (SELECT extract(epoch FROM now() - min(e.occurred_at))::float8 FROM missing m
                   JOIN platform.events e ON e.stream_id = m.stream_id AND e.version = m.at + 1) AS lag`,
        [p.streamPrefix],
      );
      return rows[0];
    });
    behind = measured?.behind ?? 0;
    lagSeconds = behind === 0 ? 0 : Math.max(0, measured?.lag ?? 0);
  } catch {
    lagSeconds = undefined;
  }
  const r = last[0];
  const state = r?.state === "rebuilding" ? "rebuilding" : r?.state === "failed" ? "failed" : "ok";
  return {
    projection: p.name,
    table: p.table,
    state,
    rows: count[0]?.n ?? 0,
    behind,
    lagSeconds,
    ...(r
      ? {
          lastRebuild: {
            startedAt: new Date(r.started_at),
            ...(r.finished_at ? { finishedAt: new Date(r.finished_at) } : {}),
            events: Number(r.events),
            changed: Number(r.changed),
            ...(r.error ? { error: r.error } : {}),
          },
        }
      : {}),
  };
}
