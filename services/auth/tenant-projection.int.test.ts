import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { executeCommand, rehydrate } from "../kernel/commands/index.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { projectionStatus, rebuildProjection } from "../kernel/projections/index.js";
import { migrateService } from "../kernel/service/index.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { tenantAggregate } from "./auth-aggregates.js";
import { authService } from "./server.js";
import { tenantsProjection } from "./tenant-projection.js";

describeWithPostgres("rebuilding auth.tenants from the event log (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  const tenants = () => tenantAggregate(createPostgresAuthStore(db).tenants);

  /** Every row of auth.tenants, by id, as text (what a reader sees). */
  async function table(): Promise<Record<string, string>> {
    const { rows } = await db.query<{ id: string; row: string }>("SELECT id, row_to_json(t)::text AS row FROM auth.tenants t ORDER BY id");
    return Object.fromEntries(rows.map((r) => [r.id, r.row]));
  }

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    await migratePlatform(db);
    await migrateService(authService, db);
    for (let i = 0; i < 40; i++) {
      const id = `rb-${i}`;
      await executeCommand(db, tenants(), id, {
        type: "CreateTenant",
        tenantId: id,
        slug: id,
        displayName: `T${i}`,
        plan: "free",
        now: new Date(),
      });
      await executeCommand(db, tenants(), id, { type: "SetPlan", plan: "pro", now: new Date() });
    }
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("Given a drifted row and writers changing tenants throughout, When the projection is rebuilt, Then the table ends identical to the streams and to what the writers produced", async () => {
    // Drift: a row edited behind the event log's back, and a row whose stream has no trace left.
    await db.query("UPDATE auth.tenants SET display_name = 'tampered', version = version WHERE id = 'rb-3'");
    const beforeStatus = await projectionStatus(db, tenantsProjection, 2000);
    expect(beforeStatus.behind).toBe(0);

    let stop = false;
    let writes = 0;
    const writer = async (w: number) => {
      let n = 0;
      while (!stop) {
        const id = `rb-${(w * 7 + n++) % 40}`;
        await executeCommand(db, tenants(), id, { type: "SetDisplayName", displayName: `W${w}-${n}`, now: new Date() });
        writes++;
      }
    };
    const writers = [writer(1), writer(2), writer(3)];
    const result = await rebuildProjection(db, tenantsProjection, { batchStreams: 7 });
    // Writes keep going after the swap, against the rebuilt rows.
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(writers);

    expect(writes).toBeGreaterThan(0);
    expect(result).toMatchObject({ projection: "auth.tenants", streams: 40 });
    expect(result.updated).toBeGreaterThanOrEqual(1); // at least the tampered row
    const live = await table();
    expect(Object.keys(live)).toHaveLength(40);
    expect(JSON.parse(live["rb-3"]!).display_name).not.toBe("tampered");
    // Every row equals its stream replayed from the log.
    for (let i = 0; i < 40; i++) {
      const id = `rb-${i}`;
      const r = await rehydrate(db, tenants(), id, { useSnapshots: false });
      const row = JSON.parse(live[id]!) as { display_name: string; plan: string; version: number; updated_at: string };
      expect([row.display_name, row.plan, row.version, new Date(row.updated_at).getTime()]).toEqual([
        r.state?.displayName,
        r.state?.plan,
        r.version,
        r.state?.updatedAt.getTime(),
      ]);
    }
    // A second rebuild with no writes changes nothing: the live table already is the projection.
    const again = await rebuildProjection(db, tenantsProjection);
    expect([again.inserted, again.updated, again.deleted]).toEqual([0, 0, 0]);
    expect(await table()).toEqual(live);

    const status = await projectionStatus(db, tenantsProjection, 2000);
    expect(status).toMatchObject({ state: "ok", rows: 40, behind: 0, lagSeconds: 0 });
    expect(status.lastRebuild?.events).toBeGreaterThanOrEqual(80);
  });

  it("reports rows behind their stream with the lag in seconds", async () => {
    // A row rolled back to an older version: its stream has events it does not reflect.
    await db.query("UPDATE auth.tenants SET version = version - 1 WHERE id = 'rb-5'");
    const s = await projectionStatus(db, tenantsProjection, 2000);
    expect(s.behind).toBe(1);
    expect(s.lagSeconds).toBeGreaterThan(0);
    await rebuildProjection(db, tenantsProjection);
    expect((await projectionStatus(db, tenantsProjection, 2000)).behind).toBe(0);
  });

  it("refuses a second rebuild while one runs", async () => {
    await db.query(
      "INSERT INTO platform.projection_rebuilds (projection, state, started_at) VALUES ('auth.tenants', 'rebuilding', now()) ON CONFLICT (projection) DO UPDATE SET state = 'rebuilding', started_at = now()",
    );
    await expect(rebuildProjection(db, tenantsProjection)).rejects.toThrow(/being rebuilt already/);
    await db.query("UPDATE platform.projection_rebuilds SET state = 'ok' WHERE projection = 'auth.tenants'");
  });
});
