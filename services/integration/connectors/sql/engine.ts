/** The little each SQL engine adapter (postgres.ts, mysql.ts) provides to the destination (index.ts). */

/** What a statement returned, engine-neutral. */
export interface EngineResult {
  rowCount: number;
  rows: Record<string, unknown>[];
}

/** One pooled connection to one database server. Errors come out already classified (ConnectorError). */
export interface SqlEngine {
  query(text: string, values: unknown[], what: string, signal?: AbortSignal): Promise<EngineResult>;
  serverVersion(): Promise<string>;
  listTables(): Promise<{ schema: string; name: string }[]>;
  listColumns(schema: string | undefined, table: string): Promise<{ name: string; type: string; nullable: boolean; primaryKey: boolean }[]>;
  close(): Promise<void>;
}

/** Longest a statement may run before it counts as timed out (retryable): 30 s. */
export const STATEMENT_TIMEOUT_MS = 30_000;
/** Default `poolMax`. */
export const DEFAULT_POOL_MAX = 5;
/** Default `connectTimeoutMs`. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** Runs `work` unless `signal` aborts first; `onAbort` drops the connection the work was using. */
export async function raceAbort<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
  cancelled: () => Error,
): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    onAbort();
    work.catch(() => undefined);
    throw cancelled();
  }
  let listener: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    listener = () => {
      onAbort();
      reject(cancelled());
    };
    signal.addEventListener("abort", listener, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    work.catch(() => undefined);
    aborted.catch(() => undefined);
    if (listener) signal.removeEventListener("abort", listener);
  }
}
