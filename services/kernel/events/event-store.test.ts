import { StructSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestScope } from "../context.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { appendToStream, readAll, readStream, streamVersion } from "./event-store.js";
import { migratePlatform } from "./platform-migrations.js";
import { eventOf, payloadOf } from "./protobuf-event.js";

const note = (text: string) => ({ type: "test.v1.NoteAdded", topic: "notes.note_added", payload: { text } });

describe("event store (PGlite)", () => {
  let db: Database;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    await migratePlatform(db);
  });
  afterAll(async () => {
    await db.close();
  });

  it("appends with versions and reads a stream back in order", async () => {
    const recorded = await db.transaction((tx) =>
      appendToStream(tx, "note-1", "no_stream", [note("a"), note("b")], { metadata: { tenantId: "t1", actor: "key_1" } }),
    );
    expect(recorded.map((e) => e.version)).toEqual([1, 2]);
    expect(recorded[0]?.position).toBeTypeOf("bigint");
    await db.transaction((tx) => appendToStream(tx, "note-1", 2, [note("c")]));

    const events = await readStream(db, "note-1");
    expect(events.map((e) => [e.version, (e.payload as { text: string }).text])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
    expect(events[0]).toMatchObject({ type: "test.v1.NoteAdded", topic: "notes.note_added", metadata: { tenantId: "t1", actor: "key_1" } });
    expect(events[0]?.occurredAt).toBeInstanceOf(Date);
    expect(await readStream(db, "note-1", 3)).toHaveLength(1);
    expect(await streamVersion(db, "note-1")).toBe(3);
  });

  it("rejects an append at a stale version with ABORTED / CONCURRENCY_CONFLICT and keeps nothing", async () => {
    await db.transaction((tx) => appendToStream(tx, "note-2", "no_stream", [note("a")]));
    const err = await db.transaction((tx) => appendToStream(tx, "note-2", 0, [note("late")])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Aborted);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    expect((err as ConnectError).rawMessage).toMatch(/expected version 0, but it is at version 1/);
    await expect(db.transaction((tx) => appendToStream(tx, "note-2", "no_stream", [note("x")]))).rejects.toThrow(/changed concurrently/);
    expect(await streamVersion(db, "note-2")).toBe(1);
  });

  it('appends after whatever is there with "any"', async () => {
    await db.transaction((tx) => appendToStream(tx, "note-3", "any", [note("a")]));
    const [e] = await db.transaction((tx) => appendToStream(tx, "note-3", "any", [note("b")]));
    expect(e?.version).toBe(2);
  });

  it("rolls events back with the transaction that appended them (outbox)", async () => {
    await db
      .transaction(async (tx) => {
        await appendToStream(tx, "note-4", "no_stream", [note("never")]);
        throw new Error("state change failed");
      })
      .catch(() => undefined);
    expect(await readStream(db, "note-4")).toEqual([]);
  });

  it("refuses UPDATE, DELETE and TRUNCATE on events in the database itself", async () => {
    await db.transaction((tx) => appendToStream(tx, "note-5", "no_stream", [note("immutable")]));
    await expect(db.query("UPDATE platform.events SET payload = '{}' WHERE stream_id = 'note-5'")).rejects.toThrow(
      /platform.events is append-only: UPDATE is not allowed/,
    );
    await expect(db.query("DELETE FROM platform.events WHERE stream_id = 'note-5'")).rejects.toThrow(/append-only: DELETE is not allowed/);
    await expect(db.query("TRUNCATE platform.events CASCADE")).rejects.toThrow(/append-only: TRUNCATE is not allowed/);
    expect(await readStream(db, "note-5")).toHaveLength(1);
  });

  it("reads all streams by global position, strictly after a checkpoint, in pages", async () => {
    const all = await readAll(db, 0n, 1000);
    const positions = all.map((e) => e.position);
    expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
    const page = await readAll(db, positions[1]!, 2);
    expect(page.map((e) => e.position)).toEqual(positions.slice(2, 4));
  });

  it("stamps request and correlation ids from the request scope; explicit metadata wins", async () => {
    const [e] = await requestScope.run({ requestId: "req-1", correlationId: "corr-1" }, () =>
      db.transaction((tx) => appendToStream(tx, "note-6", "no_stream", [{ ...note("m"), metadata: { correlationId: "explicit" } }])),
    );
    expect(e?.metadata).toEqual({ requestId: "req-1", correlationId: "explicit" });
  });

  it("stores a protobuf message as its JSON form under its full type name", async () => {
    const event = eventOf(StructSchema, { fields: {} }, { topic: "notes.struct_added" });
    expect(event.type).toBe("google.protobuf.Struct");
    const [recorded] = await db.transaction((tx) =>
      appendToStream(tx, "note-7", "no_stream", [
        eventOf(StructSchema, { fields: { title: { kind: { case: "stringValue", value: "hello" } } } }, { topic: "notes.struct_added" }),
      ]),
    );
    expect(recorded?.payload).toEqual({ title: "hello" });
    const decoded = payloadOf(StructSchema, recorded!);
    expect(decoded.fields.title?.kind).toEqual({ case: "stringValue", value: "hello" });
    expect(() => payloadOf(StructSchema, { type: "nexus.events.v1.Other", payload: {} })).toThrow(/not a google.protobuf.Struct/);
  });

  it("rejects an event whose type has no topic, saying how to fix it", async () => {
    await expect(
      db.transaction((tx) => appendToStream(tx, "note-8", "no_stream", [{ type: "nexus.events.v1.Unheard", payload: {} }])),
    ).rejects.toThrow(/no topic for event type "nexus.events.v1.Unheard".*registerEventTopics/);
  });
});
