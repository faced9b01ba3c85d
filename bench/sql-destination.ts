import { randomBytes } from "node:crypto";
import { createConnection } from "mysql2/promise";
import pg from "pg";
import { pino } from "pino";
import type { SqlConnection, SqlWrite } from "../services/integration/connectors/ports.js";
import { createSqlDestination } from "../services/integration/connectors/sql/index.js";
import { benchServerUrl, createBenchDatabase } from "./rag-setup.js";
import type { BenchOutcome, BenchRatio } from "./results.js";

/**
 * SQL destination benchmark (issue 13), on this machine's PostgreSQL and MariaDB: rows/s of the
 * integration connectors' SQL destination inserting one mapped row per `execute` (what a
 * workflow does per message: mapping, type conversion, identifier checks, statement building,
 * a pooled connection, error classification), with `poolMax` writes in flight, against two
 * baselines measured in the same run on the same table:
 *
 * - raw single-row INSERTs through the driver's pool at the same concurrency: the same round
 *   trips without the library, so destination/raw is the library's own overhead;
 * - raw multi-row INSERTs (one statement of `batch` rows at a time): what batching several
 *   messages into one statement would gain — the ceiling, not a like-for-like comparison.
 *
 * Each database (PostgreSQL: a fresh one on the bench server; MariaDB: a scratch database
 * created as root) is dropped afterwards. MariaDB is skipped when unreachable.
 */
export interface SqlDestinationBenchOptions {
  /** Rows per measurement. Default 5000. */
  rows?: number;
  /** Rows per multi-row statement of the baseline. Default 500. */
  batch?: number;
  /** Pool size and writes in flight. Default 5 (the destination's default poolMax). */
  concurrency?: number;
  log?: (line: string) => void;
}

/** Rows per second of each way of writing, for one engine. */
export interface SqlDestinationBenchResult {
  engine: "postgres" | "mysql";
  rows: number;
  destinationRowsPerSecond: number;
  rawSingleRowRowsPerSecond: number;
  rawMultiRowRowsPerSecond: number;
}

const mappings: SqlWrite["mappings"] = [
  { source: "id", column: "id", type: "integer" },
  { source: "device.name", column: "device", type: "string" },
  { source: "device.temp", column: "temp", type: "number" },
  { source: "at", column: "seen_at", type: "timestamp" },
];

function input(i: number) {
  return { id: i, device: { name: `pump-${i % 50}`, temp: 20 + (i % 100) / 10 }, at: new Date(1_796_533_200_000 + i * 1000).toISOString() };
}

/** Runs `count` tasks with `concurrency` in flight; returns rows/s. */
async function timed(count: number, concurrency: number, task: (i: number) => Promise<unknown>, offset: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        await task(offset + i);
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

interface EngineSetup {
  conn: SqlConnection;
  admin(sql: string, values?: unknown[]): Promise<void>;
  placeholder(n: number): string;
  drop(): Promise<void>;
}

async function postgresSetup(): Promise<EngineSetup> {
  const db = await createBenchDatabase(benchServerUrl());
  const url = new URL(db.url);
  const pool = new pg.Pool({ connectionString: db.url, max: 8 });
  return {
    conn: {
      engine: "postgres",
      host: url.hostname,
      port: Number(url.port || 5432),
      database: url.pathname.slice(1),
      user: decodeURIComponent(url.username || "postgres"),
    },
    admin: async (sql, values) => void (await pool.query(sql, values)),
    placeholder: (n) => `$${n}`,
    async drop() {
      await pool.end();
      await db.drop();
    },
  };
}

async function mysqlSetup(): Promise<EngineSetup> {
  const root = await createConnection({ host: "127.0.0.1", port: 3306, user: "root" }).catch(() =>
    createConnection({ socketPath: "/run/mysqld/mysqld.sock", user: "root" }),
  );
  const database = `nexus_bench_${randomBytes(5).toString("hex")}`;
  await root.query(`CREATE DATABASE \`${database}\``);
  await root.query(`USE \`${database}\``);
  return {
    conn: { engine: "mysql", host: "127.0.0.1", port: 3306, database, user: "root" },
    admin: async (sql, values) => void (await root.query(sql, values)),
    placeholder: () => "?",
    async drop() {
      await root.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await root.end();
    },
  };
}

async function benchEngine(
  setup: EngineSetup,
  o: Required<Omit<SqlDestinationBenchOptions, "log">>,
  log: (l: string) => void,
): Promise<SqlDestinationBenchResult> {
  const { conn } = setup;
  const ts = conn.engine === "postgres" ? "timestamptz" : "datetime(3)";
  await setup.admin(`CREATE TABLE bench_rows (id integer PRIMARY KEY, device varchar(64) NOT NULL, temp double precision, seen_at ${ts})`);
  const destination = createSqlDestination({ ...conn, poolMax: o.concurrency }, { logger: pino({ level: "silent" }) });
  // The raw baselines: the driver's own pool, same size, same server.
  const rawPool =
    conn.engine === "postgres"
      ? new pg.Pool({ host: conn.host, port: conn.port, database: conn.database, user: conn.user, max: o.concurrency })
      : undefined;
  const mysqlPool =
    conn.engine === "mysql"
      ? (await import("mysql2/promise")).createPool({
          host: conn.host,
          port: conn.port,
          database: conn.database,
          user: conn.user,
          connectionLimit: o.concurrency,
          timezone: "Z",
        })
      : undefined;
  const raw = async (sql: string, values: unknown[]) => {
    if (rawPool) await rawPool.query(sql, values);
    else await mysqlPool?.query(sql, values);
  };
  const row = (i: number) => {
    const x = input(i);
    return [x.id, x.device.name, x.device.temp, conn.engine === "postgres" ? x.at : new Date(x.at)];
  };
  const p = setup.placeholder;
  const write: SqlWrite = { operation: "insert", table: "bench_rows", mappings };
  try {
    // Warm-up: connections open, statements and JIT warm.
    await timed(200, o.concurrency, (i) => destination.execute(write, input(i)), 100_000_000);
    await timed(
      200,
      o.concurrency,
      (i) => raw(`INSERT INTO bench_rows (id, device, temp, seen_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, row(i)),
      200_000_000,
    );
    const single = (offset: number) =>
      timed(
        o.rows,
        o.concurrency,
        (i) => raw(`INSERT INTO bench_rows (id, device, temp, seen_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, row(i)),
        offset,
      );
    const viaDestination = (offset: number) => timed(o.rows, o.concurrency, (i) => destination.execute(write, input(i)), offset);
    const multi = async (offset: number) => {
      const started = performance.now();
      for (let b = 0; b * o.batch < o.rows; b++) {
        const values: unknown[] = [];
        const tuples: string[] = [];
        for (let k = 0; k < o.batch && b * o.batch + k < o.rows; k++) {
          const base = values.length;
          values.push(...row(offset + b * o.batch + k));
          tuples.push(`(${p(base + 1)}, ${p(base + 2)}, ${p(base + 3)}, ${p(base + 4)})`);
        }
        await raw(`INSERT INTO bench_rows (id, device, temp, seen_at) VALUES ${tuples.join(", ")}`, values);
      }
      return o.rows / ((performance.now() - started) / 1000);
    };
    // Two rounds, the order reversed in the second; the better of each side counts (a busy
    // machine slows whichever happens to run during a burst of other work).
    let destinationRps = 0;
    let singleRps = 0;
    let multiRps = 0;
    for (const round of [0, 1]) {
      const base = (round + 1) * 10_000_000;
      const steps = [
        async () => {
          destinationRps = Math.max(destinationRps, await viaDestination(base));
        },
        async () => {
          singleRps = Math.max(singleRps, await single(base + 1_000_000));
        },
        async () => {
          multiRps = Math.max(multiRps, await multi(base + 2_000_000));
        },
      ];
      for (const step of round === 0 ? steps : steps.reverse()) await step();
    }
    const result = {
      engine: conn.engine,
      rows: o.rows,
      destinationRowsPerSecond: Math.round(destinationRps),
      rawSingleRowRowsPerSecond: Math.round(singleRps),
      rawMultiRowRowsPerSecond: Math.round(multiRps),
    };
    log(
      `${conn.engine}: destination ${result.destinationRowsPerSecond} rows/s, raw single-row ${result.rawSingleRowRowsPerSecond} rows/s, raw ${o.batch}-row INSERT ${result.rawMultiRowRowsPerSecond} rows/s (${o.rows} rows, ${o.concurrency} in flight)`,
    );
    return result;
  } finally {
    await destination.close();
    await rawPool?.end();
    await mysqlPool?.end();
  }
}

/** Runs the benchmark on PostgreSQL and (when reachable) MariaDB; ratios from the same run. */
export async function benchSqlDestination(options: SqlDestinationBenchOptions = {}): Promise<BenchOutcome> {
  const o = { rows: options.rows ?? 5000, batch: options.batch ?? 500, concurrency: options.concurrency ?? 5 };
  const log = options.log ?? console.log;
  const results: SqlDestinationBenchResult[] = [];
  const skipped: string[] = [];
  for (const open of [postgresSetup, mysqlSetup]) {
    let setup: EngineSetup;
    try {
      setup = await open();
    } catch (err) {
      const why = `${open === postgresSetup ? "PostgreSQL" : "MariaDB"} unavailable: ${(err as Error).message}`;
      skipped.push(why);
      log(`skipped: ${why}`);
      continue;
    }
    try {
      results.push(await benchEngine(setup, o, log));
    } finally {
      await setup.drop();
    }
  }
  const ratios: BenchRatio[] = results.flatMap((r) => {
    const bench = `sql-destination (${r.engine === "postgres" ? "PostgreSQL" : "MariaDB"})`;
    return [
      {
        bench,
        name: "destination rows/s / raw single-row INSERT rows/s",
        value: r.destinationRowsPerSecond / r.rawSingleRowRowsPerSecond,
        unit: "%" as const,
      },
      {
        bench,
        name: `destination rows/s / raw ${o.batch}-row INSERT rows/s`,
        value: r.destinationRowsPerSecond / r.rawMultiRowRowsPerSecond,
        unit: "%" as const,
      },
    ];
  });
  return { result: { options: o, results, skipped }, ratios };
}
