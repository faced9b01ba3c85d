import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { governanceMigrations, placeLegalHold, releaseLegalHold } from "../governance/index.js";
import { migrateSchemas } from "../service/index.js";
import {
  createKeyring,
  keyringMigrations,
  loadOrCreateLocalMasterKeys,
  type MasterKeys,
  newMasterKeyLine,
  parseMasterKeys,
  resolveMasterKeys,
} from "./index.js";

const text = (s: string) => new TextEncoder().encode(s);
const A = { tenantId: "tenant-a", purpose: "documents" };
const B = { tenantId: "tenant-b", purpose: "documents" };

async function refusal(fn: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

function keyringSuite(name: string, open: () => Promise<{ db: Database; close: () => Promise<void> }>) {
  describe(`keyring on ${name}`, () => {
    let db: Database;
    let close: () => Promise<void>;
    const master1 = parseMasterKeys(newMasterKeyLine(1), "test");
    beforeAll(async () => {
      ({ db, close } = await open());
      await migrateSchemas(db, [keyringMigrations, governanceMigrations]);
    });
    afterAll(() => close());

    it("seals so the stored bytes carry no plaintext, and opens what it sealed", async () => {
      const keyring = createKeyring({ db, masterKeys: master1 });
      const sealed = await keyring.seal(A, text("quarterly salary table: Alice 120k"));
      expect(Buffer.from(sealed).includes(Buffer.from("salary"))).toBe(false);
      expect(new TextDecoder().decode(await keyring.open(A, sealed))).toBe("quarterly salary table: Alice 120k");
      const sealedText = await keyring.sealText(A, "db password: hunter2");
      expect(sealedText).toMatch(/^nxk1\./);
      expect(sealedText).not.toContain("hunter2");
      expect(await keyring.openText(A, sealedText)).toBe("db password: hunter2");
      // Another replica (its own cache) opens it too: the data key lives wrapped in the database.
      expect(await createKeyring({ db, masterKeys: master1 }).openText(A, sealedText)).toBe("db password: hunter2");
      const { rows } = await db.query<{ wrapped: Uint8Array }>("SELECT wrapped FROM platform.data_keys WHERE tenant_id = 'tenant-a'");
      expect(rows.length).toBe(1);
    });

    it("refuses a value moved to another tenant, another purpose or altered, with DECRYPTION_FAILED", async () => {
      const keyring = createKeyring({ db, masterKeys: master1 });
      await keyring.seal(B, text("b's own"));
      const sealed = await keyring.seal(A, text("a's secret"));
      for (const attempt of [
        () => keyring.open(B, sealed),
        () => keyring.open({ tenantId: "tenant-a", purpose: "sessions" }, sealed),
        () => {
          const bent = Buffer.from(sealed);
          bent[bent.length - 1]! ^= 1;
          return keyring.open(A, bent);
        },
        () => keyring.open(A, text("plain text, never sealed")),
        () => keyring.openText(A, "nxk1.AAAA"),
      ]) {
        const err = await refusal(attempt);
        expect(err.code).toBe(Code.DataLoss);
        expect(errorReason(err)).toBe("DECRYPTION_FAILED");
      }
    });

    it("rotates a data key: new seals name the new version, what was sealed before still opens", async () => {
      const keyring = createKeyring({ db, masterKeys: master1 });
      const scope = { tenantId: "tenant-rot", purpose: "sessions" };
      const before = await keyring.sealText(scope, "old message");
      expect(keyring.versionOf(before)).toBe(1);
      expect(await keyring.rotate(scope)).toBe(2);
      const after = await keyring.sealText(scope, "new message");
      expect(keyring.versionOf(after)).toBe(2);
      expect(await keyring.openText(scope, before)).toBe("old message");
      expect(await keyring.openText(scope, after)).toBe("new message");
    });

    it("refuses to crypto-shred a tenant while any legal hold of it is active (LEGAL_HOLD_ACTIVE)", async () => {
      const keyring = createKeyring({ db, masterKeys: master1 });
      const scope = { tenantId: "tenant-held", purpose: "documents" };
      const sealed = await keyring.seal(scope, text("evidence"));
      const hold = await placeLegalHold(db, { tenantId: "tenant-held", scope: "document", subjectId: "doc-1", reason: "case" });
      const refused = await refusal(() => keyring.shred("tenant-held"));
      expect(refused.code).toBe(Code.FailedPrecondition);
      expect(errorReason(refused)).toBe("LEGAL_HOLD_ACTIVE");
      expect(new TextDecoder().decode(await createKeyring({ db, masterKeys: master1 }).open(scope, sealed))).toBe("evidence");
      await releaseLegalHold(db, "tenant-held", hold.holdId);
      expect(await keyring.shred("tenant-held")).toBeGreaterThanOrEqual(1);
      expect(errorReason(await refusal(() => keyring.open(scope, sealed)))).toBe("DECRYPTION_FAILED");
    });

    it("crypto-shreds a tenant: nothing of it opens again, nothing new is sealed, other tenants unaffected", async () => {
      const keyring = createKeyring({ db, masterKeys: master1 });
      const scope = { tenantId: "tenant-gone", purpose: "documents" };
      const sealed = await keyring.seal(scope, text("to be forgotten"));
      const other = await keyring.seal(B, text("b stays"));
      expect(await keyring.shred("tenant-gone")).toBeGreaterThanOrEqual(1);
      expect(errorReason(await refusal(() => keyring.open(scope, sealed)))).toBe("DECRYPTION_FAILED");
      expect(errorReason(await refusal(() => createKeyring({ db, masterKeys: master1 }).open(scope, sealed)))).toBe("DECRYPTION_FAILED");
      expect((await refusal(() => keyring.seal(scope, text("new")))).code).toBe(Code.FailedPrecondition);
      expect(new TextDecoder().decode(await keyring.open(B, other))).toBe("b stays");
    });

    it("without a master key, refuses with KEYRING_NOT_CONFIGURED naming what to set", async () => {
      const err = await refusal(() => createKeyring({ db, masterKeys: undefined }).seal(A, text("x")));
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(errorReason(err)).toBe("KEYRING_NOT_CONFIGURED");
      expect(err.message).toContain("NEXUS_MASTER_KEYS");
    });

    // Last: re-wrapping is installation-wide, every key of the suite moves to master key 2.
    it("re-wraps data keys under a new master key, after which the old master key can go", async () => {
      const scope = { tenantId: "tenant-kek", purpose: "integration.credentials" };
      const old = createKeyring({ db, masterKeys: master1 });
      const sealed = await old.sealText(scope, "token-123");
      const line2 = newMasterKeyLine(2);
      const both = parseMasterKeys(`${newMasterKeyLineOf(master1, 1)}\n${line2}`, "test");
      const changed = await createKeyring({ db, masterKeys: both }).rewrap();
      expect(changed).toBeGreaterThanOrEqual(1);
      const onlyNew = createKeyring({ db, masterKeys: parseMasterKeys(line2, "test") });
      expect(await onlyNew.openText(scope, sealed)).toBe("token-123");
      // Without the master key that wraps a data key, the refusal names the missing version.
      const err = await refusal(() => createKeyring({ db, masterKeys: master1 }).openText(scope, sealed));
      expect(errorReason(err)).toBe("KEYRING_NOT_CONFIGURED");
      expect(err.message).toContain("version 2");
    });
  });
}

/** The `<version>:<base64>` line of a parsed master key (to build a key set with an added version). */
function newMasterKeyLineOf(keys: MasterKeys, version: number): string {
  return `${version}:${keys.key(version)!.toString("base64")}`;
}

keyringSuite("PGlite", async () => {
  const db = await createPgliteDatabase();
  return { db, close: () => db.close() };
});

describeWithPostgres("keyring shared by replicas on PostgreSQL", () => {
  let testDb: TestDatabase;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_keyring");
    a = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    b = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    await migrateSchemas(a, [keyringMigrations, governanceMigrations]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await testDb?.drop();
  });

  it("two replicas sealing a tenant's first value at once end with one data key both open with", async () => {
    const master = parseMasterKeys(newMasterKeyLine(1), "test");
    const replicas = [createKeyring({ db: a, masterKeys: master }), createKeyring({ db: b, masterKeys: master })];
    const scope = { tenantId: "tenant-race", purpose: "documents" };
    const sealed = await Promise.all(Array.from({ length: 20 }, (_, i) => replicas[i % 2]!.sealText(scope, `value ${i}`)));
    const { rows } = await a.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.data_keys WHERE tenant_id = 'tenant-race'");
    expect(rows[0]!.n).toBe(1);
    for (const [i, s] of sealed.entries()) expect(await replicas[(i + 1) % 2]!.openText(scope, s)).toBe(`value ${i}`);
  });
});

keyringSuite("PostgreSQL", async () => {
  const testDb = await createTestDatabase("nexus_keyring_suite");
  const db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
  return {
    db,
    close: async () => {
      await db.close();
      await testDb.drop();
    },
  };
});

describe("master keys", () => {
  it("parse <version>:<base64>, the highest version current; malformed input is refused with what is expected", () => {
    const keys = parseMasterKeys(`# comment\n${newMasterKeyLine(1)}\n${newMasterKeyLine(3)}`, "file");
    expect(keys.current).toBe(3);
    expect(keys.versions()).toEqual([1, 3]);
    expect(() => parseMasterKeys("1:c2hvcnQ=", "NEXUS_MASTER_KEYS")).toThrow(/32 bytes/);
    expect(() => parseMasterKeys("hello", "NEXUS_MASTER_KEYS")).toThrow(/<version>:<base64/);
    expect(() => parseMasterKeys(`${newMasterKeyLine(1)},${newMasterKeyLine(1)}`, "x")).toThrow(/twice/);
  });

  it("come from NEXUS_MASTER_KEYS, else the key file, else (embedded only) a generated file readable by its owner only", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "nexus-keys-"));
    const file = path.join(dir, "mounted");
    const fromEnv = parseMasterKeys(newMasterKeyLine(5), "NEXUS_MASTER_KEYS");
    expect((await resolveMasterKeys({ fromEnv, file, embedded: true, dataDir: dir }))?.current).toBe(5);
    expect(await resolveMasterKeys({ fromEnv: undefined, file, embedded: false, dataDir: dir })).toBeUndefined();
    const generated = await resolveMasterKeys({ fromEnv: undefined, file, embedded: true, dataDir: dir });
    expect(generated?.source).toBe(`generated:${path.join(dir, "master-keys")}`);
    expect((await stat(path.join(dir, "master-keys"))).mode & 0o777).toBe(0o600);
    // The next start finds the same key.
    const again = await loadOrCreateLocalMasterKeys(dir);
    expect(again.key(1)!.equals(generated!.key(1)!)).toBe(true);
    await writeFile(file, `${newMasterKeyLine(2)}\n`);
    expect((await resolveMasterKeys({ fromEnv: undefined, file, embedded: false, dataDir: dir }))?.current).toBe(2);
    await writeFile(file, "2:not-a-key\n");
    await expect(resolveMasterKeys({ fromEnv: undefined, file, embedded: false, dataDir: dir })).rejects.toThrow(/32 bytes|<version>/);
    expect(await readFile(path.join(dir, "master-keys"), "utf8")).toContain("Keep it secret");
  });
});
