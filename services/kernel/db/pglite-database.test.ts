import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPgliteDatabase } from "./pglite-database.js";
import type { Database } from "./ports.js";

describe("PGlite database adapter", () => {
  let db: Database;

  beforeAll(async () => {
    db = await createPgliteDatabase();
  });
  afterAll(async () => {
    await db.close();
  });

  it("returns int8 values (columns, count(*), arrays) as bigint and accepts bigint parameters", async () => {
    const { rows } = await db.query<{ big: bigint; small: bigint; n: bigint; arr: bigint[]; param: bigint }>(
      "SELECT 9007199254740993::int8 AS big, 1::int8 AS small, count(*) AS n, ARRAY[1, 2]::int8[] AS arr, $1::int8 AS param FROM (VALUES (1)) v",
      [12345678901234567n],
    );
    expect(rows[0]).toEqual({ big: 9007199254740993n, small: 1n, n: 1n, arr: [1n, 2n], param: 12345678901234567n });
  });

  it("offers pgvector", async () => {
    expect(db.capabilities.vector).toBe(true);
    await db.exec("CREATE EXTENSION IF NOT EXISTS vector");
    const { rows } = await db.query<{ d: number }>("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector AS d");
    expect(rows[0]?.d).toBeCloseTo(2);
  });

  it("commits a transaction that resolves and rolls back one that throws", async () => {
    await db.exec("CREATE TABLE tx_probe (id int PRIMARY KEY)");
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO tx_probe VALUES (1)");
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO tx_probe VALUES (2)");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    const { rows } = await db.query<{ id: number }>("SELECT id FROM tx_probe ORDER BY id");
    expect(rows.map((r) => r.id)).toEqual([1]);
  });

  it("keeps concurrent transactions from interleaving (no lost updates)", async () => {
    await db.exec("CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)");
    await Promise.all(
      Array.from({ length: 10 }, () =>
        db.transaction(async (tx) => {
          const { rows } = await tx.query<{ n: number }>("SELECT n FROM counter");
          // Yield so other callers get every chance to slip a statement in between.
          await sleep(2);
          await tx.query("UPDATE counter SET n = $1", [(rows[0]?.n ?? 0) + 1]);
        }),
      ),
    );
    const { rows } = await db.query<{ n: number }>("SELECT n FROM counter");
    expect(rows[0]?.n).toBe(10);
  });

  it("refuses to use the database from inside its own transaction instead of hanging", async () => {
    await expect(db.transaction(async () => db.query("SELECT 1"))).rejects.toThrow(/single connection/);
  });

  it("refuses a transaction handle used after its transaction ended", async () => {
    const leaked = await db.transaction(async (tx) => tx);
    await expect(leaked.query("SELECT 1")).rejects.toThrow(/transaction is closed/);
  });

  it("delivers NOTIFY to listeners after commit", async () => {
    const received: string[] = [];
    const unlisten = await db.listen("probe_channel", (p) => received.push(p));
    await db.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('probe_channel', 'hello')");
    });
    await expect.poll(() => received, { timeout: 2_000 }).toEqual(["hello"]);
    await unlisten();
  });
});

describe("PGlite database adapter with a data directory", () => {
  it("keeps data across close and reopen", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nexus-pglite-"));
    try {
      const first = await createPgliteDatabase({ dataDir: dir });
      await first.exec("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");
      await first.close();
      const second = await createPgliteDatabase({ dataDir: dir });
      const { rows } = await second.query<{ v: string }>("SELECT v FROM kept");
      await second.close();
      expect(rows).toEqual([{ v: "still here" }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
