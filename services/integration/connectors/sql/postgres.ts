/** The PostgreSQL engine of SQL destinations: a `pg` Pool, statement timeout, errors classified. */
import pg from "pg";
import type { Logger } from "pino";
import type { SqlConnection } from "../ports.js";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_POOL_MAX,
  type EngineResult,
  raceAbort,
  type SqlEngine,
  STATEMENT_TIMEOUT_MS,
} from "./engine.js";
import { cancelledError, classifyPgError, describeServer } from "./errors.js";

/** Opens a pool lazily: no connection is made until the first statement. */
export function createPostgresEngine(conn: SqlConnection, logger: Pick<Logger, "warn">): SqlEngine {
  const pool = new pg.Pool({
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.user,
    password: conn.password,
    ssl: conn.ssl ? { rejectUnauthorized: true } : false,
    max: conn.poolMax ?? DEFAULT_POOL_MAX,
    connectionTimeoutMillis: conn.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // The client-side guard for a server that stops answering without closing the socket.
    query_timeout: STATEMENT_TIMEOUT_MS + 5_000,
    application_name: "nexus-integration",
  });
  // An idle pooled connection that breaks (server restart) is dropped by the pool; without this
  // listener the 'error' event would crash the process.
  pool.on("error", (err) => logger.warn({ server: describeServer(conn), err: err.message }, "idle database connection dropped"));

  async function query(text: string, values: unknown[], what: string, signal?: AbortSignal): Promise<EngineResult> {
    let client: pg.PoolClient | undefined;
    let broken = false;
    // pg-pool listens for errors only on idle clients; a checked-out client whose socket breaks
    // may emit 'error' after its query already failed, which must not become an uncaught exception.
    const onClientError = (err: Error) => {
      broken = true;
      logger.warn({ server: describeServer(conn), err: err.message }, "database connection broke during a statement");
    };
    try {
      client = await raceAbort(
        pool.connect(),
        signal,
        () => undefined,
        () => cancelledError(conn, what),
      );
      const c = client;
      c.on("error", onClientError);
      const result = await raceAbort(
        // Dates go as ISO-8601 UTC text: exact for timestamptz, UTC wall time for timestamp —
        // the same as the MySQL engine (timezone "Z"), whatever this process's time zone is.
        c.query(
          text,
          values.map((v) => (v instanceof Date ? v.toISOString() : v)),
        ),
        signal,
        () => {
          broken = true;
        },
        () => cancelledError(conn, what),
      );
      return { rowCount: result.rowCount ?? 0, rows: result.rows ?? [] };
    } catch (err) {
      if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "string" || !/^[0-9A-Z]{5}$/.test(err.code)) broken = true;
      throw classifyPgError(err, conn, what);
    } finally {
      // A cancelled or broken connection is destroyed rather than reused (pg ends it on release(err)).
      client?.off("error", onClientError);
      client?.release(broken ? new Error("connection dropped after a cancelled or failed statement") : undefined);
    }
  }

  return {
    query,
    async serverVersion() {
      const { rows } = await query("SHOW server_version", [], "connection test");
      return `PostgreSQL ${String(rows[0]?.server_version ?? "")}`.trim();
    },
    async listTables() {
      const { rows } = await query(
        `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
         ORDER BY 1, 2`,
        [],
        "table listing",
      );
      return rows.map((r) => ({ schema: String(r.schema), name: String(r.name) }));
    },
    async listColumns(schema, table) {
      const { rows } = await query(
        `SELECT c.column_name AS name,
                CASE WHEN c.data_type = 'USER-DEFINED' THEN c.udt_name ELSE c.data_type END AS type,
                c.is_nullable = 'YES' AS nullable,
                EXISTS (
                  SELECT 1 FROM information_schema.table_constraints tc
                  JOIN information_schema.key_column_usage k
                    ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
                  WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
                    AND tc.table_name = c.table_name AND k.column_name = c.column_name
                ) AS primary_key
         FROM information_schema.columns c
         WHERE c.table_schema = COALESCE($1, current_schema()) AND c.table_name = $2
         ORDER BY c.ordinal_position`,
        [schema ?? null, table],
        "column listing",
      );
      return rows.map((r) => ({
        name: String(r.name),
        type: String(r.type),
        nullable: r.nullable === true,
        primaryKey: r.primary_key === true,
      }));
    },
    async close() {
      await pool.end();
    },
  };
}
