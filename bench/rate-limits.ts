import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import { migratePlatform } from "../services/kernel/events/platform-migrations.js";
import { createPostgresBucketStore } from "../services/kernel/limits/bucket-store.js";
import { limitsMigrations } from "../services/kernel/limits/migrations.js";
import { tokensAt } from "../services/kernel/limits/token-bucket.js";
import { migrateSchemas } from "../services/kernel/service/index.js";
import { createBenchDatabase } from "./rag-setup.js";

/** takes/s of each store at each concurrency, and the ratio PostgreSQL / NATS KV. */
export interface RateLimitsBenchResult {
  runs: { concurrency: number; postgresPerSecond: number; natsKvPerSecond: number; ratio: number }[];
}

/**
 * Where shared rate-limit buckets live (issue 11): the PostgreSQL store Nexus uses
 * (`platform.take_tokens`, one statement, async commit) against the same token bucket on NATS
 * KV (get, compute, compare-and-swap, retried on conflict), both on this machine's servers,
 * sequential and with 8 callers contending for one bucket. Needs NEXUS_BENCH_DATABASE_URL (or
 * postgres://postgres@127.0.0.1:5432/postgres) and NATS at NEXUS_BENCH_NATS_URL (or :4222).
 */
export async function benchRateLimits(options: { calls?: number; log?: (l: string) => void } = {}): Promise<RateLimitsBenchResult> {
  const calls = options.calls ?? 2000;
  const log = options.log ?? console.log;
  const database = await createBenchDatabase(process.env.NEXUS_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
  const db = await createPgDatabase({ url: database.url, poolSize: 8 });
  const nc = await connect({ servers: process.env.NEXUS_BENCH_NATS_URL ?? "127.0.0.1:4222" });
  const kv = await new Kvm(nc).create(`bench_rate_${process.pid}`, { history: 1 });
  try {
    await migratePlatform(db);
    await migrateSchemas(db, [limitsMigrations]);
    const store = createPostgresBucketStore(db);
    const limit = { ratePerSecond: 1e6, burst: 1e6 };
    const pgTake = (name: string) => store.take([{ name, limit }]);
    const kvTake = async (name: string) => {
      for (;;) {
        const e = await kv.get(name);
        const now = Date.now();
        const s = e?.json<{ tokens: number; atMs: number }>();
        const tokens = tokensAt(s, limit, now) - 1;
        try {
          if (e) await kv.update(name, JSON.stringify({ tokens, atMs: now }), e.revision);
          else await kv.create(name, JSON.stringify({ tokens, atMs: now }));
          return;
        } catch {
          // another caller won the race: read again
        }
      }
    };
    const measure = async (label: string, take: (name: string) => Promise<unknown>, concurrency: number) => {
      const times: number[] = [];
      const per = Math.ceil(calls / concurrency);
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = 0; i < per; i++) {
            const t = performance.now();
            await take(`bucket-${label.replace(/\W/g, "")}-${concurrency}`);
            times.push(performance.now() - t);
          }
        }),
      );
      const secs = (performance.now() - started) / 1000;
      times.sort((a, b) => a - b);
      const p = (q: number) => times[Math.min(times.length - 1, Math.floor(times.length * q))]!.toFixed(2);
      log(
        `${label.padEnd(28)} concurrency ${concurrency}: ${(times.length / secs).toFixed(0).padStart(6)} takes/s  p50 ${p(0.5)} ms  p99 ${p(0.99)} ms`,
      );
      return times.length / secs;
    };
    const runs: RateLimitsBenchResult["runs"] = [];
    for (const c of [1, 8]) {
      const pg = await measure("postgres take_tokens", pgTake, c);
      const nats = await measure("nats kv get+cas", kvTake, c);
      log(`  ratio postgres / nats kv at concurrency ${c}: ${(pg / nats).toFixed(2)}`);
      runs.push({ concurrency: c, postgresPerSecond: pg, natsKvPerSecond: nats, ratio: pg / nats });
    }
    return { runs };
  } finally {
    await kv.destroy().catch(() => undefined);
    await nc.close();
    await db.close();
    await database.drop();
  }
}
