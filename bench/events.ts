import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { recordFacts } from "../services/kernel/commands/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import { createPgliteDatabase } from "../services/kernel/db/pglite-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import {
  createLocalEventBus,
  createNatsEventBus,
  createOutboxRelay,
  type EventBus,
  migratePlatform,
  readAll,
} from "../services/kernel/events/index.js";
import { eventHeaders } from "../services/kernel/events/nats-message.js";
import { connectNats, ensureStream } from "../services/kernel/events/nats-streams.js";
import { subjectOf } from "../services/kernel/events/topics.js";
import { benchServerUrl, createBenchDatabase, type Percentiles, percentiles } from "./rag-setup.js";
import type { BenchOutcome, BenchRatio } from "./results.js";

/**
 * Events benchmark (issue 11), on this machine's PostgreSQL and NATS (and PGlite):
 *
 * 1. Event commit → projection. A writer records one fact in its own transaction (the kernel's
 *    `recordFacts`, as services do); a durable consumer's handler writes it into a projection
 *    table and, in the same transaction, sends a NOTIFY — which PostgreSQL delivers only on
 *    commit, so its arrival is the moment the projection is visible. Timed from the writer's
 *    COMMIT returning to that NOTIFY, p50/p95/p99, on: the local bus over PGlite (`nexus dev`),
 *    the local bus over PostgreSQL, and the NATS bus (outbox relay → JetStream → pull consumer)
 *    over PostgreSQL — every bus with its production defaults. Ratio in the same run: the NATS
 *    bus against the local bus on the same PostgreSQL, which is what the relay → JetStream
 *    hop costs in latency. (A bare NOTIFY is no floor to divide by: it reaches the listener
 *    before the writer has even read its COMMIT reply.)
 * 2. Relay rate. `events` facts are appended while no relay runs, then a relay starts and is
 *    timed until its checkpoint passes the last one: events/s published to JetStream,
 *    acknowledged and checkpointed. Baseline in the same run: the same messages (subjects,
 *    bodies, headers, Nats-Msg-Id) published straight to JetStream by one client, in the
 *    relay's batch size (200 pipelined publishes, then wait for their acks) — what the relay
 *    would reach if reading the outbox and moving its checkpoint cost nothing. Two rounds,
 *    alternating which goes first, each into fresh streams; the better of each side counts.
 *
 * Every stream, subject prefix and database is the benchmark's own and removed afterwards;
 * the shared servers are never reconfigured.
 */
export interface EventsBenchOptions {
  /** Measured commit → projection samples per bus. Default 300. */
  samples?: number;
  /** Unmeasured warm-up samples per bus. Default 20. */
  warmup?: number;
  /** Events per relay measurement. Default 10 000. */
  relayEvents?: number;
  natsUrl?: string;
  databaseUrl?: string;
  log?: (line: string) => void;
}

/** Commit → projection on one bus. */
export interface ProjectionLatency {
  bus: string;
  /** Writer's COMMIT → projection committed (its NOTIFY heard). */
  projection: Percentiles;
  /** How long the writer's append transaction took (BEGIN … COMMIT). */
  append: Percentiles;
  /** NATS bus: writer's COMMIT → the message seen on the subject (the relay's share). */
  relayed?: Percentiles;
  /** Other writers appending to their own streams throughout (0: the writer is alone). */
  writers: number;
}

/** What {@link benchEvents} measured. */
export interface EventsBenchResult {
  projections: ProjectionLatency[];
  relay?: {
    events: number;
    batchSize: number;
    /** events/s of each round. */
    relayRuns: number[];
    rawRuns: number[];
    relayPerSecond: number;
    rawPerSecond: number;
    ratio: number;
  };
  /** Concurrent appends with the global append lock against a per-stream lock only. */
  contention?: AppendContention;
  skipped: string[];
}

/** Append transactions of {@link CONCURRENT_WRITERS} writers, each to its own streams. */
export interface AppendContention {
  writers: number;
  appendsPerWriter: number;
  /** appendToStream as it is: the global lock, held through COMMIT. */
  globalLock: { transaction: Percentiles; perSecond: number };
  /** The same rows written under a per-stream lock only (what the alternatives would keep). */
  streamLock: { transaction: Percentiles; perSecond: number };
}

const TOPIC = "bench.pinged";
const TYPE = "nexus.bench.v1.Pinged";
const CHANNEL = "nexus_bench_projection";
/** Other writers in the "concurrent writers" measurement. */
const CONCURRENT_WRITERS = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** When each id was first seen: `seen(id)` records it, `next(id)` waits for it (30 s at most). */
function arrivals(): { seen(id: string): void; next(id: string): Promise<number> } {
  const waiting = new Map<string, (at: number) => void>();
  const early = new Map<string, number>();
  return {
    seen(id) {
      const at = performance.now();
      const resolve = waiting.get(id);
      if (resolve) {
        waiting.delete(id);
        resolve(at);
      } else early.set(id, at);
    },
    next(id) {
      const at = early.get(id);
      if (at !== undefined) {
        early.delete(id);
        return Promise.resolve(at);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`no notification for ${id} within 30 s`));
        }, 30_000);
        waiting.set(id, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
  };
}

/** A listener that resolves waiters by payload (event id). */
async function notifications(db: Database, channel: string): Promise<{ next(id: string): Promise<number>; stop(): Promise<void> }> {
  const heard = arrivals();
  const stop = await db.listen(channel, (payload) => heard.seen(payload));
  return { next: (id) => heard.next(id), stop };
}

/** Optional parts of a {@link projectionLatency} measurement. */
interface LatencyOptions {
  /** Background writers appending facts to their own streams (another topic) all along. */
  writers?: number;
  /** When the message of an event id was first seen on the bus (NATS: a core subscription). */
  seenOnBus?: (eventId: string) => Promise<number>;
}

/** Writers appending one fact per transaction to their own streams until stopped. */
function backgroundWriters(db: Database, n: number): { stop(): Promise<void> } {
  let running = true;
  const loops = Array.from({ length: n }, async (_, k) => {
    for (let i = 0; running; i++) {
      await db.transaction((tx) =>
        recordFacts(tx, `bench-noise-${k}-${i}`, [{ type: "nexus.bench.v1.Noise", topic: "bench.noise", payload: { i } }]),
      );
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Measures commit → projection on `bus` (already started) over `db`. */
async function projectionLatency(
  label: string,
  db: Database,
  bus: EventBus,
  samples: number,
  warmup: number,
  options: LatencyOptions = {},
): Promise<ProjectionLatency> {
  await db.exec(
    `CREATE SCHEMA IF NOT EXISTS bench_proj; CREATE TABLE IF NOT EXISTS bench_proj.pings (event_id uuid PRIMARY KEY, seen_at timestamptz NOT NULL DEFAULT now())`,
  );
  const heard = await notifications(db, CHANNEL);
  const sub = await bus.subscribe({
    name: `bench-projection-${randomUUID().slice(0, 8)}`,
    subject: TOPIC,
    schema: "bench_proj",
    deliverFrom: "new",
    handler: async (event, tx) => {
      await tx.query("INSERT INTO bench_proj.pings (event_id) VALUES ($1)", [event.eventId]);
      await tx.query("SELECT pg_notify($1, $2)", [CHANNEL, event.eventId]);
    },
  });
  const noise = backgroundWriters(db, options.writers ?? 0);
  try {
    const projection: number[] = [];
    const append: number[] = [];
    const relayed: number[] = [];
    for (let i = 0; i < warmup + samples; i++) {
      // A random pause so samples do not fall into step with any poll timer.
      await sleep(2 + Math.random() * 8);
      const eventId = randomUUID();
      const t0 = performance.now();
      await db.transaction((tx) => recordFacts(tx, `bench-ping-${i}`, [{ type: TYPE, topic: TOPIC, payload: { i }, eventId }]));
      const committed = performance.now();
      const onBus = options.seenOnBus?.(eventId);
      const seenAt = await heard.next(eventId);
      if (i >= warmup) {
        projection.push(seenAt - committed);
        append.push(committed - t0);
        if (onBus) relayed.push((await onBus) - committed);
      }
    }
    return {
      bus: label,
      projection: percentiles(projection),
      append: percentiles(append),
      ...(relayed.length > 0 ? { relayed: percentiles(relayed) } : {}),
      writers: options.writers ?? 0,
    };
  } finally {
    await noise.stop();
    await sub.stop();
    await heard.stop();
  }
}

/**
 * `writers` concurrent writers, each appending `perWriter` single-event transactions to its own
 * streams: through `recordFacts` (the global append lock) or with the same INSERT under a
 * per-stream advisory lock only. Same database, same rows, alternating order over two rounds.
 */
async function appendContention(db: Database, writers: number, perWriter: number): Promise<AppendContention> {
  await migratePlatform(db);
  const run = async (mode: "global" | "stream", round: number) => {
    const durations: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          const stream = `bench-contention-${mode}-${round}-${w}-${i}`;
          const t0 = performance.now();
          if (mode === "global") {
            await db.transaction((tx) => recordFacts(tx, stream, [{ type: "nexus.bench.v1.Noise", topic: "bench.noise", payload: { i } }]));
          } else {
            await db.transaction(async (tx) => {
              // appendToStream's statements, with the stream's lock in place of the global one.
              await tx.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [stream]);
              await tx.query(
                `WITH at AS (SELECT coalesce(max(version), 0)::int AS v FROM platform.events WHERE stream_id = $1)
                 INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata)
                 SELECT $2::uuid, $1, at.v + 1, 'nexus.bench.v1.Noise', 'bench.noise', $3::jsonb, '{}'::jsonb FROM at
                 RETURNING position`,
                [stream, randomUUID(), JSON.stringify({ i })],
              );
            });
          }
          durations.push(performance.now() - t0);
        }
      }),
    );
    return { durations, perSecond: (writers * perWriter) / ((performance.now() - started) / 1000) };
  };
  const best = { global: [] as number[], stream: [] as number[] };
  const rates = { global: 0, stream: 0 };
  for (const [round, order] of [
    [0, ["global", "stream"]],
    [1, ["stream", "global"]],
  ] as const) {
    for (const mode of order) {
      const r = await run(mode, round);
      best[mode].push(...r.durations);
      rates[mode] = Math.max(rates[mode], r.perSecond);
    }
  }
  return {
    writers,
    appendsPerWriter: perWriter,
    globalLock: { transaction: percentiles(best.global), perSecond: rates.global },
    streamLock: { transaction: percentiles(best.stream), perSecond: rates.stream },
  };
}

async function withPgDatabase<T>(serverUrl: string, fn: (db: Database) => Promise<T>): Promise<T> {
  const fresh = await createBenchDatabase(serverUrl);
  const db = await createPgDatabase({ url: fresh.url, poolSize: 10 });
  try {
    return await fn(db);
  } finally {
    await db.close();
    await fresh.drop();
  }
}

/** Deletes streams the benchmark created (by name prefix). */
async function dropStreams(nc: NatsConnection, names: readonly string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const name of names) await jsm.streams.delete(name).catch(() => undefined);
}

/** Relay vs raw JetStream publish; see the module comment. */
async function relayRate(
  db: Database,
  nc: NatsConnection,
  events: number,
  log: (l: string) => void,
): Promise<NonNullable<EventsBenchResult["relay"]>> {
  const batchSize = 200;
  const token = randomUUID().replace(/-/g, "").slice(0, 10);
  const streams: string[] = [];
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc, { timeout: 10_000 });
  await migratePlatform(db);
  // The outbox: `events` facts, 500 to a transaction (not timed).
  const first = (await db.query<{ p: bigint }>("SELECT coalesce(max(position), 0) AS p FROM platform.events")).rows[0]!.p;
  for (let i = 0; i < events; i += 500) {
    const n = Math.min(500, events - i);
    await db.transaction((tx) =>
      recordFacts(
        tx,
        `bench-relay-${i}`,
        Array.from({ length: n }, (_, j) => ({ type: TYPE, topic: TOPIC, payload: { i: i + j, note: "relay benchmark event" } })),
        { metadata: { tenantId: "bench", actor: "bench" } },
      ),
    );
  }
  const recorded = await readAll(db, first, events);
  const last = recorded[recorded.length - 1]!.position;
  const stream = async (round: number, kind: string): Promise<string> => {
    const prefix = `b${token}${kind}${round}`;
    const name = `BENCH_${token.toUpperCase()}_${kind.toUpperCase()}_${round}`;
    await ensureStream(jsm, { name, subjects: [`${prefix}.>`] });
    streams.push(name);
    return prefix;
  };
  const raw = async (round: number): Promise<number> => {
    const prefix = await stream(round, "raw");
    const start = performance.now();
    for (let i = 0; i < recorded.length; i += batchSize) {
      const batch = recorded.slice(i, i + batchSize);
      await Promise.all(
        batch.map((e) => js.publish(subjectOf(prefix, e.topic), JSON.stringify(e.payload), { msgID: e.eventId, headers: eventHeaders(e) })),
      );
    }
    return recorded.length / ((performance.now() - start) / 1000);
  };
  const relay = async (round: number): Promise<number> => {
    const prefix = await stream(round, "relay");
    const r = createOutboxRelay({ db, nats: nc, name: `bench-${token}-${round}`, subjectPrefix: prefix, batchSize });
    // The relay starts at position 0: place its checkpoint just before this run's events.
    await db.query(
      "INSERT INTO platform.outbox_checkpoint (relay, position, updated_at) VALUES ($1, $2, now()) ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position",
      [`bench-${token}-${round}`, first],
    );
    const start = performance.now();
    await r.start();
    while (r.status().checkpoint < last) {
      if (r.status().failures > 0) throw new Error(`relay failed: ${r.status().lastError}`);
      await sleep(2);
    }
    const perSecond = recorded.length / ((performance.now() - start) / 1000);
    await r.stop();
    return perSecond;
  };
  try {
    const rawRuns = [await raw(1)];
    const relayRuns = [await relay(1)];
    relayRuns.push(await relay(2));
    rawRuns.push(await raw(2));
    const rawPerSecond = Math.max(...rawRuns);
    const relayPerSecond = Math.max(...relayRuns);
    log(`relay: ${events} events, batch ${batchSize}, PostgreSQL outbox → NATS JetStream (file storage)`);
    log(`  raw JetStream publish     ${rawPerSecond.toFixed(0)} events/s  (rounds ${rawRuns.map((r) => r.toFixed(0)).join(" / ")})`);
    log(
      `  outbox relay              ${relayPerSecond.toFixed(0)} events/s  (rounds ${relayRuns.map((r) => r.toFixed(0)).join(" / ")}; read outbox, publish, await acks, checkpoint)`,
    );
    log(`  ratio relay / raw         ${((relayPerSecond / rawPerSecond) * 100).toFixed(0)}%`);
    return { events, batchSize, relayRuns, rawRuns, relayPerSecond, rawPerSecond, ratio: relayPerSecond / rawPerSecond };
  } finally {
    await dropStreams(nc, streams);
  }
}

/** Runs the events benchmark; see the module comment. */
export async function benchEvents(options: EventsBenchOptions = {}): Promise<EventsBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const samples = options.samples ?? 300;
  const warmup = options.warmup ?? 20;
  const serverUrl = options.databaseUrl ?? benchServerUrl();
  const natsUrl = options.natsUrl ?? (process.env.NEXUS_BENCH_NATS_URL || "nats://127.0.0.1:4222");
  const projections: ProjectionLatency[] = [];
  const skipped: string[] = [];
  const report = (p: ProjectionLatency) => {
    const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(9);
    log(`  ${p.bus}`);
    log(`    commit → projection     p50 ${ms(p.projection.p50)}   p95 ${ms(p.projection.p95)}   p99 ${ms(p.projection.p99)}`);
    log(`    append transaction      p50 ${ms(p.append.p50)}   p95 ${ms(p.append.p95)}   p99 ${ms(p.append.p99)}`);
    if (p.relayed) log(`    commit → on JetStream   p50 ${ms(p.relayed.p50)}   p95 ${ms(p.relayed.p95)}   p99 ${ms(p.relayed.p99)}`);
  };
  log(`events: commit → projection, ${samples} samples per bus (production defaults)`);

  // nexus dev: PGlite and the local bus.
  {
    const db = await createPgliteDatabase();
    const bus = await createLocalEventBus({ db });
    try {
      await bus.start();
      const p = await projectionLatency("local bus on PGlite (nexus dev)", db, bus, samples, warmup);
      projections.push(p);
      report(p);
    } finally {
      await bus.close();
      await db.close();
    }
  }

  let pgReachable = true;
  let contention: AppendContention | undefined;
  try {
    await withPgDatabase(serverUrl, async (db) => {
      const bus = await createLocalEventBus({ db });
      try {
        await bus.start();
        const p = await projectionLatency("local bus on PostgreSQL", db, bus, samples, warmup);
        projections.push(p);
        report(p);
        // The same with other writers appending all along: what serialising appends costs.
        const busy = await projectionLatency(
          `local bus on PostgreSQL, ${CONCURRENT_WRITERS} concurrent writers`,
          db,
          bus,
          samples,
          warmup,
          {
            writers: CONCURRENT_WRITERS,
          },
        );
        projections.push(busy);
        report(busy);
      } finally {
        await bus.close();
      }
    });
    contention = await withPgDatabase(serverUrl, (db) => appendContention(db, CONCURRENT_WRITERS, 150));
    const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(9);
    log("");
    log(`appends: ${contention.writers} concurrent writers × ${contention.appendsPerWriter} single-event transactions (two rounds each)`);
    for (const [label, c] of [
      ["global append lock (as built)", contention.globalLock],
      ["per-stream lock only", contention.streamLock],
    ] as const) {
      log(
        `  ${label.padEnd(30)} p50 ${ms(c.transaction.p50)}   p95 ${ms(c.transaction.p95)}   p99 ${ms(c.transaction.p99)}   ${Math.round(c.perSecond)} appends/s`,
      );
    }
  } catch (err) {
    if (!/ECONNREFUSED|connect/i.test(String(err))) throw err;
    pgReachable = false;
    skipped.push(`PostgreSQL at ${serverUrl} is not reachable`);
  }

  let relay: EventsBenchResult["relay"];
  if (pgReachable) {
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats({ servers: natsUrl, name: "nexus-bench-events" });
    } catch {
      skipped.push(`NATS at ${natsUrl} is not reachable`);
    }
    if (nc) {
      const token = randomUUID().replace(/-/g, "").slice(0, 10);
      try {
        await withPgDatabase(serverUrl, async (db) => {
          const bus = await createNatsEventBus({
            db,
            nats: nc!,
            subjectPrefix: `b${token}`,
            stream: `BENCH_${token.toUpperCase()}_EVENTS`,
            dlqStream: `BENCH_${token.toUpperCase()}_DLQ`,
          });
          try {
            await bus.start();
            // When each message reaches the subject (a core subscription sees JetStream's publishes).
            const onSubject = arrivals();
            const tap = nc!.subscribe(subjectOf(`b${token}`, TOPIC), {
              callback: (_err, msg) => {
                const id = msg.headers?.get("Nats-Msg-Id");
                if (id) onSubject.seen(id);
              },
            });
            const seenOnBus = (id: string) => onSubject.next(id);
            const p = await projectionLatency("NATS bus on PostgreSQL (relay → JetStream → consumer)", db, bus, samples, warmup, {
              seenOnBus,
            });
            tap.unsubscribe();
            projections.push(p);
            report(p);
          } finally {
            await bus.close();
            await dropStreams(nc!, [`BENCH_${token.toUpperCase()}_EVENTS`, `BENCH_${token.toUpperCase()}_DLQ`]);
          }
        });
        log("");
        relay = await withPgDatabase(serverUrl, (db) => relayRate(db, nc!, options.relayEvents ?? 10_000, log));
      } finally {
        await nc.close();
      }
    }
  }
  for (const s of skipped) log(`  skipped: ${s}`);
  return { projections, ...(relay ? { relay } : {}), ...(contention ? { contention } : {}), skipped };
}

/** `npm run bench events`: the benchmark with its ratios. */
export async function benchEventsOutcome(log: (line: string) => void): Promise<BenchOutcome> {
  const result = await benchEvents({ log });
  const ratios: BenchRatio[] = [];
  const local = result.projections.find((p) => p.bus === "local bus on PostgreSQL");
  const busy = result.projections.find((p) => p.bus.startsWith("local bus on PostgreSQL") && p.writers > 0);
  if (local && busy) {
    for (const q of ["p50", "p99"] as const) {
      ratios.push({
        bench: "events (commit → projection)",
        name: `local bus ${q} with ${busy.writers} concurrent writers / alone`,
        value: busy.projection[q] / local.projection[q],
        unit: "×",
      });
      ratios.push({
        bench: "events (append)",
        name: `append transaction ${q} with ${busy.writers} concurrent writers / alone`,
        value: busy.append[q] / local.append[q],
        unit: "×",
      });
    }
  }
  const nats = result.projections.find((p) => p.bus.startsWith("NATS bus"));
  if (local && nats) {
    for (const q of ["p50", "p95", "p99"] as const) {
      ratios.push({
        bench: "events (commit → projection)",
        name: `NATS bus ${q} / local bus ${q}, both on PostgreSQL`,
        value: nats.projection[q] / local.projection[q],
        unit: "×",
      });
    }
  }
  if (result.contention) {
    const c = result.contention;
    for (const q of ["p50", "p99"] as const) {
      ratios.push({
        bench: "events (append)",
        name: `${c.writers} concurrent writers: transaction ${q} with the global lock / per-stream lock only`,
        value: c.globalLock.transaction[q] / c.streamLock.transaction[q],
        unit: "×",
      });
    }
    ratios.push({
      bench: "events (append)",
      name: `${c.writers} concurrent writers: appends/s with the global lock / per-stream lock only`,
      value: c.globalLock.perSecond / c.streamLock.perSecond,
      unit: "%",
    });
  }
  if (result.relay) {
    ratios.push({
      bench: "events (relay)",
      name: "outbox relay events/s / raw JetStream publish events/s",
      value: result.relay.ratio,
      unit: "%",
    });
  }
  return { result, ratios };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchEvents();
}
