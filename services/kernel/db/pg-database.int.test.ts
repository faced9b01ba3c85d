import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "./pg-database.js";
import { isDatabaseUnavailableError } from "./pg-error.js";
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

  it("survives pg_terminate_backend of an idle-in-transaction connection: the transaction fails as unavailable, the pool recovers", async () => {
    await db.exec("CREATE TABLE kill_probe (id int PRIMARY KEY)");
    let backend = 0;
    let resume: () => void = () => {};
    const paused = new Promise<void>((resolve) => (resume = resolve));
    const tx = db.transaction(async (t) => {
      const { rows } = await t.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      backend = rows[0]!.pid;
      await t.query("INSERT INTO kill_probe VALUES (1)");
      await paused; // idle in transaction while another session kills the backend
      await t.query("INSERT INTO kill_probe VALUES (2)");
    });
    await expect.poll(() => backend, { timeout: 5_000 }).toBeGreaterThan(0);
    await expect
      .poll(async () => (await db.query<{ state: string }>("SELECT state FROM pg_stat_activity WHERE pid = $1", [backend])).rows[0]?.state)
      .toBe("idle in transaction");
    await db.query("SELECT pg_terminate_backend($1)", [backend]);
    // The dropped socket's 'error' event lands on the checked-out client before we resume: without
    // a listener this is where the process used to die.
    await new Promise((r) => setTimeout(r, 200));
    resume();
    const err = await tx.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(isDatabaseUnavailableError(err)).toBe(true);
    // Nothing of the killed transaction was committed, and the pool serves new work.
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM kill_probe");
    expect(rows[0]?.n).toBe(0);
    await db.transaction(async (t) => {
      await t.query("INSERT INTO kill_probe VALUES (3)");
    });
    expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM kill_probe")).rows[0]?.n).toBe(1);
  });
});
