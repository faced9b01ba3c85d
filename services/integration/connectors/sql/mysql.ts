/** The MySQL/MariaDB engine of SQL destinations: a `mysql2/promise` pool, timeouts, errors classified. */
import { createPool, type Pool, type PoolConnection, type ResultSetHeader, type RowDataPacket } from "mysql2/promise";
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
import { cancelledError, classifyMysqlError, describeServer } from "./errors.js";

/** Opens a pool lazily: no connection is made until the first statement. */
export function createMysqlEngine(conn: SqlConnection, logger: Pick<Logger, "warn">): SqlEngine {
  const pool: Pool = createPool({
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.user,
    password: conn.password,
    ssl: conn.ssl ? { rejectUnauthorized: true } : undefined,
    connectionLimit: conn.poolMax ?? DEFAULT_POOL_MAX,
    maxIdle: conn.poolMax ?? DEFAULT_POOL_MAX,
    idleTimeout: 30_000,
    connectTimeout: conn.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    waitForConnections: true,
    queueLimit: 0,
    enableKeepAlive: true,
    // Dates are written and read as UTC, whatever the server's or this process's time zone.
    timezone: "Z",
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  // mysql2 emits 'error' on pooled connections that break while idle; keep the process alive.
  pool.on("connection", (c) => {
    c.on("error", (err: Error) => logger.warn({ server: describeServer(conn), err: err.message }, "idle database connection dropped"));
  });

  async function query(text: string, values: unknown[], what: string, signal?: AbortSignal): Promise<EngineResult> {
    let connection: PoolConnection | undefined;
    let broken = false;
    try {
      connection = await raceAbort(
        pool.getConnection(),
        signal,
        () => undefined,
        () => cancelledError(conn, what),
      );
      const c = connection;
      const [result] = await raceAbort(
        c.query({ sql: text, values, timeout: STATEMENT_TIMEOUT_MS }),
        signal,
        () => {
          broken = true;
        },
        () => cancelledError(conn, what),
      );
      if (Array.isArray(result)) return { rowCount: result.length, rows: (result as RowDataPacket[]).map((r) => ({ ...r })) };
      return { rowCount: (result as ResultSetHeader).affectedRows ?? 0, rows: [] };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== "string" || !code.startsWith("ER_")) broken = true;
      throw classifyMysqlError(err, conn, what);
    } finally {
      if (connection) {
        // A cancelled, timed-out or broken connection is destroyed rather than handed out again.
        if (broken) connection.destroy();
        else connection.release();
      }
    }
  }

  return {
    query,
    async serverVersion() {
      const { rows } = await query("SELECT VERSION() AS version", [], "connection test");
      const version = String(rows[0]?.version ?? "");
      return `${/mariadb/i.test(version) ? "MariaDB" : "MySQL"} ${version}`;
    },
    async listTables() {
      const { rows } = await query(
        `SELECT table_schema AS \`schema\`, table_name AS name FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1, 2`,
        [],
        "table listing",
      );
      return rows.map((r) => ({ schema: String(r.schema), name: String(r.name) }));
    },
    async listColumns(schema, table) {
      const { rows } = await query(
        `SELECT column_name AS name, column_type AS type, is_nullable = 'YES' AS nullable, column_key = 'PRI' AS primary_key
         FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
         ORDER BY ordinal_position`,
        [schema ?? null, table],
        "column listing",
      );
      return rows.map((r) => ({
        name: String(r.name),
        type: String(r.type),
        nullable: Number(r.nullable) === 1,
        primaryKey: Number(r.primary_key) === 1,
      }));
    },
    async close() {
      await pool.end();
    },
  };
}
