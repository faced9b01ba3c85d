import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { counterAggregate, counterRow, migrateCounters } from "../../../tests/support/counter-aggregate.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { readStream, streamVersion } from "../events/event-store.js";
import { migratePlatform } from "../events/platform-migrations.js";
import { executeCommand, executeInTransaction, recordFacts } from "./command.js";

const counter = counterAggregate();

describe("executeCommand (PGlite)", () => {
  let db: Database;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    await migratePlatform(db);
    await migrateCounters(db);
  });
  afterAll(async () => {
    await db.close();
  });

  it("Given a new counter, When it is opened and added to, Then its row and its stream move together", async () => {
    const opened = await executeCommand(db, counter, "c1", { type: "Open", id: "c1" }, { metadata: { tenantId: "t1", actor: "key_1" } });
    expect(opened).toMatchObject({ state: { id: "c1", value: 0 }, version: 1, events: [{ type: "Opened" }] });
    expect(opened.recorded.map((e) => [e.streamId, e.version, e.type])).toEqual([["counter-c1", 1, "test.v1.CounterOpened"]]);

    const added = await executeCommand(db, counter, "c1", { type: "Add", amount: 5 });
    expect(added).toMatchObject({ state: { value: 5 }, version: 2 });
    expect(await counterRow(db, "c1")).toEqual({ value: 5, version: 2 });
    const events = await readStream(db, "counter-c1");
    expect(events.map((e) => [e.version, e.payload])).toEqual([
      [1, { value: 0 }],
      [2, { amount: 5, value: 5 }],
    ]);
    // toEvent sees the state after its event; the command's metadata is on every event.
    expect(events[0]?.metadata).toMatchObject({ tenantId: "t1", actor: "key_1" });
  });

  it("Given a decision of no events, Then nothing is written and the loaded state comes back", async () => {
    await executeCommand(db, counter, "c2", { type: "Open", id: "c2" });
    const result = await executeCommand(db, counter, "c2", { type: "Touch" });
    expect(result).toEqual({ state: { id: "c2", value: 0 }, version: 1, events: [], recorded: [] });
    expect(await counterRow(db, "c2")).toEqual({ value: 0, version: 1 });
    expect(await streamVersion(db, "counter-c2")).toBe(1);
  });

  it("When decide refuses, Then the domain error reaches the caller and nothing is written", async () => {
    const err = await executeCommand(db, counter, "c3", { type: "Break" }).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("FAILED_PRECONDITION");
    expect(await counterRow(db, "c3")).toBeUndefined();
    expect(await streamVersion(db, "counter-c3")).toBe(0);
  });

  it("When the caller last saw another version, Then ABORTED CONCURRENCY_CONFLICT with ErrorInfo, before anything is decided", async () => {
    await executeCommand(db, counter, "c4", { type: "Open", id: "c4" });
    await executeCommand(db, counter, "c4", { type: "Add", amount: 1 });
    // "Break" would throw FAILED_PRECONDITION: the version check comes first.
    const err = await executeCommand(db, counter, "c4", { type: "Break" }, { expectedVersion: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    const ce = err as ConnectError;
    expect(ce.code).toBe(Code.Aborted);
    expect(errorReason(ce)).toBe("CONCURRENCY_CONFLICT");
    expect(ce.rawMessage).toMatch(/counter-c4 is at version 2, not 1/);
    const info = ce.findDetails(ErrorInfoSchema)[0];
    expect(info?.reason).toBe("CONCURRENCY_CONFLICT");
    expect(info?.metadata).toMatchObject({ stream_id: "counter-c4", expected_version: "1", actual_version: "2" });

    const ok = await executeCommand(db, counter, "c4", { type: "Add", amount: 1 }, { expectedVersion: 2 });
    expect(ok.version).toBe(3);
  });

  it("Given a stream that moved past the state row, When a command runs, Then the append conflicts and the row keeps its old state", async () => {
    await executeCommand(db, counter, "c5", { type: "Open", id: "c5" });
    // Someone appended to the counter's stream without the helper: the row says 1, the stream 2.
    await db.transaction((tx) => recordFacts(tx, "counter-c5", [{ type: "test.v1.Stray", topic: "counters.stray", payload: {} }]));
    const err = await executeCommand(db, counter, "c5", { type: "Add", amount: 7 }).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    // save() had already written value 7 in the transaction: it rolled back with the append.
    expect(await counterRow(db, "c5")).toEqual({ value: 0, version: 1 });
    expect(await streamVersion(db, "counter-c5")).toBe(2);
  });

  it("When the caller's transaction fails after the command, Then neither the state nor the events commit", async () => {
    await executeCommand(db, counter, "c6", { type: "Open", id: "c6" });
    const failed = db.transaction(async (tx) => {
      const r = await executeInTransaction(tx, counter, "c6", { type: "Add", amount: 3 });
      expect(r.version).toBe(2);
      throw new Error("a later step of the same use case failed");
    });
    await expect(failed).rejects.toThrow(/later step/);
    expect(await counterRow(db, "c6")).toEqual({ value: 0, version: 1 });
    expect(await streamVersion(db, "counter-c6")).toBe(1);
  });

  it("runs several commands on several aggregates in one caller transaction", async () => {
    await db.transaction(async (tx) => {
      await executeInTransaction(tx, counter, "c7", { type: "Open", id: "c7" });
      await executeInTransaction(tx, counter, "c7", { type: "Add", amount: 2 });
      await executeInTransaction(tx, counter, "c8", { type: "Open", id: "c8" });
    });
    expect(await counterRow(db, "c7")).toEqual({ value: 2, version: 2 });
    expect(await counterRow(db, "c8")).toEqual({ value: 0, version: 1 });
  });

  it("hands decide, evolve and toEvent the aggregate's key, and save the state it replaces", async () => {
    const seen: string[] = [];
    const spy: typeof counter = {
      ...counter,
      decide: (command, state, key) => {
        seen.push(`decide ${key}`);
        return counter.decide(command, state, key);
      },
      evolve: (state, event, key) => {
        seen.push(`evolve ${key}`);
        return counter.evolve(state, event, key);
      },
      toEvent: (event, state, key) => {
        seen.push(`toEvent ${key}`);
        return counter.toEvent(event, state, key);
      },
      save: (tx, key, state, expectedVersion, version, before) => {
        seen.push(`save ${key} ${before?.value ?? "none"} → ${state.value}`);
        return counter.save(tx, key, state, expectedVersion, version, before);
      },
    };
    await executeCommand(db, spy, "c9", { type: "Open", id: "c9" });
    await executeCommand(db, spy, "c9", { type: "Add", amount: 4 });
    expect(seen).toEqual([
      "decide c9",
      "evolve c9",
      "toEvent c9",
      "save c9 none → 0",
      "decide c9",
      "evolve c9",
      "toEvent c9",
      "save c9 0 → 4",
    ]);
  });

  it("recordFacts appends facts after whatever is there, or at an expected version", async () => {
    const fact = (n: number) => ({ type: "test.v1.Fact", topic: "facts.noted", payload: { n } });
    await db.transaction((tx) => recordFacts(tx, "facts-1", [fact(1)], { metadata: { tenantId: "t9", actor: "system" } }));
    const recorded = await db.transaction((tx) => recordFacts(tx, "facts-1", [fact(2), fact(3)]));
    expect(recorded.map((e) => e.version)).toEqual([2, 3]);
    const err = await db.transaction((tx) => recordFacts(tx, "facts-1", [fact(4)], { expectedVersion: 1 })).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    const events = await readStream(db, "facts-1");
    expect(events.map((e) => (e.payload as { n: number }).n)).toEqual([1, 2, 3]);
    expect(events[0]?.metadata).toMatchObject({ tenantId: "t9", actor: "system" });
  });
});
