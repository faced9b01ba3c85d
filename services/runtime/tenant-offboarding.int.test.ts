import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NEXUS_BIN, tempDir } from "../../tests/support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { countTenantRows, KEPT_TABLES, seedTenantRows } from "../../tests/support/tenant-rows.js";
import { createPostgresAuthStore } from "../auth/adapters/postgres.js";
import { tenantAggregate } from "../auth/auth-aggregates.js";
import { authService } from "../auth/server.js";
import { executeCommand, rehydrate } from "../kernel/commands/index.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { governanceMigrations, placeLegalHold } from "../kernel/governance/index.js";
import { createKeyring, type Keyring, keyringMigrations, newMasterKeyLine, parseMasterKeys } from "../kernel/keyring/index.js";
import { runSaga, startSaga } from "../kernel/sagas/index.js";
import { migrateSchemas, migrateService } from "../kernel/service/index.js";
import { readShredList, SHRED_LIST_FILE } from "./backup.js";
import { SERVICES } from "./service-registry.js";
import { LEGAL_HOLD_STEP, serviceDataDeleters, tenantOffboardingSaga } from "./tenant-offboarding.js";

describeWithPostgres("tenant offboarding saga (PostgreSQL: auth + keyring)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let keyring: Keyring;
  const instant = { sleep: async () => {} };
  const MASTER = newMasterKeyLine(1);
  const tenants = () => tenantAggregate(createPostgresAuthStore(db).tenants);

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateService(authService, db);
    for (const service of SERVICES) await migrateService(service, db);
    await migrateSchemas(db, [keyringMigrations, governanceMigrations]);
    keyring = createKeyring({ db, masterKeys: parseMasterKeys(MASTER, "test"), cacheMs: 0 });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  async function tenantWithSecret(id: string): Promise<string> {
    await executeCommand(db, tenants(), id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: id,
      plan: "free",
      now: new Date(),
    });
    return keyring.sealText({ tenantId: id, purpose: "documents" }, `secret of ${id}`);
  }
  const status = async (id: string) => (await rehydrate(db, tenants(), id)).state;

  it("Given a tenant with sealed data, When it is offboarded, Then it is suspended, its data never opens again and every deleter ran", async () => {
    const sealed = await tenantWithSecret("off-1");
    const deleted: string[] = [];
    const def = tenantOffboardingSaga(db, keyring, { deleteData: [async (t) => void deleted.push(`docs:${t}`)] });
    await startSaga(db, def, { sagaId: "offboard-off-1", input: { tenantId: "off-1", reason: "contract ended" }, tenantId: "off-1" });
    const final = await runSaga(db, def, "offboard-off-1", instant);
    expect(final.status).toBe("completed");
    expect(final.completed).toEqual(["suspend-keys", "stop-workflows", LEGAL_HOLD_STEP, "shred-keys", "delete-data"]);
    expect(final.irreversible).toBe(true);
    expect((await status("off-1"))?.status).toBe("suspended");
    await expect(keyring.openText({ tenantId: "off-1", purpose: "documents" }, sealed)).rejects.toSatisfy(
      (e) => errorReason(e) === "DECRYPTION_FAILED",
    );
    expect(deleted).toEqual(["docs:off-1"]);
  });

  it("Given a legal hold on the tenant, When it is offboarded, Then the saga compensates: the tenant is active again and its data still opens", async () => {
    const sealed = await tenantWithSecret("off-2");
    // The default check: the kernel's legal holds (services/kernel/governance).
    const hold = await db.transaction((tx) =>
      placeLegalHold(tx, { tenantId: "off-2", scope: "document", subjectId: "doc-9", reason: "litigation" }),
    );
    const def = tenantOffboardingSaga(db, keyring, {}, { maxAttempts: 2 });
    await startSaga(db, def, { sagaId: "offboard-off-2", input: { tenantId: "off-2", reason: "contract ended" } });
    const final = await runSaga(db, def, "offboard-off-2", instant);
    expect(final.status).toBe("compensated");
    expect(final.reason).toContain(hold.holdId);
    expect((await status("off-2"))?.status).toBe("active");
    expect(await keyring.openText({ tenantId: "off-2", purpose: "documents" }, sealed)).toBe("secret of off-2");
  });

  it("Given a row for the tenant in every table of every service, When it is offboarded, Then only the documented kept tables still hold its rows and another tenant's rows are untouched", async () => {
    await tenantWithSecret("off-rows");
    await tenantWithSecret("keep-rows");
    const seeded = await seedTenantRows(db, ["off-rows", "keep-rows"]);
    expect(seeded.failed, JSON.stringify(seeded.failed, null, 2)).toEqual({});
    // Every service that holds tenant rows registered a deleter (the registry is complete).
    expect(new Set(seeded.tables.map((t) => t.split(".")[0]))).toEqual(
      new Set(["auth", "metering", "audit", "ingestion", "retrieval", "agent", "modules", "integration"]),
    );
    expect(SERVICES.filter((s) => s.dataDeleters?.length).map((s) => s.name)).toEqual([
      "auth",
      "metering",
      "audit",
      "knowledge",
      "agent",
      "modules",
      "integration",
    ]);
    const before = await countTenantRows(db, seeded.tables, "off-rows");
    expect(
      Object.values(before).every((n) => n > 0),
      JSON.stringify(before),
    ).toBe(true);

    const def = tenantOffboardingSaga(db, keyring);
    await startSaga(db, def, { sagaId: "offboard-off-rows", input: { tenantId: "off-rows", reason: "closed" }, tenantId: "off-rows" });
    expect((await runSaga(db, def, "offboard-off-rows", instant)).status).toBe("completed");

    const after = await countTenantRows(db, seeded.tables, "off-rows");
    const left = Object.entries(after)
      .filter(([, n]) => n > 0)
      .map(([t]) => t);
    expect(left.sort()).toEqual([...KEPT_TABLES].sort());
    const other = await countTenantRows(db, seeded.tables, "keep-rows");
    expect(Object.entries(other).filter(([, n]) => n === 0)).toEqual([]);
    // The tenant record stays as the suspended tombstone (the projection of its stream).
    expect((await status("off-rows"))?.status).toBe("suspended");
    // Running the deleters again (the saga is at-least-once) finds nothing and fails nothing.
    for (const deleter of serviceDataDeleters(db)) await deleter("off-rows");
  });

  it("Given a legal hold, When the tenant is offboarded, Then none of its rows is deleted; a hold placed after the check stops delete-data (saga failed, rows kept)", async () => {
    await tenantWithSecret("held-rows");
    const seeded = await seedTenantRows(db, ["held-rows"]);
    const before = await countTenantRows(db, seeded.tables, "held-rows");
    await db.transaction((tx) => placeLegalHold(tx, { tenantId: "held-rows", scope: "tenant", reason: "audit" }));
    const def = tenantOffboardingSaga(db, keyring, {}, { maxAttempts: 1 });
    await startSaga(db, def, { sagaId: "offboard-held", input: { tenantId: "held-rows", reason: "r" } });
    expect((await runSaga(db, def, "offboard-held", instant)).status).toBe("compensated");
    expect(await countTenantRows(db, seeded.tables, "held-rows")).toEqual(before);

    // A hold that arrives after both checks of the saga (check-legal-hold and delete-data's
    // own): each deleter's transaction checks again and refuses.
    await tenantWithSecret("late-hold");
    const late = await seedTenantRows(db, ["late-hold"]);
    const lateBefore = await countTenantRows(db, late.tables, "late-hold");
    let checks = 0;
    const checkLegalHold = async (tenantId: string) => {
      checks += 1;
      if (checks === 2) await db.transaction((tx) => placeLegalHold(tx, { tenantId, scope: "tenant", reason: "late" }));
    };
    const lateDef = tenantOffboardingSaga(db, keyring, { checkLegalHold }, { maxAttempts: 1 });
    await startSaga(db, lateDef, { sagaId: "offboard-late", input: { tenantId: "late-hold", reason: "r" } });
    const final = await runSaga(db, lateDef, "offboard-late", instant);
    expect(final.status).toBe("failed");
    expect(final.reason).toContain("active legal hold");
    expect(await countTenantRows(db, late.tables, "late-hold")).toEqual(lateBefore);
  });

  it("Given a tenant an operator had suspended before, When its offboarding is compensated, Then it stays suspended", async () => {
    await tenantWithSecret("off-3");
    await executeCommand(db, tenants(), "off-3", { type: "SuspendTenant", reason: "unpaid invoice", now: new Date() });
    const def = tenantOffboardingSaga(db, keyring, { checkLegalHold: () => Promise.reject(new Error("hold")) }, { maxAttempts: 1 });
    await startSaga(db, def, { sagaId: "offboard-off-3", input: { tenantId: "off-3", reason: "r" } });
    expect((await runSaga(db, def, "offboard-off-3", instant)).status).toBe("compensated");
    expect(await status("off-3")).toMatchObject({ status: "suspended", suspensionReason: "unpaid invoice" });
  });

  it("Given a deleter that keeps failing after the shred, Then the saga ends failed (not compensated) and the tenant stays suspended", async () => {
    await tenantWithSecret("off-4");
    const def = tenantOffboardingSaga(
      db,
      keyring,
      { deleteData: [() => Promise.reject(new Error("knowledge unavailable"))] },
      { maxAttempts: 2 },
    );
    await startSaga(db, def, { sagaId: "offboard-off-4", input: { tenantId: "off-4", reason: "r" } });
    const final = await runSaga(db, def, "offboard-off-4", instant);
    expect(final.status).toBe("failed");
    expect(final.reason).toContain("knowledge unavailable");
    expect((await status("off-4"))?.status).toBe("suspended");
  });

  it("Given an operator, When they run `nexus tenants offboard`, Then the saga completes and the tenant's data is shredded; an unknown tenant is refused", async () => {
    const sealed = await tenantWithSecret("off-cli");
    // With the backup directory configured, the shred is on its shred list at once.
    const backups = tempDir("nexus-offboard-backups-");
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
          env: {
            ...process.env,
            LOG_LEVEL: "warn",
            NATS_URL: undefined,
            DATABASE_URL: testDb.url,
            NEXUS_MASTER_KEYS: MASTER,
            NEXUS_BACKUP_DIR: backups.dir,
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        child.stderr.on("data", (c: Buffer) => (out += c.toString()));
        child.on("exit", (code) => resolve({ code, out }));
      });
    const done = await run(["tenants", "offboard", "off-cli", "--reason", "closed account", "--saga-id", "cli-offboard", "--json"]);
    expect(done.code, done.out).toBe(0);
    expect(JSON.parse(done.out)).toMatchObject({ sagaId: "cli-offboard", status: "completed", tenantId: "off-cli" });
    expect((await status("off-cli"))?.status).toBe("suspended");
    await expect(keyring.openText({ tenantId: "off-cli", purpose: "documents" }, sealed)).rejects.toSatisfy(
      (e) => errorReason(e) === "DECRYPTION_FAILED",
    );
    const list = await readShredList(`${backups.dir}/${SHRED_LIST_FILE}`, parseMasterKeys(MASTER, "test"));
    expect(list.tenants.map((t) => t.tenantId)).toEqual(["off-cli"]);
    backups.remove();
    const missing = await run(["tenants", "offboard", "no-such-tenant", "--reason", "x"]);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("no tenant no-such-tenant");
    const noReason = await run(["tenants", "offboard", "off-cli"]);
    expect(noReason.code).not.toBe(0);
    expect(noReason.out).toContain("--reason");
  });

  async function workflowOf(tenantId: string, id: string, enabled = true) {
    await db.query(
      `INSERT INTO integration.workflows (id, tenant_id, name, current_version, kind, enabled) VALUES ($1, $2, $1, 1, 'fan_out', $3)`,
      [id, tenantId, enabled],
    );
  }
  const enabledOf = async (tenantId: string) =>
    Object.fromEntries(
      (
        await db.query<{ id: string; enabled: boolean }>("SELECT id, enabled FROM integration.workflows WHERE tenant_id = $1", [tenantId])
      ).rows.map((r) => [r.id, r.enabled]),
    );

  it("Given a tenant with integration workflows, When it is offboarded, Then they are paused first and deleted with its data; when the offboarding is compensated, Then only the ones it paused run again", async () => {
    await tenantWithSecret("off-5");
    await workflowOf("off-5", "wf-a");
    await workflowOf("off-5", "wf-paused-by-user", false);
    await workflowOf("someone-else", "wf-other");
    const done = tenantOffboardingSaga(db, keyring);
    await startSaga(db, done, { sagaId: "offboard-off-5", input: { tenantId: "off-5", reason: "r" } });
    expect((await runSaga(db, done, "offboard-off-5", instant)).status).toBe("completed");
    // Paused by stop-workflows (the Disabled event below), then deleted by integration's data deleter.
    expect(await enabledOf("off-5")).toEqual({});
    expect(await enabledOf("someone-else")).toEqual({ "wf-other": true });
    const events = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM platform.events WHERE stream_id = 'integration_workflow-wf-a' AND payload->>'change' = 'disabled'",
    );
    expect(events.rows[0]?.n).toBe(1);

    await tenantWithSecret("off-6");
    await workflowOf("off-6", "wf-b");
    await workflowOf("off-6", "wf-b-paused", false);
    const held = tenantOffboardingSaga(db, keyring, { checkLegalHold: () => Promise.reject(new Error("hold")) }, { maxAttempts: 1 });
    await startSaga(db, held, { sagaId: "offboard-off-6", input: { tenantId: "off-6", reason: "r" } });
    expect((await runSaga(db, held, "offboard-off-6", instant)).status).toBe("compensated");
    expect(await enabledOf("off-6")).toEqual({ "wf-b": true, "wf-b-paused": false });
  });
});
