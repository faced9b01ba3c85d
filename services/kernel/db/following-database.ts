import type { Logger } from "pino";
import { type DatabaseEndpoint, databaseUrlAt, endpointOfUrl, formatDatabaseEndpoint, readDatabaseEndpoint } from "./database-endpoint.js";
import type { Database, NotificationListener } from "./ports.js";

/** Options of {@link createFollowingDatabase}. */
export interface FollowingDatabaseOptions {
  /** DATABASE_URL: credentials, database and options; its host:port is the endpoint until the file names another. */
  url: string;
  /** The file holding `host:port` of the primary (the runtime ConfigMap's `databaseEndpoint`). */
  endpointFile: string;
  /** Opens a database at a URL (the pg adapter; it fails when the server cannot be reached). */
  open(url: string): Promise<Database>;
  /** How often the file is re-read. Default 1000 ms. */
  pollMs?: number;
  /** How long the previous pool keeps serving its in-flight work after a switch. Default 30 000 ms. */
  drainMs?: number;
  logger?: Logger;
}

/** A database that follows the endpoint file: see {@link createFollowingDatabase}. */
export interface FollowingDatabase extends Database {
  /** `host:port` this process talks to now. */
  endpoint(): string;
  /**
   * Why the process is not where the file says (an unreadable or malformed file, or a switch
   * that failed and is retried at every poll); undefined when it is.
   */
  problem(): string | undefined;
  /** Reads the file now and switches when it names another endpoint (also done every pollMs). */
  refresh(): Promise<void>;
}

interface Subscription {
  channel: string;
  listener: NotificationListener;
  off: (() => Promise<void>) | undefined;
}

/**
 * A PostgreSQL database that moves when a failover moves the primary.
 *
 * At start it connects to the endpoint the file names (or DATABASE_URL's own when the file is
 * missing or empty; a malformed file fails the start, naming the file). Then it re-reads the
 * file every `pollMs`: when another endpoint appears it opens a pool there, moves every LISTEN
 * to it, sends new work there and wakes every listener once (notifications sent during the
 * move are lost, and listeners re-check on a wake-up); the old pool finishes its in-flight
 * queries and transactions and is closed. A switch that fails (target unreachable) keeps the
 * current pool, is reported by {@link FollowingDatabase.problem} (the readiness check fails
 * with it) and is retried at the next poll.
 *
 * The operator also rolls the Deployments after a promotion, so new pods start on the new
 * endpoint; following the file covers the pods that have not been replaced yet and processes
 * outside Kubernetes that mount the same flags.
 */
export async function createFollowingDatabase(options: FollowingDatabaseOptions): Promise<FollowingDatabase> {
  const { url, endpointFile, logger } = options;
  const own = endpointOfUrl(url);
  const initial = (await readDatabaseEndpoint(endpointFile)) ?? own;
  let current: DatabaseEndpoint = initial;
  let inner = await options.open(databaseUrlAt(url, initial));
  if (formatDatabaseEndpoint(initial) !== formatDatabaseEndpoint(own)) {
    logger?.info({ endpoint: formatDatabaseEndpoint(initial), file: endpointFile }, "database endpoint taken from the failover flags");
  }
  let problem: string | undefined;
  let lastLogged: string | undefined;
  let closed = false;
  const subscriptions = new Set<Subscription>();
  const retiring = new Set<Promise<void>>();

  // Listens and switches run one at a time, so a LISTEN never lands on a pool being retired.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };

  const report = (message: string | undefined, err?: unknown): void => {
    problem = message;
    if (message && message !== lastLogged) logger?.warn({ err, file: endpointFile }, message);
    lastLogged = message;
  };

  const retire = (db: Database): void => {
    const drainMs = options.drainMs ?? 30_000;
    const done = (async () => {
      // pool.end() waits for checked-out connections; bound the wait so a stuck query cannot hold it forever.
      await Promise.race([db.close(), new Promise<void>((r) => setTimeout(r, drainMs).unref())]);
    })().catch((err: unknown) => logger?.warn({ err }, "closing the previous database pool failed"));
    retiring.add(done);
    void done.finally(() => retiring.delete(done));
  };

  const switchTo = async (target: DatabaseEndpoint): Promise<void> => {
    const from = formatDatabaseEndpoint(current);
    const to = formatDatabaseEndpoint(target);
    const next = await options.open(databaseUrlAt(url, target));
    const moved: Array<[Subscription, () => Promise<void>]> = [];
    try {
      for (const sub of subscriptions) moved.push([sub, await next.listen(sub.channel, sub.listener)]);
    } catch (err) {
      await next.close().catch(() => undefined);
      throw err;
    }
    for (const [sub, off] of moved) sub.off = off;
    const previous = inner;
    inner = next;
    current = target;
    retire(previous);
    logger?.warn({ from, to, file: endpointFile }, `database endpoint switched from ${from} to ${to} (failover)`);
    for (const sub of subscriptions) sub.listener("");
  };

  const refresh = (): Promise<void> =>
    serial(async () => {
      if (closed) return;
      let wanted: DatabaseEndpoint | undefined;
      try {
        wanted = await readDatabaseEndpoint(endpointFile);
      } catch (err) {
        report(`${(err as Error).message}; staying on ${formatDatabaseEndpoint(current)}`, err);
        return;
      }
      // A file that disappears says nothing new: stay where the last failover put us.
      if (!wanted || formatDatabaseEndpoint(wanted) === formatDatabaseEndpoint(current)) {
        report(undefined);
        return;
      }
      try {
        await switchTo(wanted);
        report(undefined);
      } catch (err) {
        report(
          `cannot switch the database from ${formatDatabaseEndpoint(current)} to ${formatDatabaseEndpoint(wanted)} as ${endpointFile} asks: ${(err as Error).message}; retrying`,
          err,
        );
      }
    });

  const timer = setInterval(() => void refresh(), options.pollMs ?? 1_000);
  timer.unref();

  return {
    dialect: inner.dialect,
    capabilities: inner.capabilities,
    query: (sql, params) => inner.query(sql, params),
    exec: (sql) => inner.exec(sql),
    transaction: (fn) => inner.transaction(fn),
    listen: (channel, listener) =>
      serial(async () => {
        const sub: Subscription = { channel, listener, off: undefined };
        sub.off = await inner.listen(channel, listener);
        subscriptions.add(sub);
        return async () => {
          if (!subscriptions.delete(sub)) return;
          await sub.off?.();
        };
      }),
    endpoint: () => formatDatabaseEndpoint(current),
    problem: () => problem,
    refresh,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await chain;
      await inner.close();
      await Promise.all(retiring);
    },
  };
}
