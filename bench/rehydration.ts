import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { createPostgresAuthStore } from "../services/auth/adapters/postgres.js";
import { type TenantAggregate, tenantAggregate, tenantStreamId } from "../services/auth/auth-aggregates.js";
import { tenantEventToNew } from "../services/auth/auth-events.js";
import type { TenantEvent } from "../services/auth/domain/tenant.js";
import { authService } from "../services/auth/server.js";
import { tenantsProjection } from "../services/auth/tenant-projection.js";
import { deleteSnapshot, executeCommand, rehydrate, saveSnapshot } from "../services/kernel/commands/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import { createPgliteDatabase } from "../services/kernel/db/pglite-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { appendToStream, readAll } from "../services/kernel/events/event-store.js";
import { migratePlatform } from "../services/kernel/events/platform-migrations.js";
import { rebuildProjection } from "../services/kernel/projections/index.js";
import { migrateService } from "../services/kernel/service/index.js";
import { benchServerUrl, createBenchDatabase, type Percentiles, percentiles } from "./rag-setup.js";
import type { BenchOutcome, BenchRatio } from "./results.js";

/**
 * Rehydration benchmark (issue 18, R2/R3), on the real tenant aggregate:
 *
 * 1. Rehydrate a 10,000-event tenant stream: the whole stream through `evolve`, against the
 *    latest snapshot plus the events after it (the policy's default keeps that tail under 100).
 * 2. Command latency p50/p99 on that tenant (SetDisplayName, one transaction each), three
 *    ways: event-sourced with snapshots (production), event-sourced without snapshots (every
 *    command replays 10,000 events), and the baseline — the same aggregate loading its state
 *    row (`SELECT … FOR UPDATE`) as before event sourcing.
 *
 * 3. Rebuild throughput: `auth.tenants` rebuilt (shadow table + swap) from 2,000 tenant
 *    streams of 5 events, in events/s, against reading the same events with `readAll`.
 *
 * The stream is written in batches with `appendToStream` (the same events commands would
 * record), then its state row is saved from a full replay. Runs on a fresh database of the
 * local PostgreSQL (NEXUS_BENCH_DATABASE_URL), else on PGlite.
 */
export interface RehydrationBenchOptions {
  /** Events in the long stream. Default 10 000. */
  events?: number;
  /** Measured rehydrations per way. Default 20. */
  rehydrations?: number;
  /** Measured commands per way. Default 200 (30 without snapshots). */
  commands?: number;
  /** Tenants (5 events each) in the rebuild measurement. Default 2 000. */
  rebuildTenants?: number;
  log?: (line: string) => void;
}

/** What the benchmark measured (milliseconds). */
export interface RehydrationBenchResult {
  backend: string;
  events: number;
  rehydrate: { fullReplay: Percentiles; fromSnapshot: Percentiles; snapshotTail: number };
  commands: { stateRow: Percentiles; withSnapshots: Percentiles; withoutSnapshots: Percentiles };
  /** `auth.tenants` rebuilt from `tenants` streams of 5 events, against reading the same events. */
  rebuild: { tenants: number; events: number; eventsPerSecond: number; readEventsPerSecond: number };
}

async function timed(n: number, fn: () => Promise<unknown>): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

/** Runs the benchmark. */
export async function benchRehydration(options: RehydrationBenchOptions = {}): Promise<RehydrationBenchResult> {
  const log = options.log ?? console.log;
  const total = options.events ?? 10_000;
  const usePostgres = await createBenchDatabase(benchServerUrl()).catch(() => undefined);
  const db: Database = usePostgres ? await createPgDatabase({ url: usePostgres.url, poolSize: 2 }) : await createPgliteDatabase({});
  const backend = usePostgres ? "PostgreSQL" : "PGlite";
  try {
    await migratePlatform(db);
    await migrateService(authService, db);
    const store = createPostgresAuthStore(db);
    const withSnapshots = tenantAggregate(store.tenants);
    const es = withSnapshots.eventSourcing!;
    const withoutSnapshots: TenantAggregate = { ...withSnapshots, eventSourcing: { fromEvent: es.fromEvent } };
    const { eventSourcing: _es, ...stateRow } = withSnapshots;
    const id = "bench-long";
    const start = Date.UTC(2026, 0, 1);
    const streamId = tenantStreamId(id);

    log(`${backend}: writing a ${total}-event tenant stream`);
    const events: TenantEvent[] = [
      { type: "TenantCreated", tenantId: id, slug: id, displayName: "Bench", plan: "free", at: new Date(start) },
    ];
    for (let i = 1; i < total; i++) {
      events.push({
        type: "TenantDisplayNameChanged",
        tenantId: id,
        previousDisplayName: i === 1 ? "Bench" : `Bench ${i - 1}`,
        displayName: `Bench ${i}`,
        at: new Date(start + i * 1000),
      });
    }
    for (let v = 0; v < total; v += 500) {
      await db.transaction((tx) =>
        appendToStream(
          tx,
          streamId,
          v,
          events.slice(v, v + 500).map((e) => tenantEventToNew(e, { actor: "bench" })),
        ),
      );
    }
    const full = await rehydrate(db, withoutSnapshots, id);
    await db.transaction((tx) => store.tenants.save(tx, full.state!, 0, full.version));

    const n = options.rehydrations ?? 20;
    const fullReplay = await timed(n, () => rehydrate(db, withoutSnapshots, id));
    // The policy snapshots every 100 events: the tail a command replays is below that.
    const tail = 60;
    const at = await rehydrate(db, withoutSnapshots, id, { toVersion: total - tail });
    await db.transaction((tx) =>
      saveSnapshot(tx, {
        streamId,
        aggregate: "tenant",
        version: at.version,
        schemaVersion: es.snapshots!.schemaVersion,
        state: es.snapshots!.toSnapshot(at.state!),
      }),
    );
    const fromSnapshot = await timed(n, () => rehydrate(db, withSnapshots, id));
    log(
      `rehydrate ${total} events: full replay p50 ${fullReplay.p50.toFixed(1)} ms, snapshot + ${tail} p50 ${fromSnapshot.p50.toFixed(2)} ms`,
    );

    const m = options.commands ?? 200;
    let k = 0;
    const command = (aggregate: TenantAggregate) => () =>
      executeCommand(db, aggregate, id, { type: "SetDisplayName", displayName: `Cmd ${++k}`, now: new Date(start + (total + k) * 1000) });
    await timed(10, command(withSnapshots)); // warm-up; takes the snapshot the policy asks for
    const withSnap = await timed(m, command(withSnapshots));
    const rowLoad = await timed(m, command(stateRow));
    await deleteSnapshot(db, streamId);
    const noSnap = await timed(Math.min(m, 30), command(withoutSnapshots));
    log(
      `command p50/p99: state row ${rowLoad.p50.toFixed(2)}/${rowLoad.p99.toFixed(2)} ms, ` +
        `event-sourced + snapshots ${withSnap.p50.toFixed(2)}/${withSnap.p99.toFixed(2)} ms, ` +
        `without snapshots ${noSnap.p50.toFixed(1)}/${noSnap.p99.toFixed(1)} ms`,
    );
    // Rebuild throughput: many small streams, as the tenants projection really is.
    const tenantCount = options.rebuildTenants ?? 2000;
    for (let t = 0; t < tenantCount; t += 200) {
      await db.transaction(async (tx) => {
        for (let j = t; j < Math.min(tenantCount, t + 200); j++) {
          const tid = `rb-${j}`;
          const es: TenantEvent[] = [
            { type: "TenantCreated", tenantId: tid, slug: tid, displayName: tid, plan: "free", at: new Date(start) },
            { type: "PlanChanged", tenantId: tid, previousPlan: "free", plan: "pro", at: new Date(start + 1000) },
            { type: "TenantSuspended", tenantId: tid, reason: "bench", at: new Date(start + 2000) },
            { type: "TenantResumed", tenantId: tid, at: new Date(start + 3000) },
            {
              type: "TenantDisplayNameChanged",
              tenantId: tid,
              previousDisplayName: tid,
              displayName: `${tid}!`,
              at: new Date(start + 4000),
            },
          ];
          await appendToStream(
            tx,
            tenantStreamId(tid),
            0,
            es.map((e) => tenantEventToNew(e, { actor: "bench" })),
          );
        }
      });
    }
    const rebuilt = await rebuildProjection(db, tenantsProjection);
    const readStarted = performance.now();
    let read = 0;
    for (let after = 0n; ; ) {
      const page = await readAll(db, after, 1000);
      read += page.length;
      if (page.length < 1000) break;
      after = page[page.length - 1]!.position;
    }
    const readEventsPerSecond = read / ((performance.now() - readStarted) / 1000);
    log(
      `rebuild auth.tenants: ${rebuilt.events} events of ${rebuilt.streams} streams at ${Math.round(rebuilt.eventsPerSecond)} events/s (reading the log alone: ${Math.round(readEventsPerSecond)} events/s)`,
    );
    return {
      backend,
      events: total,
      rebuild: { tenants: rebuilt.streams, events: rebuilt.events, eventsPerSecond: rebuilt.eventsPerSecond, readEventsPerSecond },
      rehydrate: { fullReplay, fromSnapshot, snapshotTail: tail },
      commands: { stateRow: rowLoad, withSnapshots: withSnap, withoutSnapshots: noSnap },
    };
  } finally {
    await db.close();
    await usePostgres?.drop();
  }
}

/** The benchmark as `npm run bench` runs it: its ratios against the baselines of the same run. */
export async function benchRehydrationOutcome(log: (line: string) => void): Promise<BenchOutcome> {
  const r = await benchRehydration({ log });
  const bench = `rehydration (${r.backend}, ${r.events} events)`;
  const ratios: BenchRatio[] = [
    {
      bench,
      name: "rehydrate from snapshot p50 / full replay p50",
      value: r.rehydrate.fromSnapshot.p50 / r.rehydrate.fullReplay.p50,
      unit: "×",
    },
    {
      bench,
      name: "command p50, event-sourced + snapshots / state row",
      value: r.commands.withSnapshots.p50 / r.commands.stateRow.p50,
      unit: "×",
    },
    {
      bench,
      name: "command p99, event-sourced + snapshots / state row",
      value: r.commands.withSnapshots.p99 / r.commands.stateRow.p99,
      unit: "×",
    },
    {
      bench,
      name: "command p99, event-sourced without snapshots / state row",
      value: r.commands.withoutSnapshots.p99 / r.commands.stateRow.p99,
      unit: "×",
    },
  ];
  return { result: r, ratios };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchRehydration();
}
