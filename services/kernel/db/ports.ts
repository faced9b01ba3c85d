/**
 * The database port every service talks to. Two adapters implement it: `createPgDatabase`
 * (native PostgreSQL through `pg`, production) and `createPgliteDatabase` (PGlite, embedded
 * default, with pgvector). Service code only sees this interface.
 *
 * Value conventions (identical in both adapters, so code and tests do not care which runs):
 * - `int8`/`bigint` columns (and `count(*)`) come back as JS `bigint`, never as a lossy number
 *   or a string. Cast in SQL (`count(*)::int`) when a number is wanted. `bigint` parameters are
 *   accepted everywhere.
 * - `numeric` comes back as a string; `timestamptz` as a `Date`; `json`/`jsonb` as parsed values.
 * - Pass JSON parameters as strings (`JSON.stringify(v)`) with an explicit `$n::jsonb` cast.
 */

/** Which engine is behind a {@link Database}. */
export type DatabaseDialect = "postgres" | "pglite";

/** Optional features the engine offers. */
export interface DatabaseCapabilities {
  /** `CREATE EXTENSION vector` (pgvector) is available. */
  vector: boolean;
}

/** Rows of one statement. */
export interface QueryResult<T> {
  rows: T[];
  /** Rows returned or affected (INSERT/UPDATE/DELETE count). */
  rowCount: number;
}

/** Something that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  /** Runs one statement with positional parameters (`$1`, `$2`, …). */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
  /** Runs a script of several statements without parameters (migrations, DDL). */
  exec(sql: string): Promise<void>;
}

/**
 * An open transaction. Valid only inside the `transaction()` callback that received it; using
 * it afterwards throws.
 */
export type Tx = Queryable;

/** Callback run when a NOTIFY arrives on a channel the caller listens to. */
export type NotificationListener = (payload: string) => void;

/** The database port. */
export interface Database extends Queryable {
  readonly dialect: DatabaseDialect;
  readonly capabilities: DatabaseCapabilities;
  /**
   * Runs `fn` in one transaction (READ COMMITTED): COMMIT when it resolves, ROLLBACK when it
   * throws (the error is rethrown). Inside the callback use `tx`, not the database: on PGlite
   * (one connection) calling the database from inside its own transaction would wait forever,
   * so it throws instead.
   */
  transaction<R>(fn: (tx: Tx) => Promise<R>): Promise<R>;
  /**
   * LISTENs on `channel`; `onNotify` runs for every NOTIFY committed on it. Resolves to an
   * unsubscribe function. Notifications are a wake-up hint, never the only trigger: a pg
   * listener connection can drop (it reconnects by itself), so pair it with polling.
   */
  listen(channel: string, onNotify: NotificationListener): Promise<() => Promise<void>>;
  /** Closes every connection; the database is unusable afterwards. */
  close(): Promise<void>;
}
