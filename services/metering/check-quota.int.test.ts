/**
 * CheckQuota's storage path (one read for the admission state, one statement for the
 * reservation and its windows) on both databases the installation runs on: PGlite, where the
 * tenant lock is implied by PGlite's one connection, and PostgreSQL.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { migrateSchemas } from "../kernel/service/index.js";
import { createPostgresMeteringStore } from "./adapters/postgres.js";
import { type CheckQuotaResult, MeteringApplication, tenantPlanOf } from "./metering-application.js";
import { DEFAULT_METERING_SETTINGS } from "./metering-settings.js";
import { meteringMigrations } from "./migrations.js";

const backends: Array<
  [name: string, describeOn: (name: string, suite: () => void) => void, open: () => Promise<{ db: Database; close(): Promise<void> }>]
> = [
  [
    "PGlite",
    describe,
    async () => {
      const db = await createPgliteDatabase();
      return { db, close: () => db.close() };
    },
  ],
  [
    "PostgreSQL",
    describeWithPostgres,
    async () => {
      const testDb = await createTestDatabase();
      const db = await createPgDatabase({ url: testDb.url });
      return {
        db,
        async close() {
          await db.close();
          await testDb.drop();
        },
      };
    },
  ],
];

for (const [name, describeOn, open] of backends) {
  describeOn(`CheckQuota on ${name}`, () => {
    let handle: { db: Database; close(): Promise<void> };
    let app: MeteringApplication;
    let now = new Date("2025-06-10T12:00:00Z");
    // A free tenant allowed one run a month.
    const plan = tenantPlanOf({ tenantId: "t", plan: "free", overrideMonthlyRunAllowance: 1, overrideUnlimitedRuns: false });

    beforeAll(async () => {
      handle = await open();
      await migratePlatform(handle.db);
      await migrateSchemas(handle.db, [meteringMigrations]);
      app = new MeteringApplication({
        store: createPostgresMeteringStore(handle.db),
        settings: { ...DEFAULT_METERING_SETTINGS, reservationTtlMs: 60_000 },
        clock: () => now,
        logger: pino({ level: "silent" }),
      });
    });

    afterAll(async () => {
      await handle?.close();
    });

    const check = (tenantId: string, requestId: string): Promise<CheckQuotaResult> =>
      app.checkQuota({ tenantId, requestId, estimatedRunUnits: 0, plan, actor: "key-test" });

    it("answers a repeated request id with its first reservation and reserves the run once", async () => {
      const first = await check("tenant-repeat", "req-1");
      const again = await check("tenant-repeat", "req-1");
      expect(first.kind).toBe("admitted");
      expect(again.kind).toBe("admitted");
      if (first.kind !== "admitted" || again.kind !== "admitted") return;
      expect(again.reservation.id).toBe(first.reservation.id);
      expect(again.windows.map((w) => [w.period, w.runsReserved])).toEqual([
        ["day", 1],
        ["month", 1],
      ]);
      expect((await check("tenant-repeat", "req-2")).kind).toBe("refused");
    });

    it("expires a reservation past its TTL before deciding, so its run can be admitted again", async () => {
      expect((await check("tenant-expiry", "crashed")).kind).toBe("admitted");
      expect((await check("tenant-expiry", "blocked")).kind).toBe("refused");
      now = new Date(now.getTime() + 61_000);
      const next = await check("tenant-expiry", "after-expiry");
      expect(next.kind).toBe("admitted");
      expect(next.windows.map((w) => [w.period, w.runsReserved, w.runsUsed])).toEqual([
        ["day", 1, 0],
        ["month", 1, 0],
      ]);
    });
  });
}
