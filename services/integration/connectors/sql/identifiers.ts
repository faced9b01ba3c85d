/**
 * SQL identifiers of destinations: validated against a conservative grammar, then quoted for the
 * engine. Values never go into statement text (they are bound parameters); identifiers cannot be
 * bound, so they must pass this check first.
 */
import { ConnectorError } from "../ports.js";

/** Letters, digits, `_` and `$`, not starting with a digit: what both engines accept unquoted. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** PostgreSQL cuts names at 63 bytes, MySQL refuses more than 64: the smaller limit for both. */
const MAX_IDENTIFIER = 63;

/** Why `name` is not an acceptable identifier, or `undefined` when it is. */
export function checkIdentifier(name: unknown, what: string): string | undefined {
  if (typeof name !== "string" || name.length === 0) return `${what} name is empty`;
  if (name.length > MAX_IDENTIFIER) return `${what} name "${name.slice(0, 20)}…" is longer than ${MAX_IDENTIFIER} characters`;
  if (!IDENTIFIER.test(name))
    return `${what} name ${JSON.stringify(name)} may only hold letters, digits, _ and $ and must not start with a digit`;
  return undefined;
}

/** A table reference split into its optional schema and name. */
export interface TableName {
  schema?: string;
  name: string;
}

/** Parses `name` or `schema.name`; throws INVALID_DESTINATION_CONFIG for anything else. */
export function parseTableName(table: unknown): TableName {
  const parts = typeof table === "string" ? table.split(".") : [];
  if (parts.length === 0 || parts.length > 2) {
    throw new ConnectorError("INVALID_DESTINATION_CONFIG", `table ${JSON.stringify(table)} must be "name" or "schema.name"`);
  }
  for (const part of parts) {
    const problem = checkIdentifier(part, "table");
    if (problem) throw new ConnectorError("INVALID_DESTINATION_CONFIG", problem);
  }
  return parts.length === 2 ? { schema: parts[0] as string, name: parts[1] as string } : { name: parts[0] as string };
}

/** Throws INVALID_DESTINATION_CONFIG unless `name` is an acceptable column name. */
export function assertColumn(name: unknown): string {
  const problem = checkIdentifier(name, "column");
  if (problem) throw new ConnectorError("INVALID_DESTINATION_CONFIG", problem);
  return name as string;
}

/** Quotes a validated identifier for an engine (doubling the quote character all the same). */
export function quoteIdentifier(engine: "postgres" | "mysql", name: string): string {
  return engine === "postgres" ? `"${name.replaceAll('"', '""')}"` : `\`${name.replaceAll("`", "``")}\``;
}

/** Quotes a table reference (`"schema"."name"` / `` `schema`.`name` ``). */
export function quoteTable(engine: "postgres" | "mysql", table: TableName): string {
  const name = quoteIdentifier(engine, table.name);
  return table.schema ? `${quoteIdentifier(engine, table.schema)}.${name}` : name;
}
