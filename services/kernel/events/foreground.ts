import type { Database, Tx } from "../db/ports.js";

/**
 * Latency-critical work in progress in this process — a run on its way to its first token.
 * Background event processing (the local bus's consumers) waits for it before starting a
 * round, so the work an event wakes up (several consumers, several statements each) never
 * runs ahead of a caller who is waiting for an answer. On PGlite that matters most: every
 * statement runs on the event loop, and a burst of consumer rounds keeps sockets — the run's
 * own retrieval answer, its first token — unread until it is over.
 *
 * The wait is bounded (see {@link ForegroundWork.idle}), so background work is delayed, never
 * starved: under constant load consumers still run at least every `maxWaitMs`.
 */
export class ForegroundWork {
  private active = 0;
  private readonly waiters = new Set<() => void>();

  /** True while some foreground work is in progress. */
  get busy(): boolean {
    return this.active > 0;
  }

  /** Marks foreground work as started; call the returned function (idempotent) when it is over. */
  begin(): () => void {
    this.active += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.active -= 1;
      if (this.active > 0 || this.waiters.size === 0) return;
      // After the I/O the ending work just queued (its response write is flushed on this turn).
      setImmediate(() => {
        if (this.active > 0) return;
        const waiting = [...this.waiters];
        this.waiters.clear();
        for (const resolve of waiting) resolve();
      });
    };
  }

  /** Resolves at once when idle, else when the foreground work is over or after `maxWaitMs`. */
  idle(maxWaitMs: number): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, maxWaitMs);
      this.waiters.add(done);
    });
  }
}

/** The process's foreground work (one per process: it shares one event loop). */
export const foregroundWork = new ForegroundWork();

/** How long background work waits for foreground work at most, per wait. */
export const FOREGROUND_MAX_WAIT_MS = 250;

/** Lets pending I/O callbacks (sockets) run before the caller goes on. */
export function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets a response just written reach its reader: the write is flushed on the first turn of
 * the event loop, and the socket read (a client in this very process: `nexus dev` with the
 * CLI, or the bench) happens in the poll phase before the second.
 */
export async function letWritesOut(): Promise<void> {
  await yieldToIo();
  await yieldToIo();
}

/**
 * `db` for background work: every statement and transaction first lets pending I/O run, so a
 * burst of background statements (on PGlite each one runs on the event loop) interleaves with
 * the sockets of foreground calls instead of holding them up until it is over. Statements
 * inside a transaction run as usual (the transaction holds the connection).
 */
export function yieldingDatabase(db: Database): Database {
  return {
    dialect: db.dialect,
    capabilities: db.capabilities,
    async query<T>(sql: string, params?: readonly unknown[]) {
      await yieldToIo();
      return db.query<T>(sql, params);
    },
    async exec(sql: string) {
      await yieldToIo();
      await db.exec(sql);
    },
    async transaction<R>(fn: (tx: Tx) => Promise<R>) {
      await yieldToIo();
      return db.transaction(fn);
    },
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    close: () => db.close(),
  };
}
