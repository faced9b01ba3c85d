/**
 * Rebuilding metering.usage_records from the event log on a real PostgreSQL: rows recorded
 * before the change survive the migration and the rebuild; a tampered, deleted or invented
 * row is put back exactly (every column) and the quota windows equal what metering counted;
 * a rebuild while runs are metered ends identical to the log folded; a second rebuild changes
 * nothing; rows deleted by the retention policy or by tenant offboarding stay deleted.
 */
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { recordFacts } from "../kernel/commands/index.js";
import { migrate } from "../kernel/db/migrate.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import { readStream } from "../kernel/events/event-store.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { governanceMigrations, placeLegalHold } from "../kernel/governance/index.js";
import { projectionStatus, rebuildProjection } from "../kernel/projections/index.js";
import { migrateSchemas, migrateService } from "../kernel/service/index.js";
import { createPostgresMeteringStore } from "./adapters/postgres.js";
import { MeteringApplication, type RunEnded } from "./metering-application.js";
import { DEFAULT_METERING_SETTINGS } from "./metering-settings.js";
import { METERING_MIGRATIONS, METERING_SCHEMA } from "./migrations.js";
import { meteringService } from "./server.js";
import { meteringTenantData } from "./tenant-data.js";
import { foldUsageStream, USAGE_RECORD_COLUMNS, usageRecordId, usageRecordsProjection } from "./usage-projection.js";
import { usageRetention } from "./usage-retention.js";

interface Opened {
  db: Database;
  /** Transactions run side by side (PostgreSQL), not one at a time (PGlite). */
  concurrent: boolean;
  close(): Promise<void>;
}

/** The suite, on a database `open` gives (PostgreSQL, or PGlite as `nexus dev` embeds it). */
function rebuildSuite(open: () => Promise<Opened>): void {
  let opened: Opened | undefined;
  let db: Database;
  let app: MeteringApplication;
  let clock = new Date("2026-10-10T12:00:00.000Z");
  const rates = { tierMultipliers: { free: 1, pro: 1.5, enterprise: 2 }, toolCallOverhead: 0.25 };
  const plan = { plan: "pro" as const, monthlyRunAllowance: undefined };
  const tenants = ["ur-a", "ur-b", "ur-c"];

  /** Every usage row, by id, every column as text. */
  async function table(): Promise<Record<string, string>> {
    const { rows } = await db.query<{ id: string; row: string }>(
      "SELECT id::text AS id, row_to_json(u)::text AS row FROM metering.usage_records u ORDER BY id",
    );
    return Object.fromEntries(rows.map((r) => [r.id, r.row]));
  }
  async function windows(): Promise<string[]> {
    const { rows } = await db.query<{ w: string }>(
      "SELECT row_to_json(w)::text AS w FROM metering.quota_windows w ORDER BY tenant_id, period, period_start",
    );
    return rows.map((r) => r.w);
  }
  /** The table as the log folds it: every usage stream replayed (what a rebuild must end with). */
  async function replayed(): Promise<Record<string, string>> {
    const { rows: streams } = await db.query<{ s: string }>(
      "SELECT DISTINCT stream_id AS s FROM platform.events WHERE starts_with(stream_id, 'usage-')",
    );
    const folded: unknown[] = [];
    for (const { s } of streams) folded.push(...foldUsageStream(s.slice(6), await readStream(db, s)).rows);
    const cols = USAGE_RECORD_COLUMNS.join(", ");
    return db.transaction(async (tx) => {
      await tx.query("CREATE TEMP TABLE replay_t (LIKE metering.usage_records) ON COMMIT DROP");
      await tx.query(
        `INSERT INTO replay_t (${cols}) SELECT ${cols} FROM jsonb_populate_recordset(NULL::metering.usage_records, $1::jsonb)`,
        [JSON.stringify(folded)],
      );
      const { rows } = await tx.query<{ id: string; row: string }>(
        "SELECT id::text AS id, row_to_json(u)::text AS row FROM replay_t u ORDER BY id",
      );
      return Object.fromEntries(rows.map((r) => [r.id, r.row]));
    });
  }

  /** Meters one run: a reservation (unless `unreserved`), then its end as the consumer records it. */
  async function meter(tenantId: string, outcome: RunEnded["outcome"], opts: { unreserved?: boolean; cpu?: number } = {}) {
    const requestId = `req-${randomUUID()}`;
    let reservationId = "";
    if (!opts.unreserved) {
      const r = await app.checkQuota({ tenantId, requestId, estimatedRunUnits: 1, plan, actor: "k" });
      if (r.kind === "admitted") reservationId = r.reservation.id;
    }
    const store = createPostgresMeteringStore(db);
    await store.transaction((uow) =>
      app.recordRunEnded(uow, {
        eventId: randomUUID(),
        outcome,
        tenantId,
        plan: "pro",
        requestId,
        reservationId,
        use: { cpuSeconds: opts.cpu ?? 1.5, gpuSeconds: 0, toolCalls: 2, inputTokens: 120n, outputTokens: 45n },
        endedAt: clock,
      }),
    );
  }

  beforeAll(async () => {
    opened = await open();
    db = opened.db;
    await migratePlatform(db);
    await migrateSchemas(db, [governanceMigrations]);
    // The schema as it was before the change: 0001 only.
    await migrate(db, { schema: METERING_SCHEMA, migrations: METERING_MIGRATIONS.slice(0, 1) });
    app = new MeteringApplication({
      store: createPostgresMeteringStore(db),
      settings: { ...DEFAULT_METERING_SETTINGS, rates },
      clock: () => clock,
      logger: pino({ level: "silent" }),
    });
  });

  afterAll(async () => {
    await opened?.close();
  });

  it("keeps rows recorded before the change (migration 0002 restates them), and those deleted before it stay deleted", async () => {
    for (const t of tenants) {
      await meter(t, "completed");
      await meter(t, "failed");
      await meter(t, "completed", { unreserved: true });
    }
    // Rows as the code before this change wrote them: a random id, recorded_at from the app's
    // clock (not the event's time). One was deleted by the old retention (no purge event).
    await db.exec("UPDATE metering.usage_records SET id = gen_random_uuid(), recorded_at = recorded_at - interval '1234 microseconds'");
    await db.exec(
      "DELETE FROM metering.usage_records WHERE id = (SELECT id FROM metering.usage_records WHERE tenant_id = 'ur-a' AND outcome = 'failed')",
    );
    const before = await table();
    const windowsBefore = await windows();
    expect(Object.keys(before)).toHaveLength(8);

    await migrateService(meteringService, db); // applies 0002_usage_rebuild
    // Its events are appended like any other: each id in platform.event_ids too.
    const { rows: unindexed } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM platform.events e WHERE NOT EXISTS (SELECT 1 FROM platform.event_ids i WHERE i.event_id = e.event_id)",
    );
    expect(unindexed[0]?.n).toBe(0);
    const { rows: restated } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM platform.events WHERE type = 'nexus.events.v1.UsageRecordBackfilled'",
    );
    expect(restated[0]?.n).toBe(8);
    const r = await rebuildProjection(db, usageRecordsProjection);
    expect({ inserted: r.inserted, updated: r.updated, deleted: r.deleted }).toEqual({ inserted: 0, updated: 0, deleted: 0 });
    expect(await table()).toEqual(before);
    expect(await windows()).toEqual(windowsBefore);
  });

  it("puts back a tampered, deleted or invented row exactly, and the quota windows equal what metering counted", async () => {
    clock = new Date("2026-10-12T09:30:00.000Z");
    for (const t of tenants) {
      await meter(t, "completed", { cpu: 3 });
      await meter(t, "cancelled");
      await meter(t, "failed");
      await meter(t, "completed", { unreserved: true, cpu: 0.25 });
    }
    const before = await table();
    const windowsBefore = await windows();
    const summary = await app.usageSummary("ur-b", "month", clock, plan);
    expect(await replayed()).toEqual(before);
    // The derived id is SQL's md5('usage-record:' || source_event_id)::uuid.
    const { rows: same } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM metering.usage_records WHERE id = md5('usage-record:' || source_event_id)::uuid AND recorded_at >= '2026-10-12'",
    );
    expect(same[0]?.n).toBe(Object.keys(before).length - 8);
    expect(usageRecordId("x")).toBe((await db.query<{ u: string }>("SELECT md5('usage-record:x')::uuid::text AS u")).rows[0]?.u);

    const { rows: picked } = await db.query<{ id: string }>(
      "SELECT id::text AS id FROM metering.usage_records WHERE tenant_id = 'ur-b' AND recorded_at >= '2026-10-12' ORDER BY id LIMIT 2",
    );
    await db.query("UPDATE metering.usage_records SET run_units = 999, recorded_at = now(), reservation_id = NULL WHERE id = $1", [
      picked[0]!.id,
    ]);
    await db.query("DELETE FROM metering.usage_records WHERE id = $1", [picked[1]!.id]);
    await db.exec(
      `INSERT INTO metering.usage_records SELECT gen_random_uuid(), tenant_id, 'invented', 'invented-event', NULL, plan, outcome, 50,
         cpu_seconds, gpu_seconds, tool_calls, input_tokens, output_tokens, tier_multiplier, tool_call_overhead, usage_date, recorded_at
       FROM metering.usage_records WHERE id = '${picked[0]!.id}'`,
    );
    // The windows of the changed rows drifted too: the rebuild recomputes them from its rows.
    await db.exec(
      "UPDATE metering.quota_windows SET run_units_used = 12345, runs_used = 77 WHERE tenant_id = 'ur-b' AND period_start IN ('2026-10-12', '2026-10-01')",
    );

    const s = await projectionStatus(db, usageRecordsProjection, 2_000);
    expect(s.behind).toBe(1);
    expect(s.lagSeconds).toBeGreaterThan(0);

    const r = await rebuildProjection(db, usageRecordsProjection);
    expect({ inserted: r.inserted, updated: r.updated, deleted: r.deleted }).toEqual({ inserted: 1, updated: 1, deleted: 1 });
    expect(await table()).toEqual(before);
    expect(await windows()).toEqual(windowsBefore);
    expect(await app.usageSummary("ur-b", "month", clock, plan)).toEqual(summary);

    const again = await rebuildProjection(db, usageRecordsProjection);
    expect(again.inserted + again.updated + again.deleted + again.derivedChanged).toBe(0);
    const ok = await projectionStatus(db, usageRecordsProjection, 2_000);
    expect(ok).toMatchObject({ state: "ok", rows: Object.keys(before).length, behind: 0, lagSeconds: 0 });
    expect(ok.lastRebuild?.changed).toBe(0);
  });

  it("ends identical to the log folded when runs are metered during the rebuild", async () => {
    clock = new Date("2026-11-03T08:00:00.000Z");
    // More streams, so the rebuild takes a while.
    for (let i = 0; i < 30; i++) {
      await meter(`ur-load-${i}`, "completed");
      await meter(`ur-load-${i}`, "failed", { unreserved: true });
    }
    let stop = false;
    let metered = 0;
    const writers = [0, 1].map(async (w) => {
      while (!stop || metered < 10) {
        await meter(tenants[(metered + w) % 3]!, metered % 4 === 3 ? "failed" : "completed", { unreserved: metered % 5 === 0 });
        metered++;
        // Let the rebuild's transactions in (PGlite runs one transaction at a time).
        await new Promise((r) => setTimeout(r, 2));
      }
    });
    await new Promise((r) => setTimeout(r, 50));
    const atStart = metered;
    const r = await rebuildProjection(db, usageRecordsProjection, { batchStreams: 1 });
    const during = metered - atStart;
    stop = true;
    await Promise.all(writers);
    if (opened?.concurrent) expect(during).toBeGreaterThan(0);
    expect(r.streams).toBeGreaterThan(30);
    const windowsAfter = await windows();
    expect(await table()).toEqual(await replayed());
    const again = await rebuildProjection(db, usageRecordsProjection);
    expect(again.inserted + again.updated + again.deleted + again.derivedChanged).toBe(0);
    expect(await windows()).toEqual(windowsAfter);
  });

  it("leaves rows deleted by the retention policy or by tenant offboarding deleted", async () => {
    // Retention: October's rows of ur-a go (the cutoff is before November) but one run's row,
    // which a key hold covers (through its RunStarted event), stays.
    const { rows: october } = await db.query<{ request_id: string }>(
      "SELECT request_id FROM metering.usage_records WHERE tenant_id = 'ur-a' AND recorded_at < '2026-11-01' ORDER BY request_id LIMIT 1",
    );
    const heldRun = october[0]!.request_id;
    await db.transaction(async (tx) => {
      await recordFacts(
        tx,
        `run-${heldRun}`,
        [{ type: "nexus.events.v1.RunStarted", topic: "agent.run_started", payload: { requestId: heldRun } }],
        {
          metadata: { tenantId: "ur-a", actor: "key-held" },
        },
      );
      await placeLegalHold(tx, { tenantId: "ur-a", scope: "key", subjectId: "key-held", reason: "audit" });
    });
    const report = await usageRetention(() => new Date("2026-11-20T00:00:00Z")).apply(
      db,
      "ur-a",
      "delete",
      new Date("2026-11-01T00:00:00Z"),
    );
    expect(report.removed).toBeGreaterThan(0);
    expect(report.held).toBe(1);
    // Offboarding: every row of ur-c.
    await meteringTenantData.deleteTenantData(db, "ur-c");
    const before = await table();
    const windowsBefore = await windows();
    expect(Object.values(before).some((row) => row.includes('"ur-c"'))).toBe(false);
    expect(Object.values(before).filter((row) => row.includes('"ur-a"') && row.includes('"2026-10-'))).toEqual([
      expect.stringContaining(heldRun),
    ]);

    const r = await rebuildProjection(db, usageRecordsProjection);
    expect({ inserted: r.inserted, updated: r.updated, deleted: r.deleted }).toEqual({ inserted: 0, updated: 0, deleted: 0 });
    expect(await table()).toEqual(before);
    expect(await windows()).toEqual(windowsBefore);

    // A tampered row in a window retention emptied in part: the row comes back, the window keeps its count.
    const { rows } = await db.query<{ id: string }>("SELECT id::text AS id FROM metering.usage_records WHERE tenant_id = 'ur-a' LIMIT 1");
    await db.query("DELETE FROM metering.usage_records WHERE id = $1", [rows[0]!.id]);
    await rebuildProjection(db, usageRecordsProjection);
    expect(await table()).toEqual(before);
    expect(await windows()).toEqual(windowsBefore);
  });
}

describeWithPostgres("rebuilding metering.usage_records from the event log (PostgreSQL)", () =>
  rebuildSuite(async () => {
    const testDb: TestDatabase = await createTestDatabase();
    const db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    return {
      db,
      concurrent: true,
      async close() {
        await db.close();
        await testDb.drop();
      },
    };
  }),
);

describe("rebuilding metering.usage_records from the event log (PGlite)", () =>
  rebuildSuite(async () => {
    const db = await createPgliteDatabase();
    return { db, concurrent: false, close: () => db.close() };
  }));
