/**
 * Classifies driver errors of `pg` and `mysql2` into ConnectorErrors: retryable
 * DESTINATION_UNAVAILABLE (the server is unreachable, restarting, overloaded, timed out, or a
 * deadlock/serialization failure chose this statement), DESTINATION_REJECTED (the statement itself
 * is wrong for this table: constraint, type, unknown column — retrying never helps) and
 * INVALID_DESTINATION_CONFIG (authentication or database name wrong). Messages name the server and
 * the server's own explanation, and never the password.
 */
import { isDatabaseUnavailableError } from "../../../kernel/db/pg-error.js";
import { ConnectorError, type SqlConnection } from "../ports.js";

/** SQLSTATEs that succeed when retried: serialization failure, deadlock, lock timeout, statement timeout/cancel. */
const PG_RETRYABLE_SQLSTATES = new Set(["40001", "40P01", "55P03", "57014"]);
/** SQLSTATE classes that mean the configuration is wrong: 28 (authentication), 3D (no such database). */
const PG_CONFIG_CLASSES = ["28", "3D"];

/** mysql2 error codes that pass with time: connection trouble, overload, deadlock, timeouts, shutdown. */
const MYSQL_RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  // a per-user resource limit (max_user_connections, max_questions per hour): passes with time
  "ER_USER_LIMIT_REACHED",
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
  "ER_QUERY_INTERRUPTED",
  "ER_QUERY_TIMEOUT",
  "ER_STATEMENT_TIMEOUT",
  "ER_CONNECTION_KILLED",
  "ER_OUT_OF_RESOURCES",
  "ER_SERVER_OFFLINE_MODE",
]);
/** mysql2 error codes that mean the configuration is wrong. */
const MYSQL_CONFIG_CODES = new Set(["ER_ACCESS_DENIED_ERROR", "ER_DBACCESS_DENIED_ERROR", "ER_BAD_DB_ERROR", "ER_NOT_SUPPORTED_AUTH_MODE"]);

type DriverError = { code?: unknown; message?: unknown; sqlState?: unknown; fatal?: unknown; errors?: unknown };

function field(err: unknown, key: keyof DriverError): unknown {
  return typeof err === "object" && err !== null ? (err as DriverError)[key] : undefined;
}

/** The driver's message with the password removed (drivers do not print it, but never trust that). */
function safeMessage(err: unknown, conn: SqlConnection): string {
  let message = field(err, "message");
  if (typeof message !== "string" || message === "") {
    // AggregateError (Node's happy-eyeballs connect) keeps the useful message in its parts.
    const errors = field(err, "errors");
    const first = Array.isArray(errors) ? errors[0] : undefined;
    message = typeof field(first, "message") === "string" ? field(first, "message") : String(field(err, "code") ?? err);
  }
  let text = String(message);
  if (conn.password && conn.password.length >= 3) text = text.replaceAll(conn.password, "[REDACTED]");
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** `PostgreSQL at 127.0.0.1:5432/app` — where the error happened, for the message. */
export function describeServer(conn: SqlConnection): string {
  return `${conn.engine === "postgres" ? "PostgreSQL" : "MySQL"} at ${conn.host}:${conn.port}/${conn.database}`;
}

/** The cancellation a caller's AbortSignal causes: retryable, and honest that the write may have happened. */
export function cancelledError(conn: SqlConnection, what: string): ConnectorError {
  return new ConnectorError(
    "DESTINATION_UNAVAILABLE",
    `${describeServer(conn)}: the ${what} was cancelled before the server answered (deadline or shutdown); it may or may not have been applied`,
  );
}

/** Turns any error of the `pg` driver into a ConnectorError (a ConnectorError passes through). */
export function classifyPgError(err: unknown, conn: SqlConnection, what: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const server = describeServer(conn);
  const message = safeMessage(err, conn);
  const code = field(err, "code");
  const sqlState = typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  if (isDatabaseUnavailableError(err) || (sqlState && PG_RETRYABLE_SQLSTATES.has(sqlState))) {
    return new ConnectorError(
      "DESTINATION_UNAVAILABLE",
      `${server} is unavailable for the ${what}: ${message}${sqlState ? ` (${sqlState})` : ""} — it is retried; check the server if this persists`,
      { cause: err },
    );
  }
  if (sqlState && PG_CONFIG_CLASSES.some((c) => sqlState.startsWith(c))) {
    return new ConnectorError(
      "INVALID_DESTINATION_CONFIG",
      `${server} refused the connection: ${message} (${sqlState}) — check the database, user and password`,
      {
        cause: err,
      },
    );
  }
  if (sqlState) {
    return new ConnectorError("DESTINATION_REJECTED", `${server} rejected the ${what}: ${message} (${sqlState})`, { cause: err });
  }
  // No SQLSTATE and not a known connection failure: a socket or TLS problem of some other kind.
  return new ConnectorError("DESTINATION_UNAVAILABLE", `${server} could not run the ${what}: ${message}`, { cause: err });
}

/** Turns any error of `mysql2` into a ConnectorError (a ConnectorError passes through). */
export function classifyMysqlError(err: unknown, conn: SqlConnection, what: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const server = describeServer(conn);
  const message = safeMessage(err, conn);
  const rawCode = field(err, "code");
  const code = typeof rawCode === "string" ? rawCode : undefined;
  const sqlState = typeof field(err, "sqlState") === "string" ? (field(err, "sqlState") as string) : undefined;
  const serverError = code?.startsWith("ER_") === true || (sqlState !== undefined && sqlState !== "HY000");
  if (
    (code && MYSQL_RETRYABLE_CODES.has(code)) ||
    sqlState?.startsWith("08") ||
    sqlState === "40001" ||
    isDatabaseUnavailableError(err) ||
    // A fatal error without a server code is a broken connection.
    (!serverError && field(err, "fatal") === true)
  ) {
    return new ConnectorError(
      "DESTINATION_UNAVAILABLE",
      `${server} is unavailable for the ${what}: ${message}${code ? ` (${code})` : ""} — it is retried; check the server if this persists`,
      { cause: err },
    );
  }
  if (code && MYSQL_CONFIG_CODES.has(code)) {
    return new ConnectorError(
      "INVALID_DESTINATION_CONFIG",
      `${server} refused the connection: ${message} (${code}) — check the database, user and password`,
      {
        cause: err,
      },
    );
  }
  if (code?.startsWith("ER_") || sqlState) {
    return new ConnectorError("DESTINATION_REJECTED", `${server} rejected the ${what}: ${message}${code ? ` (${code})` : ""}`, {
      cause: err,
    });
  }
  return new ConnectorError("DESTINATION_UNAVAILABLE", `${server} could not run the ${what}: ${message}`, { cause: err });
}
