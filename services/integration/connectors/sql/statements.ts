/**
 * Builds the one parameterized statement of a SqlWrite for an engine. Identifiers are validated
 * and quoted (identifiers.ts); every value is a bound parameter.
 */
import { validateMappings } from "../mapping.js";
import { ConnectorError, type SqlWrite } from "../ports.js";
import { assertColumn, checkIdentifier, parseTableName, quoteIdentifier, quoteTable } from "./identifiers.js";

/** The most rows a `select` returns (a workflow step looks rows up; it does not export tables). */
export const SELECT_LIMIT = 1000;

const OPERATIONS = ["insert", "upsert", "update", "delete", "select"] as const;

/** A statement ready for the driver. */
export interface Statement {
  text: string;
  values: unknown[];
}

/**
 * The save-time check of a SqlWrite: operation, table name, mappings, and key columns (needed by
 * every operation but insert, each one mapped). Returns one message per problem.
 */
export function validateSqlWrite(write: SqlWrite): string[] {
  const problems: string[] = [];
  if (!OPERATIONS.includes(write.operation))
    problems.push(`operation "${String(write.operation)}" is unknown (use one of ${OPERATIONS.join(", ")})`);
  try {
    parseTableName(write.table);
  } catch (err) {
    problems.push((err as Error).message);
  }
  problems.push(...validateMappings(write.mappings));
  const keys = write.keyColumns ?? [];
  if (write.operation !== "insert" && keys.length === 0) {
    problems.push(`operation "${write.operation}" needs keyColumns: the columns that identify the row`);
  }
  const mapped = new Set((Array.isArray(write.mappings) ? write.mappings : []).map((m) => m?.column));
  for (const key of keys) {
    const problem = checkIdentifier(key, "key column");
    if (problem) problems.push(problem);
    else if (!mapped.has(key)) problems.push(`key column "${key}" has no mapping: map an input field to it`);
  }
  return problems;
}

/**
 * The statement for one row of column values (the output of applyMappings). Throws
 * MAPPING_FAILED when a key column has no value, INVALID_DESTINATION_CONFIG for a bad write.
 */
export function buildStatement(engine: "postgres" | "mysql", write: SqlWrite, row: Record<string, unknown>): Statement | undefined {
  const table = quoteTable(engine, parseTableName(write.table));
  const q = (name: string) => quoteIdentifier(engine, assertColumn(name));
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return engine === "postgres" ? `$${values.length}` : "?";
  };
  const keys = write.keyColumns ?? [];
  if (write.operation !== "insert") {
    if (keys.length === 0) throw new ConnectorError("INVALID_DESTINATION_CONFIG", `operation "${write.operation}" needs keyColumns`);
    for (const key of keys) {
      if (row[key] === undefined || row[key] === null) {
        const source = write.mappings.find((m) => m.column === key)?.source;
        throw new ConnectorError(
          "MAPPING_FAILED",
          `key column "${key}" has no value${source ? ` (field "${source}" is missing or null)` : " (no mapping)"}: the row to ${write.operation} cannot be identified`,
        );
      }
    }
  }
  const columns = Object.keys(row);
  const where = () => keys.map((k) => `${q(k)} = ${param(row[k])}`).join(" AND ");
  switch (write.operation) {
    case "insert":
    case "upsert": {
      if (columns.length === 0) {
        return { text: engine === "postgres" ? `INSERT INTO ${table} DEFAULT VALUES` : `INSERT INTO ${table} () VALUES ()`, values };
      }
      const placeholders = columns.map((c) => param(row[c])).join(", ");
      let text = `INSERT INTO ${table} (${columns.map(q).join(", ")}) VALUES (${placeholders})`;
      if (write.operation === "upsert") {
        const updates = columns.filter((c) => !keys.includes(c));
        if (engine === "postgres") {
          text += ` ON CONFLICT (${keys.map(q).join(", ")}) ${
            updates.length === 0 ? "DO NOTHING" : `DO UPDATE SET ${updates.map((c) => `${q(c)} = EXCLUDED.${q(c)}`).join(", ")}`
          }`;
        } else {
          // MySQL/MariaDB resolve the conflict on any unique key; VALUES() works on both (MySQL 8 warns).
          const set =
            updates.length === 0 ? [`${q(keys[0] as string)} = ${q(keys[0] as string)}`] : updates.map((c) => `${q(c)} = VALUES(${q(c)})`);
          text += ` ON DUPLICATE KEY UPDATE ${set.join(", ")}`;
        }
      }
      return { text, values };
    }
    case "update": {
      const updates = columns.filter((c) => !keys.includes(c));
      // A partial update whose fields are all absent changes nothing: no statement.
      if (updates.length === 0) return undefined;
      const set = updates.map((c) => `${q(c)} = ${param(row[c])}`).join(", ");
      return { text: `UPDATE ${table} SET ${set} WHERE ${where()}`, values };
    }
    case "delete":
      return { text: `DELETE FROM ${table} WHERE ${where()}`, values };
    case "select":
      return { text: `SELECT * FROM ${table} WHERE ${where()} LIMIT ${SELECT_LIMIT}`, values };
    default: {
      const _exhaustive: never = write.operation;
      throw new ConnectorError("INVALID_DESTINATION_CONFIG", `operation "${String(_exhaustive)}" is unknown`);
    }
  }
}
