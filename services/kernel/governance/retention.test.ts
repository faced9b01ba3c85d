import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { migrateSchemas } from "../service/index.js";
import { acquireLease, governanceMigrations, placeLegalHold, type RetentionTarget, runRetention, setRetentionPolicy } from "./index.js";

// The embedded engine of `nexus dev` (PGlite): the same holds and retention as on PostgreSQL
// (tests/governance-retention.test.ts runs them on a real mesh over PostgreSQL).
const TARGET: RetentionTarget = { category: "sessions", table: "t.items", idColumn: "item_id", timeColumn: "at", holdScope: "session" };

describe("retention and legal holds on PGlite", () => {
  let db: Database;
  beforeAll(async () => {
    db = await createPgliteDatabase();
    await migrateSchemas(db, [governanceMigrations]);
    await db.exec(`CREATE SCHEMA t;
      CREATE TABLE t.items (tenant_id text NOT NULL, item_id text NOT NULL, at timestamptz NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, item_id));`);
  });
  afterAll(async () => {
    await db?.close();
  });

  it("removes exactly the expired, unheld rows of the tenants with a policy, in batches, and reports", async () => {
    const now = new Date("2026-06-01T00:00:00Z");
    const day = 86_400_000;
    for (let i = 0; i < 25; i++) {
      await db.query("INSERT INTO t.items VALUES ('a', $1, $2, 'x'), ('b', $1, $2, 'x')", [
        `i${String(i).padStart(2, "0")}`,
        new Date(now.getTime() - (i < 20 ? 40 : 5) * day),
      ]);
    }
    const hold = await placeLegalHold(db, { tenantId: "a", scope: "session", subjectId: "i03" });
    await setRetentionPolicy(db, { tenantId: "a", category: "sessions", maxAgeDays: 30, action: "delete" });
    const reports = await runRetention(db, [{ ...TARGET, batchSize: 7 }], () => now);
    expect(reports).toEqual([
      expect.objectContaining({ tenantId: "a", target: "t.items", expired: 20, removed: 19, held: 1, heldBy: [hold.holdId] }),
    ]);
    const left = await db.query<{ tenant_id: string; n: number }>(
      "SELECT tenant_id, count(*)::int AS n FROM t.items GROUP BY tenant_id ORDER BY tenant_id",
    );
    expect(left.rows).toEqual([
      { tenant_id: "a", n: 6 },
      { tenant_id: "b", n: 25 },
    ]);
    // The next run keeps the held row and removes nothing: reported once, not again after that.
    expect((await runRetention(db, [TARGET], () => now))[0]).toMatchObject({ expired: 1, removed: 0, held: 1 });
    expect(await runRetention(db, [TARGET], () => now)).toEqual([]);
    const stored = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.retention_reports WHERE tenant_id = 'a'");
    expect(stored.rows[0]?.n).toBe(2);
  });

  it("keeps rows a user or key hold covers through moreHolds, and skips a tenant whose lease another replica holds", async () => {
    await db.exec(`CREATE TABLE t.owned (tenant_id text NOT NULL, item_id text NOT NULL, at timestamptz NOT NULL, owner text NOT NULL,
      key_id text NOT NULL, PRIMARY KEY (tenant_id, item_id));`);
    const now = new Date("2026-06-01T00:00:00Z");
    const old = new Date(now.getTime() - 40 * 86_400_000);
    for (const [id, owner, key] of [
      ["o1", "alice", "k1"],
      ["o2", "bob", "k2"],
      ["o3", "carol", "k3"],
    ])
      await db.query("INSERT INTO t.owned VALUES ('c', $1, $2, $3, $4)", [id, old, owner, key]);
    const owned: RetentionTarget = {
      ...TARGET,
      table: "t.owned",
      moreHolds: [
        { scope: "user", subject: "owner" },
        { scope: "key", subject: "key_id" },
      ],
    };
    const userHold = await placeLegalHold(db, { tenantId: "c", scope: "user", subjectId: "alice" });
    const keyHold = await placeLegalHold(db, { tenantId: "c", scope: "key", subjectId: "k3" });
    await setRetentionPolicy(db, { tenantId: "c", category: "sessions", maxAgeDays: 30, action: "delete" });
    // Another replica holds the tenant's lease for this table: this run leaves it alone.
    expect(await acquireLease(db, "retention:c:t.owned", 60_000)).toBe(true);
    const { rows: stolen } = await db.query<{ n: number }>(
      "UPDATE platform.governance_leases SET holder = 'other-replica' WHERE name = 'retention:c:t.owned' RETURNING 1 AS n",
    );
    expect(stolen).toHaveLength(1);
    expect((await runRetention(db, [owned], () => now)).filter((r) => r.tenantId === "c")).toEqual([]);
    expect((await db.query("SELECT 1 FROM t.owned")).rows).toHaveLength(3);
    // Once it expired, this replica takes it: only bob's row (no hold) goes.
    await db.query("UPDATE platform.governance_leases SET until = now() - interval '1 second' WHERE name = 'retention:c:t.owned'");
    const [report] = (await runRetention(db, [owned], () => now)).filter((r) => r.tenantId === "c");
    expect(report).toMatchObject({ expired: 3, removed: 1, held: 2, heldBy: [userHold.holdId, keyHold.holdId].sort() });
    expect((await db.query<{ item_id: string }>("SELECT item_id FROM t.owned ORDER BY item_id")).rows.map((r) => r.item_id)).toEqual([
      "o1",
      "o3",
    ]);
  });

  it("refuses a target table name that is not a plain identifier, and an unknown hold scope", async () => {
    await expect(runRetention(db, [{ ...TARGET, table: "t.items; DROP TABLE x" }])).rejects.toThrow(/not a plain SQL identifier/);
    const err = await placeLegalHold(db, { tenantId: "a", scope: "planet" as "tenant" }).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("INVALID_ARGUMENT");
  });
});
