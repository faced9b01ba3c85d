import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { counterAggregate, counterRow, migrateCounters } from "../../../tests/support/counter-aggregate.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { readStream, streamVersion } from "../events/event-store.js";
import { migratePlatform } from "../events/platform-migrations.js";
import { executeCommand } from "./command.js";

const counter = counterAggregate();

/** Splits settled results into winners and losers, asserting every loser is a CONCURRENCY_CONFLICT. */
function outcome<T>(results: PromiseSettledResult<T>[]) {
  const won = results.filter((r) => r.status === "fulfilled");
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  for (const err of lost) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Aborted);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
  }
  return { won: won.length, lost: lost.length };
}

describeWithPostgres("executeCommand on PostgreSQL", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    await migratePlatform(db);
    await migrateCounters(db);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("Given two writers that both saw version 1, When both send a command at once, Then exactly one wins", async () => {
    await executeCommand(db, counter, "race-1", { type: "Open", id: "race-1" });
    const results = await Promise.allSettled([
      executeCommand(db, counter, "race-1", { type: "Add", amount: 10 }, { expectedVersion: 1 }),
      executeCommand(db, counter, "race-1", { type: "Add", amount: 20 }, { expectedVersion: 1 }),
    ]);
    expect(outcome(results)).toEqual({ won: 1, lost: 1 });
    const row = await counterRow(db, "race-1");
    expect(row?.version).toBe(2);
    expect([10, 20]).toContain(row?.value);
    expect(await streamVersion(db, "counter-race-1")).toBe(2);
  });

  it("Given no counter yet, When two writers open it at once, Then one creates it and the other conflicts", async () => {
    // Both read "no counter" (there is no row to lock) before either writes; the loser's
    // insert waits for the winner's commit, then its append finds the stream taken.
    let loaded = 0;
    let bothLoaded!: () => void;
    const barrier = new Promise<void>((r) => (bothLoaded = r));
    const racing = counterAggregate({
      afterLoad: async () => {
        if (++loaded === 2) bothLoaded();
        await barrier;
      },
    });
    const results = await Promise.allSettled([
      executeCommand(db, racing, "race-2", { type: "Open", id: "race-2" }),
      executeCommand(db, racing, "race-2", { type: "Open", id: "race-2" }),
    ]);
    expect(outcome(results)).toEqual({ won: 1, lost: 1 });
    expect(await counterRow(db, "race-2")).toEqual({ value: 0, version: 1 });
    expect((await readStream(db, "counter-race-2")).map((e) => e.type)).toEqual(["test.v1.CounterOpened"]);
  });

  it("Given no expected version, When many commands hit one counter at once, Then the locked load serialises them and none is lost", async () => {
    await executeCommand(db, counter, "busy", { type: "Open", id: "busy" });
    await Promise.all(Array.from({ length: 8 }, () => executeCommand(db, counter, "busy", { type: "Add", amount: 1 })));
    expect(await counterRow(db, "busy")).toEqual({ value: 8, version: 9 });
    const events = await readStream(db, "counter-busy");
    expect(events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(events.map((e) => (e.payload as { value: number }).value)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("When appending fails after the state row was written, Then the row rolls back with it", async () => {
    let failNext = true;
    const failing = counterAggregate({
      onSave: async () => {
        if (failNext) {
          failNext = false;
          throw new Error("the connection died between save and append");
        }
      },
    });
    await executeCommand(db, failing, "atomic", { type: "Open", id: "atomic" }).catch(() => undefined);
    expect(await counterRow(db, "atomic")).toBeUndefined();
    expect(await streamVersion(db, "counter-atomic")).toBe(0);
    await executeCommand(db, failing, "atomic", { type: "Open", id: "atomic" });
    expect(await counterRow(db, "atomic")).toEqual({ value: 0, version: 1 });
  });
});
