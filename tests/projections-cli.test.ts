/**
 * `nexus projections list|status|rebuild` against a real PostgreSQL, as an operator runs them.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createPostgresAuthStore } from "../services/auth/adapters/postgres.js";
import { tenantAggregate } from "../services/auth/auth-aggregates.js";
import { authService } from "../services/auth/server.js";
import { executeCommand } from "../services/kernel/commands/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { migratePlatform } from "../services/kernel/events/platform-migrations.js";
import { migrateService } from "../services/kernel/service/index.js";
import { meteringService } from "../services/metering/server.js";
import { NEXUS_BIN } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "./support/services.js";

function nexus(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", NATS_URL: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describeWithPostgres("nexus projections", () => {
  let testDb: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 2 });
    await migratePlatform(db);
    await migrateService(authService, db);
    const tenants = tenantAggregate(createPostgresAuthStore(db).tenants);
    for (const id of ["cli-a", "cli-b"]) {
      await executeCommand(db, tenants, id, {
        type: "CreateTenant",
        tenantId: id,
        slug: id,
        displayName: id,
        plan: "free",
        now: new Date(),
      });
    }
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("lists, rebuilds (repairing a tampered row) and reports status; unknown names are usage errors", async () => {
    const env = { DATABASE_URL: testDb.url };
    const list = await nexus(["projections", "list"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain("auth.tenants");
    // Consumer-fed read models are listed with why they are not rebuilt.
    const listed = await nexus(["projections", "list", "--json"], env);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ name: "auth.tenants", rebuildable: true }),
      expect.objectContaining({ name: "metering.usage_records", rebuildable: true, streams: "usage-*" }),
      expect.objectContaining({ name: "audit.entries", rebuildable: false, why: expect.stringContaining("hash") }),
    ]);
    // Before metering ever ran on the database: its table is not there, said plainly.
    const noTable = await nexus(["projections", "status", "metering.usage_records"], env);
    expect(noTable.code).not.toBe(0);
    expect(noTable.stderr).toContain("metering.usage_records does not exist");
    await migrateService(meteringService, db);
    const usage = await nexus(["projections", "rebuild", "metering.usage_records", "--json"], env);
    expect(usage.code, usage.stderr).toBe(0);
    expect(JSON.parse(usage.stdout)).toMatchObject({ projection: "metering.usage_records", inserted: 0, updated: 0, deleted: 0 });
    const usageStatus = await nexus(["projections", "status", "metering.usage_records", "--json"], env);
    expect(usageStatus.code, usageStatus.stderr).toBe(0);
    expect(JSON.parse(usageStatus.stdout)).toMatchObject({ state: "ok", rows: 0, behind: 0, lagSeconds: 0, lastRebuild: { changed: 0 } });
    const chain = await nexus(["projections", "rebuild", "audit.entries"], env);
    expect(chain.code).toBe(2);
    expect(chain.stderr).toContain("not rebuilt from the event log");

    await db.query("UPDATE auth.tenants SET plan = 'enterprise' WHERE id = 'cli-b'");
    const rebuild = await nexus(["projections", "rebuild", "auth.tenants", "--json"], env);
    expect(rebuild.code, rebuild.stderr).toBe(0);
    expect(JSON.parse(rebuild.stdout)).toMatchObject({ projection: "auth.tenants", streams: 2, events: 2, updated: 1, deleted: 0 });
    const { rows } = await db.query<{ plan: string }>("SELECT plan FROM auth.tenants WHERE id = 'cli-b'");
    expect(rows[0]?.plan).toBe("free");

    const status = await nexus(["projections", "status", "auth.tenants", "--json"], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: "ok", rows: 2, behind: 0, lagSeconds: 0 });

    // A consumer-fed read model: its consumer's lag, measured on the bus (here the embedded one).
    const notStarted = await nexus(["projections", "status", "audit.entries", "--json"], env);
    expect(notStarted.code, notStarted.stderr).toBe(0);
    expect(JSON.parse(notStarted.stdout)).toMatchObject({ projection: "audit.entries", consumer: "audit-trail", state: "not started" });
    // Its consumer at the start of the log, the tenants' events not handled: lag in seconds > 0.
    await db.query("INSERT INTO platform.local_bus_checkpoints (consumer, position) VALUES ('audit-trail', 0)");
    const behind = await nexus(["projections", "status", "audit.entries", "--json"], env);
    expect(behind.code, behind.stderr).toBe(0);
    const lag = JSON.parse(behind.stdout) as { unhandled: number; lagSeconds: number };
    expect(lag.unhandled).toBeGreaterThanOrEqual(2);
    expect(lag.lagSeconds).toBeGreaterThan(0);

    const unknown = await nexus(["projections", "rebuild", "nope"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("auth.tenants");
    // Eleven CLI processes, each starting Node and opening the database: over 30 s on a loaded machine.
  }, 90_000);
});
