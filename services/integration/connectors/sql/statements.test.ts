import { describe, expect, it } from "vitest";
import { ConnectorError, type SqlWrite } from "../ports.js";
import { buildStatement, validateSqlWrite } from "./statements.js";

const write = (over: Partial<SqlWrite>): SqlWrite => ({
  operation: "insert",
  table: "readings",
  mappings: [
    { source: "id", column: "id" },
    { source: "temp", column: "temp" },
  ],
  ...over,
});

describe("buildStatement", () => {
  it.each<[string, "postgres" | "mysql", SqlWrite, string, unknown[]]>([
    ["pg insert", "postgres", write({}), 'INSERT INTO "readings" ("id", "temp") VALUES ($1, $2)', [1, 20]],
    ["mysql insert", "mysql", write({}), "INSERT INTO `readings` (`id`, `temp`) VALUES (?, ?)", [1, 20]],
    [
      "pg upsert",
      "postgres",
      write({ operation: "upsert", keyColumns: ["id"] }),
      'INSERT INTO "readings" ("id", "temp") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "temp" = EXCLUDED."temp"',
      [1, 20],
    ],
    [
      "mysql upsert",
      "mysql",
      write({ operation: "upsert", keyColumns: ["id"] }),
      "INSERT INTO `readings` (`id`, `temp`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `temp` = VALUES(`temp`)",
      [1, 20],
    ],
    [
      "pg update",
      "postgres",
      write({ operation: "update", keyColumns: ["id"] }),
      'UPDATE "readings" SET "temp" = $1 WHERE "id" = $2',
      [20, 1],
    ],
    [
      "pg delete with schema",
      "postgres",
      write({ operation: "delete", table: "iot.readings", keyColumns: ["id"] }),
      'DELETE FROM "iot"."readings" WHERE "id" = $1',
      [1],
    ],
    [
      "mysql select",
      "mysql",
      write({ operation: "select", keyColumns: ["id"] }),
      "SELECT * FROM `readings` WHERE `id` = ? LIMIT 1000",
      [1],
    ],
  ])("%s", (_, engine, w, text, values) => {
    expect(buildStatement(engine, w, { id: 1, temp: 20 })).toEqual({ text, values });
  });

  it.each([
    'readings"; DROP TABLE users; --',
    "readings; DROP TABLE users",
    "a.b.c",
    "`readings`",
    "read ings",
    "1readings",
    "",
    "x".repeat(64),
  ])("refuses the table name %j without building SQL", (table) => {
    expect(() => buildStatement("postgres", write({ table }), { id: 1 })).toThrowError(
      expect.objectContaining({ reason: "INVALID_DESTINATION_CONFIG", retryable: false }),
    );
    expect(validateSqlWrite(write({ table })).length).toBeGreaterThan(0);
  });

  it("refuses an update whose key has no value, naming the field", () => {
    let caught: unknown;
    try {
      buildStatement("postgres", write({ operation: "update", keyColumns: ["id"] }), { temp: 1 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConnectorError);
    expect((caught as ConnectorError).reason).toBe("MAPPING_FAILED");
    expect((caught as ConnectorError).message).toContain('key column "id" has no value (field "id" is missing or null)');
  });

  it("a partial update with nothing to set builds no statement", () => {
    expect(buildStatement("postgres", write({ operation: "update", keyColumns: ["id"] }), { id: 1 })).toBeUndefined();
  });
});

describe("validateSqlWrite", () => {
  it("needs key columns for everything but insert, each one mapped", () => {
    expect(validateSqlWrite(write({ operation: "upsert" }))).toContain(
      'operation "upsert" needs keyColumns: the columns that identify the row',
    );
    expect(validateSqlWrite(write({ operation: "delete", keyColumns: ["serial"] }))).toContain(
      'key column "serial" has no mapping: map an input field to it',
    );
    expect(validateSqlWrite(write({ operation: "upsert", keyColumns: ["id"] }))).toEqual([]);
  });
});
