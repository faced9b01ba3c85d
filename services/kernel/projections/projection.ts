import type { Tx } from "../db/ports.js";

/**
 * A read model kept in a table and rebuilt from the event log (R5): which streams feed it and
 * how a stream's events become its row(s). The projections registered today are the state
 * tables of event-sourced aggregates (written in the command's own transaction, so their lag
 * is zero unless they drifted); the rebuild machinery (rebuild.ts) is the same for any table
 * keyed by the stream.
 */
export interface Projection {
  /** The projection's name, e.g. "auth.tenants" (the CLI's argument). */
  name: string;
  /** One line for `nexus projections list`. */
  description: string;
  /** The live table, schema-qualified, e.g. "auth.tenants". */
  table: string;
  /** Its primary key column (one per stream). */
  key: string;
  /** The columns a rebuild writes and compares (the key included). */
  columns: readonly string[];
  /** Streams that feed it: `stream_id LIKE prefix || '%'`, e.g. "tenant-". */
  streamPrefix: string;
  /** The stream's version column in the table (for lag: a row behind its stream). */
  versionColumn: string;
  /**
   * Rebuilds the rows of `streamIds` from the log (not from snapshots) into `target` (a
   * schema-qualified table shaped like `table`): upsert by key, delete when the stream's
   * state is none.
   */
  project(tx: Tx, target: string, streamIds: readonly string[]): Promise<void>;
}
