import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { errorReason } from "../services/kernel/errors.js";
import { governanceMigrations } from "../services/kernel/governance/index.js";
import { createKeyring, keyringMigrations, newMasterKeyLine, parseMasterKeys } from "../services/kernel/keyring/index.js";
import { migrateSchemas } from "../services/kernel/service/index.js";
import { backup, readShredList, restore, SHRED_LIST_FILE, shredListRecorder } from "../services/runtime/backup.js";
import { tempDir } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "./support/services.js";

/**
 * A crypto-shred after the newest backup is on the shred list at the moment of the shred when
 * a backup directory is configured (NEXUS_BACKUP_DIR → the keyring's `onShredded`), not only
 * once the next backup runs: restoring that newest (pre-shred) backup destroys the tenant's
 * keys again, with no backup taken in between (docs/governance.md#crypto-shredding).
 */
describeWithPostgres("shred list written at shred time (real PostgreSQL)", () => {
  const masterKeys = parseMasterKeys(newMasterKeyLine(1), "test");
  let source: TestDatabase;
  let target: TestDatabase;
  let db: Database;
  let dir: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    dir = tempDir("nexus-shred-at-shred-");
    source = await createTestDatabase("nexus_shred_src");
    target = await createTestDatabase("nexus_shred_dst");
    db = await createPgDatabase({ url: source.url, poolSize: 3 });
    await migrateSchemas(db, [keyringMigrations, governanceMigrations]);
    await db.exec("CREATE SCHEMA t; CREATE TABLE t.secrets (tenant_id text PRIMARY KEY, sealed text NOT NULL);");
  });
  afterAll(async () => {
    await db?.close();
    await source?.drop();
    await target?.drop();
    dir?.remove();
  });

  it("lists the shredded tenant at once, and a restore of the pre-shred backup destroys its keys again", async () => {
    const plain = createKeyring({ db, masterKeys });
    for (const tenantId of ["gone", "stays"])
      await db.query("INSERT INTO t.secrets VALUES ($1, $2)", [
        tenantId,
        await plain.sealText({ tenantId, purpose: "documents" }, `the secret of ${tenantId}`),
      ]);
    // The newest backup, taken while "gone" still has its keys: no shred list yet.
    const { manifestPath } = await backup({ databaseUrl: source.url, masterKeys, outDir: dir.dir });
    const listFile = path.join(dir.dir, SHRED_LIST_FILE);
    expect(existsSync(listFile)).toBe(false);

    // The shred, with the backup directory configured: the list is written now, signed.
    const keyring = createKeyring({ db, masterKeys, onShredded: shredListRecorder(dir.dir, masterKeys) });
    expect(await keyring.shred("gone")).toBeGreaterThan(0);
    const list = await readShredList(listFile, masterKeys);
    expect(list.tenants.map((t) => t.tenantId)).toEqual(["gone"]);
    // A repeated shred (a retried offboarding step) leaves the list as it is.
    await keyring.shred("gone");
    expect((await readShredList(listFile, masterKeys)).tenants.map((t) => t.tenantId)).toEqual(["gone"]);

    // No backup ran since: restoring the pre-shred backup re-applies the list written at shred time.
    const restored = await restore({ manifestPath, masterKeys, targetUrl: target.url });
    expect(restored.reshredded).toEqual(["gone"]);
    const copy = await createPgDatabase({ url: target.url, poolSize: 2 });
    try {
      const k = createKeyring({ db: copy, masterKeys });
      const { rows } = await copy.query<{ tenant_id: string; sealed: string }>(
        "SELECT tenant_id, sealed FROM t.secrets ORDER BY tenant_id",
      );
      const err = await k.openText({ tenantId: "gone", purpose: "documents" }, rows[0]!.sealed).catch((e: unknown) => e);
      expect(errorReason(err)).toBe("DECRYPTION_FAILED");
      expect(await k.openText({ tenantId: "stays", purpose: "documents" }, rows[1]!.sealed)).toBe("the secret of stays");
    } finally {
      await copy.close();
    }
  }, 120_000);
});
