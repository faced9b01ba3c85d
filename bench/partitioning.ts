import pg from "pg";
import { benchServerUrl, createBenchDatabase, type Percentiles, percentiles } from "./rag-setup.js";
import type { BenchOutcome } from "./results.js";

/**
 * `npm run bench partitioning` (issue 18, R1.2): append and read-by-stream on an event table
 * shaped like `platform.events`, unpartitioned (the baseline) against the same table
 * hash-partitioned by stream id (16 partitions), both filled with the same N events
 * (NEXUS_BENCH_PARTITION_EVENTS, default 1,000,000; the issue asks for 10 M — see
 * docs/event-sourcing.md for what was measured and the extrapolation) over N/100 streams.
 */

const SHAPE = `
  position bigserial,
  event_id uuid NOT NULL DEFAULT gen_random_uuid(),
  stream_id text NOT NULL,
  version integer NOT NULL,
  type text NOT NULL,
  topic text NOT NULL,
  payload jsonb NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  occurred_at timestamptz NOT NULL DEFAULT now()`;

interface Layout {
  name: "plain" | "hash16";
  ddl: string;
}

const LAYOUTS: Layout[] = [
  {
    name: "plain",
    ddl: `CREATE TABLE ev_plain (${SHAPE}, PRIMARY KEY (position), UNIQUE (event_id), UNIQUE (stream_id, version));`,
  },
  {
    name: "hash16",
    // A partitioned table's unique keys must contain the partition key: (stream_id, version)
    // does; the global position and event id uniqueness cannot be enforced across partitions
    // (both keep a plain index, so the two layouts maintain the same three indexes).
    ddl: `CREATE TABLE ev_hash16 (${SHAPE}, PRIMARY KEY (stream_id, version)) PARTITION BY HASH (stream_id);
      ${Array.from({ length: 16 }, (_, i) => `CREATE TABLE ev_hash16_${i} PARTITION OF ev_hash16 FOR VALUES WITH (MODULUS 16, REMAINDER ${i});`).join("\n")}
      CREATE INDEX ON ev_hash16 (position);
      CREATE INDEX ON ev_hash16 (event_id);`,
  },
];

export interface PartitioningResult {
  events: number;
  streams: number;
  layouts: Record<
    string,
    { fillSeconds: number; append: Percentiles; readStream: Percentiles; indexBytes: number; largestIndexBytes: number }
  >;
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

export async function benchPartitioning(options: { log: (line: string) => void; events?: number }): Promise<PartitioningResult> {
  const events = options.events ?? Number(process.env.NEXUS_BENCH_PARTITION_EVENTS ?? 1_000_000);
  const perStream = 100;
  const streams = Math.max(1, Math.floor(events / perStream));
  const scratch = await createBenchDatabase(benchServerUrl());
  const client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
  const result: PartitioningResult = { events, streams, layouts: {} };
  try {
    for (const layout of LAYOUTS) {
      const table = `ev_${layout.name}`;
      await client.query(layout.ddl);
      const fillStarted = performance.now();
      const batch = 100_000;
      for (let from = 0; from < events; from += batch) {
        await client.query(
          `INSERT INTO ${table} (stream_id, version, type, topic, payload)
           SELECT 'stream-' || ((g / ${perStream})::int), (g % ${perStream}) + 1, 'nexus.bench.v1.Happened', 'bench.happened',
                  jsonb_build_object('n', g, 'note', repeat('x', 80))
             FROM generate_series($1::int, $2::int) g`,
          [from, Math.min(events, from + batch) - 1],
        );
      }
      await client.query(`ANALYZE ${table}`);
      const fillSeconds = (performance.now() - fillStarted) / 1000;
      // Append: the next version of a random existing stream, one event per transaction.
      const next = new Map<number, number>();
      const append = await timed(2000, async (i) => {
        const s = (i * 7919) % streams;
        const v = (next.get(s) ?? perStream) + 1;
        next.set(s, v);
        await client.query(
          `INSERT INTO ${table} (stream_id, version, type, topic, payload) VALUES ($1, $2, 'nexus.bench.v1.Happened', 'bench.happened', '{"n":0}'::jsonb)`,
          [`stream-${s}`, v],
        );
      });
      const readStream = await timed(2000, (i) =>
        client.query(`SELECT position, version, payload FROM ${table} WHERE stream_id = $1 ORDER BY version`, [
          `stream-${(i * 104729) % streams}`,
        ]),
      );
      const { rows } = await client.query<{ total: string; largest: string }>(
        `SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0)::text AS total, coalesce(max(pg_relation_size(i.indexrelid)), 0)::text AS largest
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname LIKE $1`,
        [`${table}%`],
      );
      const r = {
        fillSeconds,
        append,
        readStream,
        indexBytes: Number(rows[0]?.total ?? 0),
        largestIndexBytes: Number(rows[0]?.largest ?? 0),
      };
      result.layouts[layout.name] = r;
      options.log(
        `${layout.name}: ${events} events / ${streams} streams filled in ${fillSeconds.toFixed(1)} s; append p50 ${append.p50.toFixed(2)} p99 ${append.p99.toFixed(2)} ms; ` +
          `read stream p50 ${readStream.p50.toFixed(2)} p99 ${readStream.p99.toFixed(2)} ms; indexes ${(r.indexBytes / 2 ** 20).toFixed(0)} MiB (largest ${(r.largestIndexBytes / 2 ** 20).toFixed(0)} MiB)`,
      );
      await client.query(`DROP TABLE ${table}`);
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
      { bench, name: "largest index, hash-16 / unpartitioned", value: hashed.largestIndexBytes / plain.largestIndexBytes, unit: "×" },
    ],
  };
}
