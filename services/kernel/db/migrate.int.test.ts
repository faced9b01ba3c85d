import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { type Migration, migrate } from "./migrate.js";
import { createPgDatabase } from "./pg-database.js";
import type { Database } from "./ports.js";

// Deliberately not idempotent: applying any of them twice fails or leaves a second row.
const MIGRATIONS: Migration[] = [
  { id: "0001_ledger", sql: "CREATE TABLE billing.ledger (id serial PRIMARY KEY, note text NOT NULL);" },
  { id: "0002_first_entry", sql: "INSERT INTO billing.ledger (note) VALUES ('opening balance');" },
  { id: "0003_index", sql: "CREATE INDEX ledger_note_idx ON billing.ledger (note);" },
];

describeWithPostgres("migrate on PostgreSQL with replicas starting at once", () => {
  let testDb: TestDatabase;
  const replicas: Database[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase();
    // One pool per "replica", as separate processes would have.
    for (let i = 0; i < 5; i++) replicas.push(await createPgDatabase({ url: testDb.url, poolSize: 2 }));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((db) => db.close()));
    await testDb?.drop();
  });

  it("applies each migration exactly once when 5 replicas migrate concurrently", async () => {
    const results = await Promise.all(replicas.map((db) => migrate(db, { schema: "billing", migrations: MIGRATIONS })));
    const appliedIds = results.flatMap((r) => r.applied).sort();
    expect(appliedIds).toEqual(["0001_ledger", "0002_first_entry", "0003_index"]);
    const db = replicas[0]!;
    const { rows: entries } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM billing.ledger");
    expect(entries[0]?.n).toBe(1);
    const { rows: recorded } = await db.query<{ id: string }>("SELECT id FROM billing.schema_migrations ORDER BY id");
    expect(recorded.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
  });

  it("refuses to start when an applied migration was edited", async () => {
    const edited = MIGRATIONS.map((m) =>
      m.id === "0002_first_entry" ? { ...m, sql: "INSERT INTO billing.ledger (note) VALUES ('changed');" } : m,
    );
    await expect(migrate(replicas[1]!, { schema: "billing", migrations: edited })).rejects.toThrow(
      /billing\/0002_first_entry was changed after it was applied/,
    );
  });
});
