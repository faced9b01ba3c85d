import { afterAll, beforeAll, expect, it } from "vitest";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import { GroupCommit } from "./group-commit.js";

let db: Database;
beforeAll(async () => {
  db = await createPgliteDatabase();
  await db.exec("CREATE TABLE t (k text PRIMARY KEY)");
});
afterAll(() => db.close());

it("commits concurrent pieces together; a failing piece rolls back alone and rejects only its caller", async () => {
  const group = new GroupCommit<string>(db);
  const insert = (k: string) =>
    group.submit(async (tx) => (await tx.query("INSERT INTO t (k) VALUES ($1) RETURNING k", [k])).rows[0]!.k as string);
  const outcomes = await Promise.allSettled([insert("a"), insert("b"), insert("a"), insert("c")]);
  expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
  expect((await db.query<{ k: string }>("SELECT k FROM t ORDER BY k")).rows.map((r) => r.k)).toEqual(["a", "b", "c"]);
});
