import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import pg from "pg";
import { benchServerUrl, createBenchDatabase, type Percentiles, percentiles } from "./rag-setup.js";
import type { BenchOutcome } from "./results.js";

/**
 * `npm run bench partitioning` (issue 18, R1.2): the event store's hot paths on a table shaped
 * like `platform.events` before 0006_events_partitioned (unpartitioned, the baseline: primary
 * key position, unique event_id and (stream_id, version), the tenant, saga and type/actor
 * indexes) against the layout 0006 builds (hash-partitioned by stream id into 16, unique
 * (stream_id, version) per partition, the other indexes per partition, event ids unique in a
 * separate `event_ids` table written in the append's statement), both filled with the same N
 * events (NEXUS_BENCH_PARTITION_EVENTS, default 1,000,000) over N/100 streams, 20 tenants.
 *
 * Timed per layout: an append as appendToStream does it (advisory lock, version check and
 * insert in one statement, one transaction), a read of one stream, a read of one event by id
 * (readEvent) and a page of 500 events by position (readAll: the relay and the local bus).
 */

const SHAPE = `
  position bigint NOT NULL DEFAULT nextval('ev_position_seq'),
  event_id uuid NOT NULL DEFAULT gen_random_uuid(),
  stream_id text NOT NULL,
  version integer NOT NULL,
  type text NOT NULL,
  topic text NOT NULL,
  payload jsonb NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  occurred_at timestamptz NOT NULL DEFAULT now()`;

/** The secondary indexes both layouts have (0003, 0004, 0005 of the platform migrations). */
function secondaryIndexes(table: string): string {
  return `CREATE INDEX ON ${table} ((metadata->>'tenant_id'), position);
      CREATE INDEX ON ${table} (position) WHERE type = 'nexus.sagas.v1.SagaStarted';
      CREATE INDEX ON ${table} (type, (metadata->>'tenant_id'), (metadata->>'actor'));`;
}

interface Layout {
  name: "plain" | "hash16";
  /** Tables, before the fill. */
  ddl: string;
  /** Indexes, after the fill (as the migration builds them after its copy). */
  indexes: string;
  /** Whether event ids live in `ev_<name>_ids` (written in the append's statement). */
  eventIds: boolean;
}

const LAYOUTS: Layout[] = [
  {
    name: "plain",
    ddl: `CREATE SEQUENCE ev_position_seq; CREATE TABLE ev_plain (${SHAPE});`,
    indexes: `ALTER TABLE ev_plain ADD PRIMARY KEY (position), ADD UNIQUE (event_id), ADD UNIQUE (stream_id, version);
      ${secondaryIndexes("ev_plain")}`,
    eventIds: false,
  },
  {
    name: "hash16",
    ddl: `CREATE SEQUENCE ev_position_seq; CREATE TABLE ev_hash16 (${SHAPE}) PARTITION BY HASH (stream_id);
      ${Array.from({ length: 16 }, (_, i) => `CREATE TABLE ev_hash16_${i} PARTITION OF ev_hash16 FOR VALUES WITH (MODULUS 16, REMAINDER ${i});`).join("\n")}
      CREATE TABLE ev_hash16_ids (event_id uuid NOT NULL, stream_id text NOT NULL, position bigint NOT NULL);`,
    indexes: `ALTER TABLE ev_hash16 ADD UNIQUE (stream_id, version);
      CREATE INDEX ON ev_hash16 (position);
      ${secondaryIndexes("ev_hash16")}
      ALTER TABLE ev_hash16_ids ADD PRIMARY KEY (event_id);`,
    eventIds: true,
  },
];

/** One layout's measurements. */
export interface LayoutResult {
  /** Insert of the N events (and their ids), index build and ANALYZE. */
  fillSeconds: number;
  append: Percentiles;
  readStream: Percentiles;
  readEvent: Percentiles;
  readPage: Percentiles;
  /** All indexes of the layout (event_ids' primary key included), and the largest one. */
  indexBytes: number;
  largestIndexBytes: number;
}

export interface PartitioningResult {
  events: number;
  streams: number;
  /** 1-minute load average when the run started (the machine is shared). */
  loadAverage: number;
  layouts: Record<string, LayoutResult>;
}

const SAMPLES = 2000;

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

/** The append of appendToStream (event-store.ts) on a layout: one event, the next version of the stream. */
function appendSql(layout: Layout): string {
  const table = `ev_${layout.name}`;
  const insert = `INSERT INTO ${table} (event_id, stream_id, version, type, topic, payload, metadata)
         SELECT $3::uuid, $1, at.v + 1, 'nexus.bench.v1.Happened', 'bench.happened', '{"n":0}'::jsonb, $4::jsonb FROM at
         RETURNING position, event_id, stream_id`;
  const head = `WITH current AS (SELECT coalesce(max(version), 0)::int AS v FROM ${table} WHERE stream_id = $1),
       at AS (SELECT v FROM current WHERE v = $2::int)`;
  return layout.eventIds
    ? `${head}, appended AS (${insert}), ids AS (INSERT INTO ${table}_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM appended)
       SELECT position FROM appended`
    : `${head} ${insert}`;
}

/** One event by id as readEvent reads it: partitioned, its stream and position from the ids table, then the row in its one partition. */
async function readEventById(client: pg.Client, layout: Layout, eventId: string): Promise<number> {
  const table = `ev_${layout.name}`;
  if (!layout.eventIds) return (await client.query(`SELECT * FROM ${table} WHERE event_id = $1`, [eventId])).rowCount ?? 0;
  const { rows } = await client.query<{ stream_id: string; position: string }>(
    `SELECT stream_id, position FROM ${table}_ids WHERE event_id = $1`,
    [eventId],
  );
  if (rows[0] === undefined) return 0;
  return (
    (await client.query(`SELECT * FROM ${table} WHERE stream_id = $1 AND position = $2`, [rows[0].stream_id, rows[0].position])).rowCount ??
    0
  );
}

export async function benchPartitioning(options: { log: (line: string) => void; events?: number }): Promise<PartitioningResult> {
  const events = options.events ?? Number(process.env.NEXUS_BENCH_PARTITION_EVENTS ?? 1_000_000);
  const perStream = 100;
  const streams = Math.max(1, Math.floor(events / perStream));
  const scratch = await createBenchDatabase(benchServerUrl());
  const client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
  const result: PartitioningResult = { events, streams, loadAverage: loadavg()[0] ?? 0, layouts: {} };
  options.log(`load average at start ${result.loadAverage.toFixed(2)}`);
  try {
    for (const layout of LAYOUTS) {
      const table = `ev_${layout.name}`;
      await client.query(layout.ddl);
      const fillStarted = performance.now();
      const batch = 100_000;
      for (let from = 0; from < events; from += batch) {
        await client.query(
          `INSERT INTO ${table} (stream_id, version, type, topic, payload, metadata)
           SELECT 'stream-' || ((g / ${perStream})::int), (g % ${perStream}) + 1,
                  CASE WHEN g % ${perStream} = 0 THEN 'nexus.sagas.v1.SagaStarted' ELSE 'nexus.bench.v1.Happened' END, 'bench.happened',
                  jsonb_build_object('n', g, 'note', repeat('x', 80)),
                  jsonb_build_object('tenant_id', 'tenant-' || ((g / ${perStream})::int % 20), 'actor', 'key-' || (g % 1000))
             FROM generate_series($1::int, $2::int) g`,
          [from, Math.min(events, from + batch) - 1],
        );
      }
      if (layout.eventIds)
        await client.query(`INSERT INTO ${table}_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM ${table}`);
      await client.query(layout.indexes);
      await client.query(`ANALYZE ${table}`);
      if (layout.eventIds) await client.query(`ANALYZE ${table}_ids`);
      const fillSeconds = (performance.now() - fillStarted) / 1000;
      options.log(`${layout.name}: filled in ${fillSeconds.toFixed(1)} s`);

      // Append: the next version of a random existing stream, one event per transaction, under
      // the global append lock as appendToStream takes it.
      const next = new Map<number, number>();
      const append = await timed(SAMPLES, async (i) => {
        const s = (i * 7919) % streams;
        const v = next.get(s) ?? perStream;
        next.set(s, v + 1);
        await client.query("BEGIN");
        await client.query("SELECT pg_advisory_xact_lock(4242)");
        const { rowCount } = await client.query(appendSql(layout), [
          `stream-${s}`,
          v,
          randomUUID(),
          JSON.stringify({ tenant_id: `tenant-${s % 20}`, actor: "key-1" }),
        ]);
        await client.query("COMMIT");
        if (rowCount !== 1) throw new Error(`append to stream-${s} at ${v} inserted ${rowCount} rows`);
      });
      const readStream = await timed(SAMPLES, (i) =>
        client.query(`SELECT position, version, payload FROM ${table} WHERE stream_id = $1 ORDER BY version`, [
          `stream-${(i * 104729) % streams}`,
        ]),
      );
      const positions = Array.from({ length: SAMPLES }, (_, i) => 1 + ((i * 1_000_003) % events));
      const { rows: idRows } = await client.query<{ event_id: string }>(
        `SELECT event_id::text FROM ${table} WHERE position = ANY($1::bigint[])`,
        [positions],
      );
      const ids = idRows.map((r) => r.event_id);
      const readEvent = await timed(SAMPLES, async (i) => {
        if ((await readEventById(client, layout, ids[i % ids.length]!)) !== 1) throw new Error("event not found by id");
      });
      const readPage = await timed(SAMPLES, (i) =>
        client.query(`SELECT * FROM ${table} WHERE position > $1 ORDER BY position LIMIT 500`, [(i * 2_000_003) % events]),
      );
      const { rows } = await client.query<{ total: string; largest: string }>(
        `SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0)::text AS total, coalesce(max(pg_relation_size(i.indexrelid)), 0)::text AS largest
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname LIKE $1`,
        [`${table}%`],
      );
      const r: LayoutResult = {
        fillSeconds,
        append,
        readStream,
        readEvent,
        readPage,
        indexBytes: Number(rows[0]?.total ?? 0),
        largestIndexBytes: Number(rows[0]?.largest ?? 0),
      };
      result.layouts[layout.name] = r;
      const pp = (p: Percentiles) => `p50 ${p.p50.toFixed(2)} p99 ${p.p99.toFixed(2)} ms`;
      options.log(
        `${layout.name}: ${events} events / ${streams} streams filled in ${fillSeconds.toFixed(1)} s; append ${pp(append)}; ` +
          `read stream ${pp(readStream)}; read event by id ${pp(readEvent)}; page of 500 by position ${pp(readPage)}; ` +
          `indexes ${(r.indexBytes / 2 ** 20).toFixed(0)} MiB (largest ${(r.largestIndexBytes / 2 ** 20).toFixed(0)} MiB)`,
      );
      await client.query(`DROP TABLE ${table}${layout.eventIds ? `, ${table}_ids` : ""}; DROP SEQUENCE ev_position_seq`);
    }
  } finally {
    await client.end();
    await scratch.drop();
  }
  return result;
}

export async function benchPartitioningOutcome(log: (line: string) => void): Promise<BenchOutcome> {
  const r = await benchPartitioning({ log });
  const plain = r.layouts.plain;
  const hashed = r.layouts.hash16;
  if (!plain || !hashed) return { result: r, ratios: [] };
  const bench = `partitioning (PostgreSQL, ${r.events} events)`;
  return {
    result: r,
    ratios: [
      { bench, name: "append p50, hash-16 / unpartitioned", value: hashed.append.p50 / plain.append.p50, unit: "×" },
      { bench, name: "append p99, hash-16 / unpartitioned", value: hashed.append.p99 / plain.append.p99, unit: "×" },
      { bench, name: "read stream p50, hash-16 / unpartitioned", value: hashed.readStream.p50 / plain.readStream.p50, unit: "×" },
      { bench, name: "read stream p99, hash-16 / unpartitioned", value: hashed.readStream.p99 / plain.readStream.p99, unit: "×" },
      { bench, name: "read event by id p50, hash-16 / unpartitioned", value: hashed.readEvent.p50 / plain.readEvent.p50, unit: "×" },
      { bench, name: "page of 500 by position p50, hash-16 / unpartitioned", value: hashed.readPage.p50 / plain.readPage.p50, unit: "×" },
      { bench, name: "largest index, hash-16 / unpartitioned", value: hashed.largestIndexBytes / plain.largestIndexBytes, unit: "×" },
    ],
  };
}
