import pg from "pg";
import type { Logger } from "pino";
import { backoffDelayMs } from "../resilience/backoff.js";
import type { Database, NotificationListener, Queryable, QueryResult, Tx } from "./ports.js";

/** Options of {@link createPgDatabase}. */
export interface PgDatabaseOptions {
  /** `postgres://user:pass@host:port/db` connection string. */
  url: string;
  /** Connections in the pool. Default 10. One more is opened for LISTEN when someone listens. */
  poolSize?: number;
  /** `application_name` seen in pg_stat_activity. Default "nexus". */
  applicationName?: string;
  /** How long to wait for a connection before failing. Default 10 000 ms. */
  connectionTimeoutMs?: number;
  /** Idle connections are closed after this long. Default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Where connection-level errors (an idle connection dropped by the server) are reported. */
  logger?: Logger;
}

const INT8 = 20;
const INT8_ARRAY = 1016;

function toBigInts(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toBigInts);
  return typeof value === "string" ? BigInt(value) : value;
}

/** int8 → bigint (the port's convention); everything else keeps pg's default parsing. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8) return (v: string) => BigInt(v);
    if (oid === INT8_ARRAY) {
      const parseArray = (pg.types.getTypeParser as (oid: number, format: "text") => (v: string) => unknown)(INT8_ARRAY, "text");
      return (v: string) => toBigInts(parseArray(v));
    }
    return (pg.types.getTypeParser as (oid: number, format: "text" | "binary") => unknown)(oid, format ?? "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

const CHANNEL = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function assertChannel(channel: string): void {
  if (!CHANNEL.test(channel)) throw new Error(`invalid LISTEN channel name: ${JSON.stringify(channel)}`);
}

async function run<T>(client: pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
  const result = await client.query(sql, params as unknown[] | undefined);
  // A multi-statement script returns one result per statement; the port exposes the last.
  const last = Array.isArray(result) ? (result[result.length - 1] as pg.QueryResult) : result;
  return { rows: (last?.rows ?? []) as T[], rowCount: last?.rowCount ?? last?.rows?.length ?? 0 };
}

/**
 * One dedicated connection that LISTENs for every channel of the database; it reconnects with
 * backoff when the server drops it and then wakes every listener once, since notifications
 * sent while it was away are lost.
 */
class PgListener {
  private readonly channels = new Map<string, Set<NotificationListener>>();
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly logger: Logger | undefined,
  ) {}

  async add(channel: string, listener: NotificationListener): Promise<() => Promise<void>> {
    assertChannel(channel);
    let set = this.channels.get(channel);
    const fresh = !set;
    if (!set) this.channels.set(channel, (set = new Set()));
    set.add(listener);
    const client = await this.connect();
    if (fresh) await client.query(`LISTEN "${channel}"`);
    return async () => {
      const current = this.channels.get(channel);
      if (!current?.delete(listener) || current.size > 0) return;
      this.channels.delete(channel);
      await this.client?.query(`UNLISTEN "${channel}"`).catch(() => undefined);
    };
  }

  private connect(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error("database is closed"));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client(this.config);
      client.on("notification", (n) => {
        for (const listener of this.channels.get(n.channel) ?? []) listener(n.payload ?? "");
      });
      client.on("error", (err) => this.lost(client, err));
      client.on("end", () => this.lost(client, undefined));
      try {
        await client.connect();
        for (const channel of this.channels.keys()) await client.query(`LISTEN "${channel}"`);
      } catch (err) {
        client.removeAllListeners();
        // The server may still report the dropped connection: an 'error' without a listener kills the process.
        client.on("error", () => undefined);
        await client.end().catch(() => undefined);
        throw err;
      } finally {
        this.connecting = undefined;
      }
      this.client = client;
      this.failures = 0;
      return client;
    })();
    return this.connecting;
  }

  private lost(client: pg.Client, err: Error | undefined): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    client.removeAllListeners();
    client.on("error", () => undefined);
    this.logger?.warn({ err }, "postgres LISTEN connection lost; reconnecting");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer || this.channels.size === 0) return;
    const delay = backoffDelayMs(++this.failures, { initialMs: 500, maxMs: 30_000 });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().then(
        () => {
          // Notifications sent while disconnected are gone: wake everyone so they re-check.
          for (const set of this.channels.values()) for (const listener of set) listener("");
        },
        (err: unknown) => {
          this.logger?.warn({ err }, "postgres LISTEN reconnect failed");
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.retryTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    if (client) {
      client.removeAllListeners();
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * The production adapter: a `pg` connection pool. Fails fast when the server is unreachable
 * (one probe query at creation), and reports whether pgvector is installable.
 */
export async function createPgDatabase(options: PgDatabaseOptions): Promise<Database> {
  const clientConfig: pg.ClientConfig = {
    connectionString: options.url,
    application_name: options.applicationName ?? "nexus",
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    types,
  };
  const pool = new pg.Pool({
    ...clientConfig,
    max: options.poolSize ?? 10,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
  });
  // Without a handler, an idle client dropped by the server would crash the process.
  pool.on("error", (err) => options.logger?.warn({ err }, "idle postgres connection failed"));
  // pg-pool takes its own 'error' listener off a client while it is checked out and puts one on
  // only around each pool.query; a connection the server drops in a gap (restart,
  // pg_terminate_backend) would then be an unhandled 'error' event that kills the process. Every
  // client keeps this listener for its whole life; pg-pool's own still discard broken clients,
  // and the failed query or transaction reports the error to its caller.
  pool.on("connect", (client) => {
    client.on("error", (err) => options.logger?.debug({ err }, "postgres connection failed"));
  });
  const listener = new PgListener(clientConfig, options.logger);

  let vector: boolean;
  try {
    const probe = await pool.query<{ vector: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS vector",
    );
    vector = probe.rows[0]?.vector === true;
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }

  let closed = false;
  const db: Database = {
    dialect: "postgres",
    capabilities: { vector },
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => {
      await run(pool, sql);
    },
    async transaction(fn) {
      const client = await pool.connect();
      // pg-pool takes its own 'error' listener off a client while it is checked out: without
      // ours, a connection the server drops mid-transaction (restart, pg_terminate_backend of an
      // idle-in-transaction backend) is an unhandled 'error' event that kills the process. The
      // error is kept: the next statement fails with it, and the client is destroyed, not reused.
      let broken: Error | undefined;
      const onError = (err: Error): void => {
        broken ??= err;
        options.logger?.warn({ err }, "postgres connection failed inside a transaction");
      };
      client.on("error", onError);
      let open = true;
      const guard = (): void => {
        if (!open) throw new Error("transaction is closed: use the tx only inside its transaction() callback");
        if (broken) throw broken;
      };
      const tx: Tx & Queryable = {
        query: async (sql, params) => {
          guard();
          return run(client, sql, params);
        },
        exec: async (sql) => {
          guard();
          await run(client, sql);
        },
      };
      try {
        await client.query("BEGIN");
        const result = await fn(tx);
        if (broken) throw broken;
        await client.query("COMMIT");
        open = false;
        client.removeListener("error", onError);
        client.release();
        return result;
      } catch (err) {
        open = false;
        try {
          if (broken) throw broken;
          await client.query("ROLLBACK");
          client.removeListener("error", onError);
          client.release();
        } catch (rollbackErr) {
          // The connection is in an unknown state: destroy it rather than return it to the pool.
          // Our listener stays: a destroyed client may still report its socket's last error.
          client.release(rollbackErr instanceof Error ? rollbackErr : true);
        }
        throw err;
      }
    },
    listen: (channel, onNotify) => listener.add(channel, onNotify),
    async close() {
      if (closed) return;
      closed = true;
      await listener.close();
      await pool.end();
    },
  };
  return db;
}
