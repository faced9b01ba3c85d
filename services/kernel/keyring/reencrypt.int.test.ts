import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { governanceMigrations } from "../governance/index.js";
import { migrateSchemas } from "../service/index.js";
import {
  createFieldCipher,
  createKeyring,
  getKeyringJob,
  keyringMigrations,
  listKeyringJobs,
  newMasterKeyLine,
  parseMasterKeys,
  runReencryptJobs,
  type SealedField,
  startKeyRotation,
} from "./index.js";

const TENANT = "tenant-rot";
const FIELDS: SealedField[] = [
  { name: "t.notes.body", purpose: "notes", table: "t.notes", key: ["note_id"], column: "body", kind: "text" },
  { name: "t.blobs.bytes", purpose: "notes", table: "t.blobs", key: ["blob_id", "part"], column: "bytes", kind: "bytes" },
];

describeWithPostgres("keyring re-encryption after a rotation (real PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  const master = parseMasterKeys(newMasterKeyLine(1), "test");
  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_keyring_rotation");
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    await migrateSchemas(db, [keyringMigrations, governanceMigrations]);
    await db.exec(`CREATE SCHEMA t;
      CREATE TABLE t.notes (tenant_id text NOT NULL, note_id text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, note_id));
      CREATE TABLE t.blobs (tenant_id text NOT NULL, blob_id text NOT NULL, part int NOT NULL, bytes bytea NOT NULL, PRIMARY KEY (tenant_id, blob_id, part));`);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  const versions = async (table: string, column: string, keyring = createKeyring({ db, masterKeys: master })) => {
    const { rows } = await db.query<{ v: string | Uint8Array }>(`SELECT ${column} AS v FROM ${table} WHERE tenant_id = $1`, [TENANT]);
    return rows.map((r) => keyring.versionOf(r.v));
  };

  it("moves every value to the new version in resumable batches while writes go on, then retires the old version", async () => {
    const keyring = createKeyring({ db, masterKeys: master, cacheMs: 0 });
    const cipher = createFieldCipher(keyring, "notes", "on");
    for (let i = 0; i < 120; i++) {
      await db.query("INSERT INTO t.notes VALUES ($1, $2, $3)", [TENANT, `n${i}`, await cipher.sealText(TENANT, `note number ${i}`)]);
    }
    // Ten values written in the clear before encryption was turned on: the job seals them too.
    for (let i = 120; i < 130; i++) await db.query("INSERT INTO t.notes VALUES ($1, $2, $3)", [TENANT, `n${i}`, `clear note ${i}`]);
    for (let i = 0; i < 30; i++) {
      await db.query("INSERT INTO t.blobs VALUES ($1, $2, $3, $4)", [
        TENANT,
        `b${i % 3}`,
        i,
        await cipher.sealBytes(TENANT, Buffer.from(`blob ${i}`)),
      ]);
    }
    // Another tenant's values are not touched.
    await db.query("INSERT INTO t.notes VALUES ('other', 'x', $1)", [
      await createFieldCipher(keyring, "notes", "on").sealText("other", "other's note"),
    ]);
    const otherBefore = (await db.query<{ body: string }>("SELECT body FROM t.notes WHERE tenant_id = 'other'")).rows[0]!.body;

    const started = await startKeyRotation(db, keyring, { tenantId: TENANT, purpose: "notes" });
    expect(started.targetVersion).toBe(2);
    expect(started.status).toBe("pending");

    // A "crash" after three batches: the progress is saved, the lease expires, a new process resumes.
    const options = { db, keyring, fields: FIELDS, mode: "on" as const, batchSize: 25, graceMs: 0 };
    expect(await runReencryptJobs({ ...options, maxBatches: 3 })).toBe(0);
    const mid = (await getKeyringJob(db, started.jobId))!;
    expect(mid.status).toBe("running");
    expect(mid.progress["t.notes.body"]!.scanned).toBe(75);
    expect(mid.progress["t.notes.body"]!.resealed).toBe(75);
    expect(mid.progress["t.notes.body"]!.cursor).toBeDefined();
    // Values written meanwhile use the new version (no downtime; the job does not overwrite them).
    await db.query("INSERT INTO t.notes VALUES ($1, 'n999', $2)", [TENANT, await cipher.sealText(TENANT, "written during the job")]);
    await db.query("UPDATE t.notes SET body = $2 WHERE tenant_id = $1 AND note_id = 'n119'", [
      TENANT,
      await cipher.sealText(TENANT, "edited"),
    ]);
    // The lease of the crashed run is still held: another runner leaves the job alone until it expires.
    expect(await runReencryptJobs({ ...options, keyring: createKeyring({ db, masterKeys: master }) })).toBe(0);
    await db.query("UPDATE platform.keyring_jobs SET locked_until = now() - interval '1 second' WHERE job_id = $1", [started.jobId]);
    const resumed = createKeyring({ db, masterKeys: master });
    const finishedJobs = await runReencryptJobs({ ...options, keyring: resumed });
    expect(await getKeyringJob(db, started.jobId)).toMatchObject({ status: "done", error: "" });
    expect(finishedJobs).toBe(1);

    const done = (await getKeyringJob(db, started.jobId))!;
    expect(done.status).toBe("done");
    expect(done.retiredVersions).toEqual([1]);
    // First pass resealed 130 notes minus the one edited meanwhile, counted across the crash.
    expect(await versions("t.notes", "body")).toEqual(Array(131).fill(2));
    expect(await versions("t.blobs", "bytes")).toEqual(Array(30).fill(2));
    const { rows } = await db.query<{ note_id: string; body: string }>("SELECT note_id, body FROM t.notes WHERE tenant_id = $1", [TENANT]);
    const texts = new Map(await Promise.all(rows.map(async (r) => [r.note_id, await cipher.openText(TENANT, r.body)] as const)));
    expect(texts.get("n0")).toBe("note number 0");
    expect(texts.get("n119")).toBe("edited");
    expect(texts.get("n125")).toBe("clear note 125");
    expect(texts.get("n999")).toBe("written during the job");
    expect(texts.size).toBe(131);
    for (const r of rows) expect(r.body).not.toContain("note");
    // The old data key is destroyed: nothing could still need it.
    const keys = await db.query<{ version: number; destroyed: boolean }>(
      "SELECT version, destroyed_at IS NOT NULL AS destroyed FROM platform.data_keys WHERE tenant_id = $1 AND purpose = 'notes' ORDER BY version",
      [TENANT],
    );
    expect(keys.rows).toEqual([
      { version: 1, destroyed: true },
      { version: 2, destroyed: false },
    ]);
    expect((await db.query<{ body: string }>("SELECT body FROM t.notes WHERE tenant_id = 'other'")).rows[0]!.body).toBe(otherBefore);
    expect((await listKeyringJobs(db, { tenantId: TENANT })).map((j) => j.jobId)).toEqual([started.jobId]);
  });

  it("seals a new tenant's first values in many transactions at once, more than the pool has connections", async () => {
    // Each transaction holds a connection; the first data key is made inside them, not on
    // another connection (which a pool full of waiting transactions could never hand out).
    const keyring = createKeyring({ db, masterKeys: master });
    const cipher = createFieldCipher(keyring, "notes", "on");
    const sealed = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        db.transaction(async (tx) => {
          await tx.query("SELECT 1");
          return cipher.sealText("tenant-burst", `burst ${i}`, tx);
        }),
      ),
    );
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.data_keys WHERE tenant_id = 'tenant-burst'");
    expect(rows[0]!.n).toBe(1);
    for (const [i, s] of sealed.entries()) expect(await cipher.openText("tenant-burst", s)).toBe(`burst ${i}`);
  });

  it("caches nothing a rolled-back transaction made: a value sealed afterwards opens on another replica", async () => {
    const keyring = createKeyring({ db, masterKeys: master });
    const cipher = createFieldCipher(keyring, "notes", "on");
    const rolledBack = db.transaction(async (tx) => {
      await cipher.sealText("tenant-rollback", "first", tx);
      await cipher.sealText("tenant-rollback", "second", tx);
      throw new Error("the caller's transaction fails");
    });
    await expect(rolledBack).rejects.toThrow(/fails/);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.data_keys WHERE tenant_id = 'tenant-rollback'");
    expect(rows[0]!.n).toBe(0);
    const sealed = await cipher.sealText("tenant-rollback", "after");
    expect(await createFieldCipher(createKeyring({ db, masterKeys: master }), "notes", "on").openText("tenant-rollback", sealed)).toBe(
      "after",
    );
  });

  it("does not retire an old version before the grace period, and a value left under it afterwards would fail clearly", async () => {
    const keyring = createKeyring({ db, masterKeys: master, cacheMs: 0 });
    const cipher = createFieldCipher(keyring, "notes", "on");
    const tenant = "tenant-grace";
    await db.query("INSERT INTO t.notes VALUES ($1, 'g1', $2)", [tenant, await cipher.sealText(tenant, "graceful")]);
    const job = await startKeyRotation(db, keyring, { tenantId: tenant, purpose: "notes" });
    expect(await runReencryptJobs({ db, keyring, fields: FIELDS, mode: "on", graceMs: 3_600_000 })).toBe(0);
    const waiting = (await getKeyringJob(db, job.jobId))!;
    expect(waiting.phase).toBe("verify");
    expect(waiting.status).toBe("running");
    expect(waiting.retiredVersions).toEqual([]);
    // Version 1 still exists: a late write under it would still open.
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM platform.data_keys WHERE tenant_id = $1 AND wrapped IS NOT NULL",
      [tenant],
    );
    expect(rows[0]!.n).toBe(2);
    // A value sealed under a destroyed version is refused with DECRYPTION_FAILED, not garbage.
    const stale = await keyring.sealText({ tenantId: "tenant-gone", purpose: "notes" }, "x");
    await keyring.shred("tenant-gone");
    const err = await keyring.openText({ tenantId: "tenant-gone", purpose: "notes" }, stale).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DataLoss);
    expect(errorReason(err as ConnectError)).toBe("DECRYPTION_FAILED");
  });
});
