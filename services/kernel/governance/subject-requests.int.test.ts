import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NEXUS_BIN } from "../../../tests/support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { migratePlatform } from "../events/index.js";
import { createKeyring, keyringMigrations, newMasterKeyLine, parseMasterKeys } from "../keyring/index.js";
import { migrateSchemas } from "../service/index.js";
import {
  createSubjectRequest,
  getSubjectArchive,
  getSubjectRequest,
  governanceMigrations,
  listRetentionPolicies,
  listSubjectRequests,
  type PartRetryPolicy,
  retrySubjectRequest,
  runRetention,
  runSubjectRequests,
  SUBJECT_PARTS,
  type SubjectArchive,
  type SubjectDataContributor,
  setRetentionPolicy,
} from "./index.js";

/**
 * Data-subject request parts that keep failing (real PostgreSQL): bounded retries with
 * backoff, then the request is FAILED with each failed part's error; a retry restarts it and
 * keeps the parts already done. An export without a master key is refused when asked.
 */
describeWithPostgres("data-subject request retries (real PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  const keyring = () => createKeyring({ db, masterKeys: parseMasterKeys(newMasterKeyLine(1), "test") });
  const by = { keyId: "admin-key" };
  const retry: PartRetryPolicy = { maxAttempts: 3, baseMs: 100, maxMs: 400 };

  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_dsar_retries");
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateSchemas(db, [keyringMigrations, governanceMigrations]);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("refuses an export without a master key when it is asked (KEYRING_NOT_CONFIGURED), not by retrying", async () => {
    const none = createKeyring({ db, masterKeys: undefined });
    const err = await db
      .transaction((tx) =>
        createSubjectRequest(tx, { tenantId: "t1", kind: "export", subject: { scope: "key", id: "k1" }, by, keyring: none }),
      )
      .catch((e: unknown) => e);
    expect(errorReason(err)).toBe("KEYRING_NOT_CONFIGURED");
    expect((err as Error).message).toContain("NEXUS_MASTER_KEYS");
    expect(await listSubjectRequests(db, "t1")).toEqual([]);
    // An erase needs no key: it is accepted.
    const erase = await db.transaction((tx) =>
      createSubjectRequest(tx, { tenantId: "t1", kind: "erase", subject: { scope: "key", id: "k1" }, by, keyring: none }),
    );
    expect(erase.status).toBe("running");
  });

  it("fails a request whose part keeps failing after bounded retries with backoff, shows the error per part, and retries it", async () => {
    const k = keyring();
    let broken = true;
    const contributors: SubjectDataContributor[] = SUBJECT_PARTS.map((part) => ({
      part,
      async export(_q, _t, subject) {
        if (part === "documents" && broken) throw new Error("the content store is unreachable");
        return [{ part, subject: subject.id }];
      },
      async erase() {
        return { removed: 0, kept: 0 };
      },
    }));
    const request = await db.transaction((tx) =>
      createSubjectRequest(tx, { tenantId: "t2", kind: "export", subject: { scope: "key", id: "k2" }, by, keyring: k }),
    );
    const runAll = async () => {
      for (const c of contributors) await runSubjectRequests(db, k, c, retry);
    };

    await runAll();
    let r = await getSubjectRequest(db, "t2", request.requestId);
    expect(r.status).toBe("running");
    expect(r.error).toMatch(/^documents: the content store is unreachable \(attempt 1 of 3; next in/);
    // Within the backoff the part is not tried again.
    await runAll();
    expect((await getSubjectRequest(db, "t2", request.requestId)).error).toContain("attempt 1 of 3");

    const deadline = Date.now() + 30_000;
    while ((r = await getSubjectRequest(db, "t2", request.requestId)).status === "running" && Date.now() < deadline) {
      await runAll();
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(r.status).toBe("failed");
    expect(r.finishedAt).not.toBeNull();
    expect(r.error).toContain("documents: the content store is unreachable (failed 3 times");
    expect(r.summary).toEqual({
      audit: { items: 1 },
      documents: { items: 0, error: "the content store is unreachable", attempts: 3 },
      sessions: { items: 1 },
      usage: { items: 1 },
    });
    expect((await listSubjectRequests(db, "t2"))[0]).toMatchObject({ status: "failed", summary: r.summary });
    // A failed request is never picked up again by itself.
    await runAll();
    expect((await getSubjectRequest(db, "t2", request.requestId)).status).toBe("failed");
    expect(errorReason(await getSubjectArchive(db, k, "t2", request.requestId).catch((e: unknown) => e))).toBe("FAILED_PRECONDITION");

    // The operator sees the failed part at the CLI too, and restarts the request there.
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, [NEXUS_BIN, "governance", "dsar", ...args], {
        env: { ...process.env, DATABASE_URL: testDb.url },
      });
    const listed = await cli("list", "--tenant", "t2");
    expect(listed.stdout).toContain(`${request.requestId}  export of key k2  FAILED`);
    expect(listed.stdout).toContain("documents: FAILED after 3 attempt(s): the content store is unreachable");
    expect(listed.stdout).toContain("sessions: 1 item(s)");

    // Retry: only the failed part runs again; the request completes with every part.
    broken = false;
    expect((await cli("retry", "--tenant", "t2", "--request", request.requestId)).stdout).toContain("is running again");
    const restarted = await getSubjectRequest(db, "t2", request.requestId);
    // Both the failure and the retry are recorded for the tenant's audit trail.
    const { rows: facts } = await db.query<{ type: string; actor: string; payload: Record<string, unknown> }>(
      "SELECT type, metadata->>'actor' AS actor, payload FROM platform.events WHERE stream_id = 'governance-t2' ORDER BY version",
    );
    expect(facts.map((f) => [f.type, f.actor])).toEqual([
      ["nexus.events.v1.DataSubjectRequestFailed", "system"],
      ["nexus.events.v1.DataSubjectRequestRetried", `cli:${process.env.USER || "operator"}`],
    ]);
    expect(facts[0]!.payload).toMatchObject({ part: "documents", error: "the content store is unreachable", attempts: 3 });
    expect(restarted).toMatchObject({ status: "running", error: "", summary: {}, finishedAt: null });
    await runAll();
    r = await getSubjectRequest(db, "t2", request.requestId);
    expect(r.status).toBe("done");
    expect(r.summary).toEqual({ audit: { items: 1 }, documents: { items: 1 }, sessions: { items: 1 }, usage: { items: 1 } });
    const archive = JSON.parse((await getSubjectArchive(db, k, "t2", request.requestId)).toString("utf8")) as SubjectArchive;
    expect(Object.keys(archive.content.parts).sort()).toEqual(["audit", "documents", "sessions", "usage"]);

    // Only a failed request can be retried; another tenant's is not found.
    expect(errorReason(await db.transaction((tx) => retrySubjectRequest(tx, "t2", request.requestId)).catch((e: unknown) => e))).toBe(
      "FAILED_PRECONDITION",
    );
    expect(errorReason(await db.transaction((tx) => retrySubjectRequest(tx, "t1", request.requestId)).catch((e: unknown) => e))).toBe(
      "NOT_FOUND",
    );
  });

  it("anonymize: applied to sessions, refused with INVALID_ARGUMENT for documents, audit and usage", async () => {
    for (const category of ["documents", "audit", "usage"] as const) {
      const err = await setRetentionPolicy(db, { tenantId: "t3", category, maxAgeDays: 30, action: "anonymize" }).catch((e: unknown) => e);
      expect(errorReason(err), category).toBe("INVALID_ARGUMENT");
      expect((err as Error).message).toMatch(new RegExp(`${category} cannot be anonymized: .*use delete$`));
      // delete is accepted for each.
      await setRetentionPolicy(db, { tenantId: "t3", category, maxAgeDays: 30, action: "delete" });
    }
    // Sessions: the expired rows are rewritten, kept, and not reported again.
    await db.exec(`CREATE SCHEMA IF NOT EXISTS anon;
      CREATE TABLE anon.sessions (tenant_id text NOT NULL, session_id text NOT NULL, updated_at timestamptz NOT NULL, title text NOT NULL,
        PRIMARY KEY (tenant_id, session_id));
      INSERT INTO anon.sessions VALUES ('t3', 'old', now() - interval '40 days', 'secret question'), ('t3', 'new', now(), 'recent question');`);
    await setRetentionPolicy(db, { tenantId: "t3", category: "sessions", maxAgeDays: 30, action: "anonymize" });
    expect((await listRetentionPolicies(db, "t3")).map((p) => `${p.category}:${p.action}`)).toEqual([
      "audit:delete",
      "documents:delete",
      "sessions:anonymize",
      "usage:delete",
    ]);
    const target = {
      category: "sessions" as const,
      table: "anon.sessions",
      idColumn: "session_id",
      timeColumn: "updated_at",
      holdScope: "session" as const,
      anonymize: { title: "''" },
    };
    const reports = await runRetention(db, [target]);
    expect(reports).toEqual([expect.objectContaining({ tenantId: "t3", action: "anonymize", expired: 1, removed: 1, held: 0 })]);
    const { rows } = await db.query<{ session_id: string; title: string }>(
      "SELECT session_id, title FROM anon.sessions ORDER BY session_id",
    );
    expect(rows).toEqual([
      { session_id: "new", title: "recent question" },
      { session_id: "old", title: "" },
    ]);
    expect(await runRetention(db, [target])).toEqual([]);
  });
});
