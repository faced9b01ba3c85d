import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database, Tx } from "../db/ports.js";
import { errorMetadata, errorReason } from "../errors.js";
import { appendToStream, readAll, readStream } from "./event-store.js";
import { migratePlatform } from "./platform-migrations.js";

const note = (text: string) => ({ type: "test.v1.NoteAdded", topic: "notes.note_added", payload: { text } });

/** A transaction held open until `release()` — to build real interleavings between two writers. */
function heldTransaction(db: Database, body: (tx: Tx) => Promise<void>) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let ready!: () => void;
  const bodyDone = new Promise<void>((r) => (ready = r));
  const done = db.transaction(async (tx) => {
    await body(tx);
    ready();
    await gate;
  });
  return { bodyDone, done, release };
}

describeWithPostgres("event store on PostgreSQL", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    await migratePlatform(db);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("lets exactly one of two concurrent appends at the same expected version win", async () => {
    await db.transaction((tx) => appendToStream(tx, "race-1", "no_stream", [note("base")]));
    const results = await Promise.allSettled([
      db.transaction((tx) => appendToStream(tx, "race-1", 1, [note("writer A")])),
      db.transaction((tx) => appendToStream(tx, "race-1", 1, [note("writer B")])),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(ConnectError);
    expect((lost[0]!.reason as ConnectError).code).toBe(Code.Aborted);
    expect(errorReason(lost[0]!.reason)).toBe("CONCURRENCY_CONFLICT");
    expect((await readStream(db, "race-1")).map((e) => e.version)).toEqual([1, 2]);
  });

  it("makes the later writer lose when the first commits while it waits", async () => {
    const first = heldTransaction(db, async (tx) => {
      await appendToStream(tx, "race-2", "no_stream", [note("first")]);
    });
    await first.bodyDone;
    // Settle the loser's promise into a value at once: it may reject while we await the first
    // writer's commit, and an unobserved rejection would fail the run.
    const second = db.transaction((tx) => appendToStream(tx, "race-2", "no_stream", [note("second")])).catch((e: unknown) => e);
    first.release();
    await first.done;
    const err = await second;
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    expect((await readStream(db, "race-2")).map((e) => (e.payload as { text: string }).text)).toEqual(["first"]);
  });

  it("translates the unique (stream, version) violation of a stale snapshot into CONCURRENCY_CONFLICT", async () => {
    // REPEATABLE READ freezes the snapshot at the first statement, so the version check reads
    // the old version and only the unique constraint can catch the conflict.
    const err = await db
      .transaction(async (tx) => {
        await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        await tx.query("SELECT count(*) FROM platform.events WHERE stream_id = 'race-3'");
        await db.transaction((other) => appendToStream(other, "race-3", "no_stream", [note("other")]));
        await appendToStream(tx, "race-3", "no_stream", [note("stale")]);
      })
      .catch((e: unknown) => e);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    expect((await readStream(db, "race-3")).map((e) => (e.payload as { text: string }).text)).toEqual(["other"]);
  });

  it("gives the events of one append consecutive versions and positions in the same order", async () => {
    const appended = await db.transaction((tx) =>
      appendToStream(
        tx,
        "multi-1",
        "no_stream",
        [1, 2, 3, 4, 5].map((n) => note(`n${n}`)),
      ),
    );
    const stored = await readStream(db, "multi-1");
    expect(stored.map((e) => (e.payload as { text: string }).text)).toEqual(["n1", "n2", "n3", "n4", "n5"]);
    expect(stored.map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    const positions = stored.map((e) => e.position);
    expect(positions.every((p, i) => i === 0 || p > positions[i - 1]!)).toBe(true);
    expect(appended.map((e) => e.position)).toEqual(positions);
    // A wrong expected version inserts nothing and says where the stream is.
    const err = await db.transaction((tx) => appendToStream(tx, "multi-1", 3, [note("late")])).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    expect(errorMetadata(err as Error)).toMatchObject({ expected_version: "3", actual_version: "5" });
    expect(await readStream(db, "multi-1")).toHaveLength(5);
  });

  it("hands out global positions in commit order, so a reader never finds a late lower position", async () => {
    const before = (await readAll(db, 0n, 10_000)).at(-1)?.position ?? 0n;
    const slow = heldTransaction(db, async (tx) => {
      await appendToStream(tx, "order-slow", "no_stream", [note("slow")]);
    });
    await slow.bodyDone;
    const fast = db.transaction((tx) => appendToStream(tx, "order-fast", "no_stream", [note("fast")]));
    // The fast writer waits for the slow one: nothing new is visible yet.
    expect(await readAll(db, before, 100)).toEqual([]);
    slow.release();
    await slow.done;
    await fast;
    const seen = await readAll(db, before, 100);
    expect(seen.map((e) => e.streamId)).toEqual(["order-slow", "order-fast"]);
  });

  it("refuses UPDATE, DELETE and TRUNCATE on events in the database itself", async () => {
    await db.transaction((tx) => appendToStream(tx, "immutable-1", "no_stream", [note("fact")]));
    await expect(db.query("UPDATE platform.events SET type = 'x' WHERE stream_id = 'immutable-1'")).rejects.toThrow(
      /platform.events is append-only: UPDATE is not allowed/,
    );
    await expect(db.query("DELETE FROM platform.events WHERE stream_id = 'immutable-1'")).rejects.toThrow(
      /append-only: DELETE is not allowed/,
    );
    await expect(db.query("TRUNCATE platform.events CASCADE")).rejects.toThrow(/append-only: TRUNCATE is not allowed/);
    expect(await readStream(db, "immutable-1")).toHaveLength(1);
  });
});
