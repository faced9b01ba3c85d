import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { FieldType, SqlEngine, SqlOperation, WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { benchServerUrl, createBenchDatabase, type Percentiles, percentiles } from "./rag-setup.js";
import type { BenchOutcome } from "./results.js";
import { type Child, CLI, chartServiceSettings, freePort, startChild } from "./rpc.js";

/**
 * Integration benchmark (issue 13), on this machine's PostgreSQL and NATS: `nexus dev` (every
 * service) plus a second process `nexus serve --service integration` on the same database and
 * bus, as a deployment would run it.
 *
 * - Ingress: `POST /ingress` to the integration process, `concurrency` requests in flight —
 *   requests/s and p50/p99 — beside a raw JetStream publish (`js.publish`, same concurrency, same
 *   payloads) measured in the same run: what accepting a message costs over putting bytes on
 *   the stream (our accept = validate + the batch's dedupe claims in one statement, then the
 *   JetStream publishes of the batch, pipelined). Then the same again with `spikeConcurrency`
 *   requests in flight (a spike: batches grow, requests/s should too).
 * - Ingress → destination row: each message fans out to a PostgreSQL table (UPSERT on the
 *   message id); p50/p99 of the row's commit time minus the request's start.
 * - RSS of the integration process after the run (current and peak), started with the Node
 *   flags the Helm chart gives the integration container (NODE_OPTIONS=--max-old-space-size and
 *   --max-semi-space-size from charts/nexus/values.yaml), and sampled every 500 ms during the load from its /metrics (RSS,
 *   V8 heap used/total, external memory): the peak of each, to tell where memory goes.
 */
export interface IntegrationBenchResult {
  messages: number;
  concurrency: number;
  rawPublish: { perSecond: number; latencyMs: Percentiles };
  ingress: { perSecond: number; latencyMs: Percentiles };
  spikeConcurrency: number;
  rawPublishSpike: { perSecond: number; latencyMs: Percentiles };
  ingressSpike: { perSecond: number; latencyMs: Percentiles };
  ingressToRowMs: Percentiles;
  integrationProcess: {
    rssMiB: number;
    peakRssMiB: number;
    /** NODE_OPTIONS the process ran with (the chart's). */
    nodeOptions: string;
    /** Peaks over the samples taken during the load, MiB. */
    sampledPeakMiB: { rss: number; heapUsed: number; heapTotal: number; external: number };
    samples: number;
    /** Load average (1 min) when the run ended. */
    loadAverage: number;
  };
}

/** Samples a process's memory from its /metrics (prom-client's default process metrics). */
function memorySampler(metricsUrl: string, pid: number) {
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 };
  let samples = 0;
  let stopped = false;
  const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text)?.[1] ?? 0) / 1048576;
  const loop = (async () => {
    while (!stopped) {
      const text = await fetch(metricsUrl)
        .then((r) => r.text())
        .catch(() => "");
      if (text) {
        samples++;
        peak.rss = Math.max(peak.rss, rssOf(pid).rssMiB);
        peak.heapUsed = Math.max(peak.heapUsed, metric(text, "nodejs_heap_size_used_bytes"));
        peak.heapTotal = Math.max(peak.heapTotal, metric(text, "nodejs_heap_size_total_bytes"));
        peak.external = Math.max(peak.external, metric(text, "nodejs_external_memory_bytes"));
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      const round = (v: number) => Math.round(v * 10) / 10;
      return {
        samples,
        peak: { rss: round(peak.rss), heapUsed: round(peak.heapUsed), heapTotal: round(peak.heapTotal), external: round(peak.external) },
      };
    },
  };
}

async function run(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t = performance.now();
        await task(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { perSecond: count / ((performance.now() - started) / 1000), latencies };
}

function rssOf(pid: number): { rssMiB: number; peakRssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMiB: Math.round(kib("VmRSS") / 102.4) / 10, peakRssMiB: Math.round(kib("VmHWM") / 102.4) / 10 };
}

/** Runs the benchmark; a string when it cannot (no NATS). */
export async function benchIntegration(
  options: { messages?: number; concurrency?: number; spikeConcurrency?: number; log?: (line: string) => void } = {},
): Promise<BenchOutcome | string> {
  const log = options.log ?? console.log;
  const messages = options.messages ?? 2_000;
  const concurrency = options.concurrency ?? 16;
  const spikeConcurrency = options.spikeConcurrency ?? 128;
  const natsUrl = process.env.NEXUS_BENCH_NATS_URL || "nats://127.0.0.1:4222";
  const nc = await connect({ servers: natsUrl }).catch(() => undefined);
  if (!nc) return `no NATS at ${natsUrl}`;
  const token = `bi${randomBytes(4).toString("hex")}`;
  const database = await createBenchDatabase(benchServerUrl());
  const shared = {
    DATABASE_URL: database.url,
    NATS_URL: natsUrl,
    NEXUS_SUBJECT_PREFIX: token,
    NEXUS_NATS_STREAM: `${token}_EVENTS`,
    NEXUS_DLQ_STREAM: `${token}_DLQ`,
    NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`,
    NEXUS_LEXICAL_ONLY: "true",
    LOG_LEVEL: "error",
  };
  let dev: Child | undefined;
  let worker: Child | undefined;
  let sampler: ReturnType<typeof memorySampler> | undefined;
  const work = mkdtempSync(path.join(tmpdir(), "nexus-bench-integration-"));
  const devPort = await freePort();
  const workerPort = await freePort();
  const devUrl = `http://127.0.0.1:${devPort}`;
  const workerUrl = `http://127.0.0.1:${workerPort}`;
  const sink = new pg.Client({ connectionString: database.url });
  const jsm = await jetstreamManager(nc);
  try {
    dev = await startChild(
      [CLI, "dev", "--port", String(devPort), "--host", "127.0.0.1"],
      shared,
      /owner key[^\n]*\n\s*nxs_\S+/,
      path.join(work, "dev.log"),
    );
    const ownerKey = /owner key[^\n]*\n\s*(nxs_\S+)/.exec(dev.output())?.[1];
    if (!ownerKey) throw new Error(`nexus dev printed no owner key:\n${dev.output()}`);
    // The integration process runs with the Node flags the chart gives its container.
    const chart = chartServiceSettings("integration");
    log(
      `integration process: NODE_OPTIONS="${chart.nodeOptions}" (charts/nexus values: maxOldSpaceSizeMi ${chart.maxOldSpaceSizeMi}, maxSemiSpaceSizeMi ${chart.maxSemiSpaceSizeMi}, memory limit ${chart.memoryLimit ?? "none"})`,
    );
    worker = await startChild(
      [CLI, "serve", "--service", "integration", "--port", String(workerPort), "--host", "127.0.0.1"],
      { ...shared, NEXUS_AUTH_URL: devUrl, NEXUS_INGESTION_URL: devUrl, NODE_OPTIONS: chart.nodeOptions },
      /listening on/,
      path.join(work, "worker.log"),
    );
    await sink.connect();
    await sink.query(
      "CREATE TABLE bench_rows (message_id text PRIMARY KEY, sent_ms double precision NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    const client = createNexusClient({ baseUrl: devUrl, apiKey: ownerKey }).integration;
    const url = new URL(database.url);
    const { destination } = await client.createDestination({
      name: "bench-sink",
      config: {
        kind: {
          case: "sql",
          value: {
            engine: SqlEngine.POSTGRES,
            host: url.hostname,
            port: Number(url.port || 5432),
            database: url.pathname.slice(1),
            user: url.username || "postgres",
            poolMax: 8,
          },
        },
      },
    });
    const { app, appKey } = await client.createSenderApp({
      name: "bench",
      fields: [{ name: "sent_ms", type: FieldType.NUMBER, required: true }],
    });
    await client.createWorkflow({
      name: "bench",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [
          {
            destinationId: destination!.destinationId,
            transform: '{"message_id": $messageId, "sent_ms": sent_ms}',
            sql: {
              operation: SqlOperation.UPSERT,
              table: "bench_rows",
              keyColumns: ["message_id"],
              mappings: [
                { source: "message_id", column: "message_id", type: FieldType.STRING },
                { source: "sent_ms", column: "sent_ms", type: FieldType.NUMBER },
              ],
            },
          },
        ],
      },
    });
    await new Promise((r) => setTimeout(r, 3_000)); // both processes subscribe the workflow

    // Baseline: raw JetStream publish of the same payloads, same concurrency.
    await jsm.streams.add({ name: `${token}_RAW`, subjects: [`${token}_raw.bench`] });
    const js = jetstream(nc);
    const raw = await run(messages, concurrency, async (i) => {
      await js.publish(`${token}_raw.bench`, JSON.stringify({ n: i, sent_ms: Date.now(), pad: "x".repeat(64) }));
    });
    log(
      `raw JetStream publish: ${raw.perSecond.toFixed(0)}/s, p50 ${percentiles(raw.latencies).p50.toFixed(2)} ms, p99 ${percentiles(raw.latencies).p99.toFixed(2)} ms`,
    );

    sampler = memorySampler(`${workerUrl}/metrics`, worker.process.pid as number);
    const ingressUrl = `${workerUrl}/ingress`;
    const post = async (i: number) => {
      const res = await fetch(ingressUrl, {
        method: "POST",
        headers: { "x-api-key": appKey, "content-type": "application/json" },
        body: JSON.stringify({ n: i, sent_ms: Date.now(), pad: "x".repeat(64) }),
      });
      if (res.status !== 202) throw new Error(`ingress answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    const ingress = await run(messages, concurrency, post);
    log(
      `POST /ingress: ${ingress.perSecond.toFixed(0)}/s, p50 ${percentiles(ingress.latencies).p50.toFixed(2)} ms, p99 ${percentiles(ingress.latencies).p99.toFixed(2)} ms`,
    );
    const rawSpike = await run(messages, spikeConcurrency, async (i) => {
      await js.publish(`${token}_raw.bench`, JSON.stringify({ n: messages + i, sent_ms: Date.now(), pad: "x".repeat(64) }));
    });
    log(
      `raw JetStream publish, ${spikeConcurrency} in flight: ${rawSpike.perSecond.toFixed(0)}/s, p50 ${percentiles(rawSpike.latencies).p50.toFixed(2)} ms, p99 ${percentiles(rawSpike.latencies).p99.toFixed(2)} ms`,
    );
    const spike = await run(messages, spikeConcurrency, (i) => post(messages + i));
    log(
      `POST /ingress, ${spikeConcurrency} in flight: ${spike.perSecond.toFixed(0)}/s, p50 ${percentiles(spike.latencies).p50.toFixed(2)} ms, p99 ${percentiles(spike.latencies).p99.toFixed(2)} ms`,
    );

    const deadline = Date.now() + 300_000;
    for (;;) {
      const n = (await sink.query<{ n: number }>("SELECT count(*)::int AS n FROM bench_rows")).rows[0]?.n ?? 0;
      if (n >= 2 * messages) break;
      if (Date.now() > deadline) throw new Error(`only ${n} of ${2 * messages} rows arrived`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const rows = await sink.query<{ ms: number }>("SELECT extract(epoch FROM written_at) * 1000 - sent_ms AS ms FROM bench_rows");
    const toRow = percentiles(rows.rows.map((r) => Number(r.ms)));
    log(`ingress → destination row: p50 ${toRow.p50.toFixed(1)} ms, p99 ${toRow.p99.toFixed(1)} ms`);
    const sampled = await sampler.stop();
    const rss = rssOf(worker.process.pid as number);
    const loadAverage = Math.round((loadavg()[0] ?? 0) * 10) / 10;
    log(
      `integration process RSS: ${rss.rssMiB} MiB (peak ${rss.peakRssMiB} MiB; target < 256), load average ${loadAverage}; during the load (${sampled.samples} samples) peak RSS ${sampled.peak.rss} MiB, V8 heap used ${sampled.peak.heapUsed} / total ${sampled.peak.heapTotal} MiB, external ${sampled.peak.external} MiB`,
    );
    const result: IntegrationBenchResult = {
      messages,
      concurrency,
      rawPublish: { perSecond: raw.perSecond, latencyMs: percentiles(raw.latencies) },
      ingress: { perSecond: ingress.perSecond, latencyMs: percentiles(ingress.latencies) },
      spikeConcurrency,
      rawPublishSpike: { perSecond: rawSpike.perSecond, latencyMs: percentiles(rawSpike.latencies) },
      ingressSpike: { perSecond: spike.perSecond, latencyMs: percentiles(spike.latencies) },
      ingressToRowMs: toRow,
      integrationProcess: {
        ...rss,
        nodeOptions: chart.nodeOptions,
        sampledPeakMiB: sampled.peak,
        samples: sampled.samples,
        loadAverage,
      },
    };
    const bench = "integration (PostgreSQL + NATS)";
    return {
      result,
      ratios: [
        { bench, name: "POST /ingress RPS / raw JetStream publish RPS", value: ingress.perSecond / raw.perSecond, unit: "%" },
        {
          bench,
          name: "POST /ingress p50 / raw JetStream publish p50",
          value: result.ingress.latencyMs.p50 / result.rawPublish.latencyMs.p50,
          unit: "×",
        },
        {
          bench,
          name: "POST /ingress p99 / raw JetStream publish p99",
          value: result.ingress.latencyMs.p99 / result.rawPublish.latencyMs.p99,
          unit: "×",
        },
        {
          bench,
          name: `POST /ingress RPS / raw JetStream publish RPS, ${spikeConcurrency} in flight`,
          value: spike.perSecond / rawSpike.perSecond,
          unit: "%",
        },
        { bench, name: "ingress → row p99 / ingress p99", value: toRow.p99 / result.ingress.latencyMs.p99, unit: "×" },
      ],
    };
  } finally {
    await sampler?.stop();
    await worker?.stop();
    await dev?.stop();
    await sink.end().catch(() => undefined);
    for (const s of [`${token}_RAW`, `${token}_EVENTS`, `${token}_DLQ`]) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
    await database.drop();
    rmSync(work, { recursive: true, force: true });
  }
}
