import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { startEdgeAgent } from "../services/edge/edge-agent.js";
import type { BenchOutcome } from "./results.js";

/**
 * Edge agent benchmark (issue #14), against `nexus dev` (PGlite + local bus) as the hub:
 * - ingress: `POST /ingress` requests/s to the edge with the hub stopped (every message goes to
 *   the on-disk queue), beside `POST /ingress` to the hub itself at the same concurrency — the
 *   baseline measured in the same run;
 * - drain: messages/s the edge forwards once the hub is back (queue → hub `ForwardMessages`,
 *   batches of up to 200 per app lane, in order), against two baselines of the same run: the
 *   hub's `POST /ingress` rate, and the same messages sent one `Ingest` call at a time (how the
 *   agent forwarded before batching: one hub round trip, group-commit wait included, each).
 */
export interface EdgeBenchResult {
  messages: number;
  concurrency: number;
  hubIngressPerSecond: number;
  edgeIngressPerSecond: number;
  drainPerSecond: number;
  /** One `Ingest` at a time to the hub (the agent's earlier forwarding), messages/s. */
  sequentialIngestPerSecond: number;
}

const HUB_PORT = 19330;
const EDGE_PORT = 19331;

function startHub(dataDir: string): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(
    process.execPath,
    [path.resolve("dist/services/cli/main.js"), "dev", "--port", String(HUB_PORT), "--host", "127.0.0.1", "--data-dir", dataDir],
    {
      // Rate limits off: the one-Ingest-at-a-time baseline measures round trips, not the
      // mutation bucket (2/s per API key by default — what held the agent's earlier drain at
      // ≈2 messages/s when it forwarded with an API key).
      env: { ...process.env, LOG_LEVEL: "warn", NEXUS_RATE_LIMIT_ENABLED: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  // A bench that fails half-way does not leave its hub behind.
  const orphan = () => child.kill("SIGKILL");
  process.once("exit", orphan);
  child.once("exit", () => process.off("exit", orphan));
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the hub did not start:\n${out}`)), 90_000);
    const on = (c: Buffer) => {
      out += c.toString("utf8");
      if (/listening on http/.test(out)) {
        clearTimeout(timer);
        resolve({ child, out: () => out });
      }
    };
    child.stdout?.on("data", on);
    child.stderr?.on("data", on);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

async function rate(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

/** Runs the benchmark. */
export async function benchEdge(
  options: { messages?: number; concurrency?: number; log?: (line: string) => void } = {},
): Promise<BenchOutcome> {
  const log = options.log ?? console.log;
  const messages = options.messages ?? 1000;
  const concurrency = options.concurrency ?? 16;
  const hubDir = mkdtempSync(path.join(tmpdir(), "nexus-bench-edge-hub-"));
  const edgeDir = mkdtempSync(path.join(tmpdir(), "nexus-bench-edge-q-"));
  let hub = await startHub(hubDir);
  for (let i = 0; i < 200 && !/owner key \(/.test(hub.out()); i++) await new Promise((r) => setTimeout(r, 50));
  const ownerKey = /owner key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/.exec(hub.out())?.[1] ?? "";
  const hubUrl = `http://127.0.0.1:${HUB_PORT}`;
  const client = createNexusClient({ baseUrl: hubUrl, apiKey: ownerKey });
  // An app that feeds no workflow: the hub's accept path (validate, dedupe claim, durable row) only.
  const { app, appKey } = await client.integration.createSenderApp({ name: "bench" });
  const { edgeToken } = await client.edges.registerEdge({ name: "bench", appIds: [app?.appId ?? ""] });
  const post = (url: string, i: number, prefix: string) =>
    fetch(`${url}/ingress`, {
      method: "POST",
      headers: { "x-api-key": appKey, "x-message-id": `${prefix}-${i}` },
      body: JSON.stringify({ i, pad: "x".repeat(200) }),
    }).then(async (r) => {
      if (r.status !== 202) throw new Error(`ingress answered ${r.status}: ${await r.text()}`);
    });
  const hubIngressPerSecond = await rate(messages, concurrency, (i) => post(hubUrl, i, "hub"));
  log(`edge: hub POST /ingress ${hubIngressPerSecond.toFixed(0)}/s`);
  const edge = await startEdgeAgent({
    hubUrl,
    token: edgeToken,
    host: "127.0.0.1",
    port: EDGE_PORT,
    dataDir: edgeDir,
    maxQueueBytes: 256 * 1024 * 1024,
    syncIntervalMs: 60_000,
    maxBodyBytes: 1024 * 1024,
    logger: pino({ level: "silent" }),
  });
  await stop(hub.child);
  const edgeUrl = `http://127.0.0.1:${EDGE_PORT}`;
  const edgeIngressPerSecond = await rate(messages, concurrency, (i) => post(edgeUrl, i, "edge"));
  log(`edge: edge POST /ingress (hub down, queued) ${edgeIngressPerSecond.toFixed(0)}/s`);

  hub = await startHub(hubDir);
  // Drain: from the hub being back (the agent's retry delay skipped) to an empty queue, or
  // 120 s (then the rate is what was drained in that time).
  const t0 = performance.now();
  const depth = async () => ((await (await fetch(`${edgeUrl}/health`)).json()) as { queue_depth: number }).queue_depth;
  let left = messages;
  while (performance.now() - t0 < 120_000) {
    await Promise.race([edge.drain(), new Promise((r) => setTimeout(r, 120_000 - (performance.now() - t0)))]);
    left = await depth();
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const drainPerSecond = (messages - left) / ((performance.now() - t0) / 1000);
  log(`edge: queue drain ${drainPerSecond.toFixed(1)} messages/s (${messages - left} of ${messages})`);
  // Baseline of the drain, right after it on the same hub: one Ingest at a time (a lane
  // forwarding message by message, as the agent did before batching).
  const sequential = Math.min(300, messages);
  const sequentialIngestPerSecond = await rate(sequential, 1, async (i) => {
    await client.integration.ingest({ appId: app?.appId ?? "", payload: { i, pad: "x".repeat(200) }, clientMessageId: `seq-${i}` });
  });
  log(`edge: hub Ingest one at a time ${sequentialIngestPerSecond.toFixed(1)}/s (${sequential} messages)`);

  await edge.close();
  await stop(hub.child);
  rmSync(hubDir, { recursive: true, force: true });
  rmSync(edgeDir, { recursive: true, force: true });
  const result: EdgeBenchResult = {
    messages,
    concurrency,
    hubIngressPerSecond,
    edgeIngressPerSecond,
    drainPerSecond,
    sequentialIngestPerSecond,
  };
  return {
    result,
    ratios: [
      {
        bench: "edge (nexus dev hub)",
        name: "edge POST /ingress (queued) / hub POST /ingress, req/s",
        value: edgeIngressPerSecond / hubIngressPerSecond,
        unit: "×",
      },
      {
        bench: "edge (nexus dev hub)",
        name: "queue drain messages/s / hub POST /ingress req/s",
        value: drainPerSecond / hubIngressPerSecond,
        unit: "×",
      },
      {
        bench: "edge (nexus dev hub)",
        name: "queue drain (batched) / one Ingest at a time, messages/s",
        value: drainPerSecond / sequentialIngestPerSecond,
        unit: "×",
      },
    ],
  };
}
