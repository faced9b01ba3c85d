import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../../kernel/db/pg-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { migrateSchemas } from "../../kernel/service/index.js";
import { agentMigrations } from "../migrations.js";
import type { TurnRecord } from "../ports.js";
import type { MessageRecord } from "../sessions/session-records.js";
import { createPostgresSessionRepository } from "./postgres-session-repository.js";

const repo = createPostgresSessionRepository();

function message(id: string, sessionId: string, role: "user" | "assistant", at: Date, text = `text of ${id}`): MessageRecord {
  return {
    messageId: id,
    sessionId,
    role,
    text,
    citations:
      role === "assistant"
        ? [{ documentId: "d", chunkOrdinal: 2, charStart: 10, charEnd: 20, score: 0.5, filename: "d.md", quote: "0123456789" }]
        : [],
    requestId: `req-${id}`,
    createdAt: at,
  };
}

function turn(tenantId: string, sessionId: string, n: number, at: Date, newSession: boolean, completed = true): TurnRecord {
  return {
    tenantId,
    sessionId,
    newSession,
    corpusId: `corpus-${n}`,
    title: `title ${sessionId}`,
    at,
    messages: completed
      ? [message(`${sessionId}-u${n}`, sessionId, "user", at), message(`${sessionId}-a${n}`, sessionId, "assistant", at)]
      : [message(`${sessionId}-u${n}`, sessionId, "user", at)],
  };
}

describeWithPostgres("postgres session repository", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_agent_sessions");
    db = await createPgDatabase({ url: testDb.url });
    await migrateSchemas(db, [agentMigrations]);
    await migrateSchemas(db, [agentMigrations]); // idempotent
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("stores turns: a new session, a continued one, and a failed run's question only", async () => {
    const t0 = new Date("2026-03-01T10:00:00.000Z");
    await db.transaction((tx) => repo.recordTurn(tx, turn("t1", "s1", 1, t0, true)));
    await db.transaction((tx) => repo.recordTurn(tx, turn("t1", "s1", 2, new Date(t0.getTime() + 1000), false, false)));
    const session = await repo.get(db, "t1", "s1");
    expect(session).toMatchObject({ tenantId: "t1", sessionId: "s1", corpusId: "corpus-2", title: "title s1", messageCount: 3 });
    expect(session?.createdAt.toISOString()).toBe(t0.toISOString());
    expect(session?.updatedAt.toISOString()).toBe("2026-03-01T10:00:01.000Z");
    const all = await repo.recentMessages(db, "t1", "s1", 10);
    expect(all.map((m) => m.messageId)).toEqual(["s1-u1", "s1-a1", "s1-u2"]);
    expect(all[1]?.citations[0]).toEqual({
      documentId: "d",
      chunkOrdinal: 2,
      charStart: 10,
      charEnd: 20,
      score: 0.5,
      filename: "d.md",
      quote: "0123456789",
    });
    expect((await repo.recentMessages(db, "t1", "s1", 2)).map((m) => m.messageId)).toEqual(["s1-a1", "s1-u2"]);
  });

  it("never shows one tenant's sessions to another", async () => {
    expect(await repo.get(db, "t2", "s1")).toBeUndefined();
    expect(await repo.recentMessages(db, "t2", "s1", 10)).toEqual([]);
    expect(await repo.list(db, "t2", { limit: 10 })).toEqual([]);
    expect(await db.transaction((tx) => repo.delete(tx, "t2", "s1"))).toBe(false);
    expect(await repo.get(db, "t1", "s1")).toBeDefined();
  });

  it("pages sessions most recently updated first, ties broken by id, filtered by corpus", async () => {
    const at = new Date("2026-03-02T00:00:00.000Z");
    for (const id of ["p-a", "p-b", "p-c"]) await db.transaction((tx) => repo.recordTurn(tx, turn("t3", id, 1, at, true)));
    await db.transaction((tx) => repo.recordTurn(tx, turn("t3", "p-old", 9, new Date(at.getTime() - 60_000), true)));
    const seen: string[] = [];
    let after: { updatedAt: Date; sessionId: string } | undefined;
    for (;;) {
      const page = await repo.list(db, "t3", { limit: 2, ...(after ? { after } : {}) });
      if (page.length === 0) break;
      seen.push(...page.map((s) => s.sessionId));
      const last = page.at(-1)!;
      after = { updatedAt: last.updatedAt, sessionId: last.sessionId };
    }
    expect(seen).toEqual(["p-c", "p-b", "p-a", "p-old"]);
    expect((await repo.list(db, "t3", { corpusId: "corpus-9", limit: 10 })).map((s) => s.sessionId)).toEqual(["p-old"]);
  });

  it("deletes a session with its messages; a turn for a deleted session stores nothing", async () => {
    const at = new Date("2026-03-03T00:00:00.000Z");
    await db.transaction((tx) => repo.recordTurn(tx, turn("t4", "gone", 1, at, true)));
    expect(await db.transaction((tx) => repo.delete(tx, "t4", "gone"))).toBe(true);
    expect(await repo.get(db, "t4", "gone")).toBeUndefined();
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM agent.messages WHERE tenant_id = 't4'");
    expect(rows[0]?.n).toBe(0);
    expect(await db.transaction((tx) => repo.recordTurn(tx, turn("t4", "gone", 2, at, false)))).toBe(false);
    expect(await repo.recentMessages(db, "t4", "gone", 10)).toEqual([]);
  });
});
