import type { Queryable, Tx } from "../db/ports.js";

/**
 * A read model kept in a table and rebuilt from the event log (R5): which streams feed it and
 * how a stream's events become its row(s). The projections registered today are the state
 * tables of event-sourced aggregates (written in the command's own transaction, so their lag
 * is zero unless they drifted) and `metering.usage_records` (many rows per tenant stream); the
 * rebuild machinery (rebuild.ts) is the same for any table with a primary key.
 */
export interface Projection {
  /** The projection's name, e.g. "auth.tenants" (the CLI's argument). */
  name: string;
  /** One line for `nexus projections list`. */
  description: string;
  /** The live table, schema-qualified, e.g. "auth.tenants". */
  table: string;
  /** Its primary key column. */
  key: string;
  /** The columns a rebuild writes and compares (the key included). */
  columns: readonly string[];
  /** Streams that feed it: `stream_id LIKE prefix || '%'`, e.g. "tenant-". */
  streamPrefix: string;
  /**
   * The stream's version column in the table (for lag: a row behind its stream), for tables
   * with one row per stream; a projection with several rows per stream gives `measureLag`.
   */
  versionColumn?: string;
  /**
   * Rows behind the log and the age in seconds of the oldest event they do not reflect (null:
   * none), measured in `tx` under the status budget. Default: rows whose `versionColumn` is
   * behind their stream's version.
   */
  measureLag?(tx: Tx): Promise<{ behind: number; lagSeconds: number | null }>;
  /** Called before a rebuild fills the shadow table (e.g. to create its own side tables). */
  beforeRebuild?(db: Queryable): Promise<void>;
  /**
   * Called in the swap transaction, once the shadow holds the rebuilt rows and before the live
   * table is made equal to it (the live table locked against writers): recomputes what is
   * derived from the rows. Resolves to the derived rows it changed.
   */
  onSwap?(tx: Tx, shadow: string): Promise<number>;
  /** Called when a rebuild ends, whether it succeeded or failed (drops side tables). */
  afterRebuild?(db: Queryable): Promise<void>;
  /**
   * Rebuilds the rows of `streamIds` from the log (not from snapshots) into `target` (a
   * schema-qualified table shaped like `table`): upsert by key, delete when the stream's
   * state is none.
   */
  project(tx: Tx, target: string, streamIds: readonly string[]): Promise<void>;
}
