/**
 * SQL destinations (DST-01/02): PostgreSQL through `pg` and MySQL/MariaDB through `mysql2`, with
 * INSERT, UPSERT, UPDATE, DELETE and SELECT of one mapped row per call, a pool per destination
 * (`poolMax`, default 5), connect timeout (`connectTimeoutMs`, default 5 s), a 30 s statement
 * timeout, and every failure classified as a ConnectorError (retryable or not). A pool never stays
 * broken: connections that failed are destroyed and new ones opened on the next call.
 */
import type { Logger } from "pino";
import { applyMappings } from "../mapping.js";
import { ConnectorError, type SqlConnection, type SqlDestination, type SqlWrite } from "../ports.js";
import type { SqlEngine } from "./engine.js";
import { describeServer } from "./errors.js";
import { checkIdentifier, parseTableName } from "./identifiers.js";
import { createMysqlEngine } from "./mysql.js";
import { createPostgresEngine } from "./postgres.js";
import { buildStatement, validateSqlWrite } from "./statements.js";

export { SELECT_LIMIT, validateSqlWrite } from "./statements.js";

/** Dependencies of {@link createSqlDestination}. */
export interface SqlDestinationDeps {
  logger: Pick<Logger, "warn">;
}

/**
 * The save-time check of a connection: engine, host, port, database and user present and
 * sensible, pool and timeout within limits. Returns one message per problem (never the password).
 */
export function validateSqlConnection(conn: SqlConnection): string[] {
  const problems: string[] = [];
  if (conn.engine !== "postgres" && conn.engine !== "mysql")
    problems.push(`engine "${String(conn.engine)}" is unknown (use postgres or mysql)`);
  if (typeof conn.host !== "string" || conn.host.trim() === "") problems.push("host is empty");
  if (!Number.isInteger(conn.port) || conn.port < 1 || conn.port > 65_535)
    problems.push(`port ${String(conn.port)} is not a TCP port (1-65535)`);
  if (typeof conn.database !== "string" || conn.database === "") problems.push("database is empty");
  else if (conn.engine === "mysql" && checkIdentifier(conn.database, "database"))
    problems.push(checkIdentifier(conn.database, "database") as string);
  if (typeof conn.user !== "string" || conn.user === "") problems.push("user is empty");
  if (conn.poolMax !== undefined && (!Number.isInteger(conn.poolMax) || conn.poolMax < 1 || conn.poolMax > 100))
    problems.push("poolMax must be 1-100");
  if (
    conn.connectTimeoutMs !== undefined &&
    (!Number.isInteger(conn.connectTimeoutMs) || conn.connectTimeoutMs < 100 || conn.connectTimeoutMs > 120_000)
  ) {
    problems.push("connectTimeoutMs must be 100-120000");
  }
  return problems;
}

/**
 * Creates a destination for one database. Nothing connects until the first call, so creating one
 * for a server that is down succeeds; calls then fail with a retryable DESTINATION_UNAVAILABLE
 * until it is back. Throws INVALID_DESTINATION_CONFIG for a connection that can never work.
 */
export function createSqlDestination(conn: SqlConnection, deps: SqlDestinationDeps): SqlDestination {
  const problems = validateSqlConnection(conn);
  if (problems.length > 0) throw new ConnectorError("INVALID_DESTINATION_CONFIG", `database connection: ${problems.join("; ")}`);
  const engine: SqlEngine = conn.engine === "postgres" ? createPostgresEngine(conn, deps.logger) : createMysqlEngine(conn, deps.logger);
  let closed = false;
  const open = () => {
    if (closed)
      throw new ConnectorError("DESTINATION_UNAVAILABLE", `${describeServer(conn)}: the destination was closed (shutdown in progress)`);
  };

  return {
    async execute(write: SqlWrite, input: Record<string, unknown>, opts = {}) {
      open();
      const problems = validateSqlWrite(write);
      if (problems.length > 0)
        throw new ConnectorError("INVALID_DESTINATION_CONFIG", `${write.operation} into ${String(write.table)}: ${problems.join("; ")}`);
      // Partial writes leave absent fields out; a key column always has to be present.
      const row = applyMappings(write.mappings, input, { partial: write.partial === true && write.operation !== "insert" });
      const statement = buildStatement(conn.engine, write, row);
      if (!statement) return { rowCount: 0 };
      const result = await engine.query(statement.text, statement.values, `${write.operation} on ${write.table}`, opts.signal);
      if (write.operation === "select") return { rowCount: result.rows.length, rows: result.rows };
      // MySQL counts an upsert that updated as 2 affected rows; one input is one row everywhere.
      return { rowCount: write.operation === "upsert" ? Math.min(result.rowCount, 1) : result.rowCount };
    },
    async test() {
      open();
      const started = performance.now();
      const serverVersion = await engine.serverVersion();
      return { latencyMs: Math.round((performance.now() - started) * 10) / 10, serverVersion };
    },
    async listTables() {
      open();
      return engine.listTables();
    },
    async listColumns(table: string) {
      open();
      const name = parseTableName(table);
      const columns = await engine.listColumns(name.schema, name.name);
      if (columns.length === 0) {
        throw new ConnectorError(
          "DESTINATION_REJECTED",
          `${describeServer(conn)}: table "${table}" does not exist or user "${conn.user}" cannot see it`,
        );
      }
      return columns;
    },
    async close() {
      if (closed) return;
      closed = true;
      await engine.close();
    },
  };
}
