import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Migration, MigrationError, migrate } from "./migrate.js";
import { createPgliteDatabase } from "./pglite-database.js";
import type { Database } from "./ports.js";

/** Each test migrates its own schema of one shared PGlite (starting PGlite takes a while). */
const v1 = (schema: string): Migration[] => [
  { id: "0001_notes", sql: `CREATE TABLE ${schema}.note (id int PRIMARY KEY, body text NOT NULL);` },
  { id: "0002_seed", sql: `INSERT INTO ${schema}.note VALUES (1, 'first');` },
];

describe("migrate (PGlite)", () => {
  let db: Database;
  beforeAll(async () => {
    db = await createPgliteDatabase();
  });
  afterAll(async () => {
    await db.close();
  });

  it("creates the schema, applies pending migrations in order and records them with checksums", async () => {
    const first = await migrate(db, { schema: "notes1", migrations: v1("notes1") });
    expect(first).toEqual({ applied: ["0001_notes", "0002_seed"], alreadyApplied: [] });
    const again = await migrate(db, {
      schema: "notes1",
      migrations: [...v1("notes1"), { id: "0003_more", sql: "INSERT INTO notes1.note VALUES (2, 'second');" }],
    });
    expect(again).toEqual({ applied: ["0003_more"], alreadyApplied: ["0001_notes", "0002_seed"] });
    const { rows } = await db.query<{ id: string; checksum: string }>("SELECT id, checksum FROM notes1.schema_migrations ORDER BY id");
    expect(rows.map((r) => r.id)).toEqual(["0001_notes", "0002_seed", "0003_more"]);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true);
  });

  it("refuses an applied migration whose SQL changed, naming it", async () => {
    await migrate(db, { schema: "notes2", migrations: v1("notes2") });
    const edited = [v1("notes2")[0]!, { id: "0002_seed", sql: "INSERT INTO notes2.note VALUES (1, 'edited');" }];
    await expect(migrate(db, { schema: "notes2", migrations: edited })).rejects.toThrow(
      /migration notes2\/0002_seed was changed after it was applied.*forward-only/,
    );
  });

  it("leaves nothing behind when a migration fails", async () => {
    const broken = [...v1("notes3"), { id: "0003_broken", sql: "INSERT INTO notes3.missing_table VALUES (1);" }];
    await expect(migrate(db, { schema: "notes3", migrations: broken })).rejects.toThrow(MigrationError);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM information_schema.schemata WHERE schema_name = 'notes3'",
    );
    expect(rows[0]?.n).toBe(0);
  });

  it("ignores applied ids it does not know (an older replica, another module's migrations)", async () => {
    await migrate(db, { schema: "notes4", migrations: [...v1("notes4"), { id: "0003_newer", sql: "SELECT 1;" }] });
    await expect(migrate(db, { schema: "notes4", migrations: v1("notes4") })).resolves.toEqual({
      applied: [],
      alreadyApplied: ["0001_notes", "0002_seed"],
    });
  });

  it("rejects bad input before touching the database", async () => {
    await expect(migrate(db, { schema: "Bad-Name", migrations: v1("x") })).rejects.toThrow(/invalid schema name/);
    const [once] = v1("notes5");
    await expect(migrate(db, { schema: "notes5", migrations: [once!, once!] })).rejects.toThrow(/appears twice/);
  });
});
