/** SQLSTATE codes Nexus reacts to (PostgreSQL appendix A). */
export const PG_ERRORS = {
  UNIQUE_VIOLATION: "23505",
  RESTRICT_VIOLATION: "23001",
  SERIALIZATION_FAILURE: "40001",
  DEADLOCK_DETECTED: "40P01",
} as const;

/** The SQLSTATE of a database error raised by either adapter (`pg` or PGlite), if any. */
export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The constraint named by a database error (unique, check, foreign key), if any. */
export function pgErrorConstraint(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const constraint = (err as { constraint?: unknown }).constraint;
  return typeof constraint === "string" ? constraint : undefined;
}

/** Socket error codes of a database server that cannot be reached (Node's `err.code`). */
const UNREACHABLE_SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs (besides class 08, connection exception) that say "the server is going away or not
 * there yet" rather than "the statement is wrong": admin_shutdown (57P01, also what
 * pg_terminate_backend sends), crash_shutdown (57P02), cannot_connect_now (57P03: starting up
 * or shutting down) and too_many_connections (53300), which passes with time.
 */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/**
 * Messages of node-postgres (`pg`, `pg-pool`) for a connection that broke or never came: they
 * carry no code. Matched as prefixes, case-sensitive, as the library writes them.
 */
const CONNECTION_MESSAGES = [
  "Connection terminated",
  "connection terminated",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable",
  "timeout exceeded when trying to connect",
  "terminating connection due to administrator command",
  "the database system is starting up",
  "the database system is shutting down",
  "the database system is in recovery mode",
];

/**
 * True when `err` (or an error in its `cause` chain, or one of an AggregateError's errors) is
 * a connection-class database failure: the server refused or dropped the connection, is
 * restarting (57P01, 57P02, 57P03), has no slot (53300), any SQLSTATE of class 08, or the pool
 * timed out waiting for a connection. These say nothing about the request, and retrying the
 * same call once the database is back succeeds — so the kernel answers them UNAVAILABLE with
 * RetryInfo instead of INTERNAL (services/kernel/interceptors/error-normalizing.ts).
 */
export function isDatabaseUnavailableError(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (UNREACHABLE_SOCKET_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && (code.startsWith("08") || UNAVAILABLE_SQLSTATES.has(code))) return true;
  }
  const message = (err as { message?: unknown }).message;
  if (typeof message === "string" && CONNECTION_MESSAGES.some((m) => message.startsWith(m))) return true;
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.some((e) => isDatabaseUnavailableError(e, depth + 1))) return true;
  return isDatabaseUnavailableError((err as { cause?: unknown }).cause, depth + 1);
}
