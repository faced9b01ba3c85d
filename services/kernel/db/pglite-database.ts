import { AsyncLocalStorage } from "node:async_hooks";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import type { Database, QueryResult, Tx } from "./ports.js";

/** Options of {@link createPgliteDatabase}. */
export interface PgliteDatabaseOptions {
  /** Directory holding the database files; `undefined` = in memory (gone on close). */
  dataDir?: string;
}

const INT8 = 20;
const CHANNEL = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

interface TxScope {
  open: boolean;
}

interface PgliteResult {
  rows: unknown[];
  affectedRows?: number;
}

function toResult<T>(result: PgliteResult): QueryResult<T> {
  return { rows: result.rows as T[], rowCount: result.affectedRows || result.rows.length };
}

/**
 * The embedded adapter: PostgreSQL compiled to WASM, in this process, with pgvector loaded
 * (`CREATE EXTENSION vector` works). PGlite has exactly one connection, so transactions are
 * serialized: PGlite's own exclusive lock keeps every other statement — from any caller — out
 * until the transaction ends, so concurrent callers never interleave inside a transaction.
 * Calling the database (instead of the `tx`) from inside a transaction would wait for itself
 * forever; that throws a clear error instead.
 */
export async function createPgliteDatabase(options: PgliteDatabaseOptions = {}): Promise<Database> {
  const pglite = await PGlite.create({
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    extensions: { vector },
    // PGlite parses int8 to a number when it fits and to a bigint when not; the port promises bigint.
    parsers: { [INT8]: (value: string) => BigInt(value) },
  });
  const scope = new AsyncLocalStorage<TxScope>();

  const assertOutsideTx = (): void => {
    if (scope.getStore()?.open) {
      throw new Error("PGlite has a single connection: inside db.transaction() run statements on the tx it hands you, not on db");
    }
  };

  const db: Database = {
    dialect: "pglite",
    capabilities: { vector: true },
    async query<T>(sql: string, params?: readonly unknown[]) {
      assertOutsideTx();
      return toResult<T>(await pglite.query(sql, params as unknown[] | undefined));
    },
    async exec(sql) {
      assertOutsideTx();
      await pglite.exec(sql);
    },
    async transaction(fn) {
      assertOutsideTx();
      const state: TxScope = { open: true };
      try {
        return await pglite.transaction((ptx: Transaction) => {
          const guard = (): void => {
            if (!state.open) throw new Error("transaction is closed: use the tx only inside its transaction() callback");
          };
          const tx: Tx = {
            async query<T>(sql: string, params?: readonly unknown[]) {
              guard();
              return toResult<T>(await ptx.query(sql, params as unknown[] | undefined));
            },
            async exec(sql) {
              guard();
              await ptx.exec(sql);
            },
          };
          return scope.run(state, () => fn(tx));
        });
      } finally {
        state.open = false;
      }
    },
    async listen(channel, onNotify) {
      if (!CHANNEL.test(channel)) throw new Error(`invalid LISTEN channel name: ${JSON.stringify(channel)}`);
      assertOutsideTx();
      const unlisten = await pglite.listen(channel, onNotify);
      return async () => {
        if (!pglite.closed) await unlisten();
      };
    },
    async close() {
      if (!pglite.closed) await pglite.close();
    },
  };
  return db;
}
