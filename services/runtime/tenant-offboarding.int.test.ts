import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NEXUS_BIN, tempDir } from "../../tests/support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
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
import { LEGAL_HOLD_STEP, tenantOffboardingSaga } from "./tenant-offboarding.js";

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
    expect(final.completed).toEqual(["suspend-keys", LEGAL_HOLD_STEP, "shred-keys", "delete-data"]);
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
});
