import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "./pg-database.js";
import type { Database } from "./ports.js";

describeWithPostgres("pg database adapter", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("returns int8 values (columns, count(*), arrays) as bigint, like the PGlite adapter", async () => {
    const { rows } = await db.query<{ big: bigint; small: bigint; n: bigint; arr: bigint[]; param: bigint }>(
      "SELECT 9007199254740993::int8 AS big, 1::int8 AS small, count(*) AS n, ARRAY[1, 2]::int8[] AS arr, $1::int8 AS param FROM (VALUES (1)) v",
      [12345678901234567n],
    );
    expect(rows[0]).toEqual({ big: 9007199254740993n, small: 1n, n: 1n, arr: [1n, 2n], param: 12345678901234567n });
    expect(db.dialect).toBe("postgres");
    expect(typeof db.capabilities.vector).toBe("boolean");
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

  it("runs multi-statement scripts with exec", async () => {
    await db.exec("CREATE TABLE script_probe (v int); INSERT INTO script_probe VALUES (1), (2);");
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM script_probe");
    expect(rows[0]?.n).toBe(2);
  });

  it("delivers NOTIFY to listeners after commit, and not for a rolled-back transaction", async () => {
    const received: string[] = [];
    const unlisten = await db.listen("probe_channel", (p) => received.push(p));
    await db
      .transaction(async (tx) => {
        await tx.query("SELECT pg_notify('probe_channel', 'rolled back')");
        throw new Error("abort");
      })
      .catch(() => undefined);
    await db.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('probe_channel', 'committed')");
    });
    await expect.poll(() => received, { timeout: 5_000 }).toEqual(["committed"]);
    await unlisten();
  });
});
