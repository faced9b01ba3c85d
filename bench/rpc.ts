import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { parse as parseYaml } from "yaml";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { SERVICE_NAMES } from "../services/kernel/config.js";
import { deleteStreams } from "../services/kernel/events/nats-streams.js";
import { createBenchDatabase, syntheticText } from "./rag-setup.js";

/**
 * The hot path (issue 11): requests per second of one unary RPC at 32 concurrent calls, for
 *
 *  - bare connect-node serving grpc.health.v1 Health/Check (bench/bare-connect-server.ts, its
 *    own process, no Nexus code) — the baseline every ratio is against;
 *  - `nexus dev` Health/Check (public: no authentication; the kernel's request id, tracing,
 *    logging, metrics, error normalisation, validation, decode-errors wrapper and readiness);
 *  - `nexus dev` WhoAmI (authenticated unary: the gate and its cache, the permission table,
 *    write freeze, rate limiter, idempotency, the handler)
 *
 * each on Connect JSON over HTTP/1.1 (autocannon, 32 connections) and on gRPC over HTTP/2
 * (bench/h2-load.ts, 32 streams over 4 connections). Load comes from a separate process;
 * the servers are separate processes; measurements are interleaved round by round and the
 * median of the rounds is reported, so the ratios hold on a busy machine even when the
 * absolute numbers do not. The rate limiter stays on with limits high enough never to
 * refuse, so its cost is measured.
 */
export interface RpcBenchOptions {
  /** Seconds per measurement. Default 3 (NEXUS_BENCH_RPC_SECONDS). */
  seconds?: number;
  /** Rounds (each measures every target once, bare connect-node first). Default 7 (NEXUS_BENCH_RPC_ROUNDS). */
  rounds?: number;
  /** Concurrent connections (HTTP/1.1) or streams (HTTP/2). Default 32. */
  concurrency?: number;
  log?: (line: string) => void;
}

/** One measured target: median RPS over the rounds and its ratio to bare connect-node. */
export interface RpcBenchRow {
  protocol: "http1-connect-json" | "http2-grpc";
  target: string;
  /** Median calls per second. */
  rps: number;
  /** Calls per second of each round. */
  rounds: number[];
  /**
   * rps / bare connect-node's rps (same protocol): the median over the rounds of each round's
   * ratio (bare measured seconds before in the same round), so a machine whose speed drifts
   * between rounds moves both sides of a ratio together.
   */
  ratio: number;
  /** Median CPU time the server process spent per call, in microseconds. */
  cpuUsPerCall: number;
  /** bare connect-node's CPU per call / this one's (median of the rounds' ratios, like `ratio`): the throughput ratio on a machine where the server gets a whole core. */
  cpuRatio: number;
  /** Each round's CPU ratio. */
  roundCpuRatios: number[];
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLI = path.join(here, "../services/cli/main.js");
const H2_LOAD = path.join(here, "h2-load.js");
const BARE = path.join(here, "bare-connect-server.js");
const AUTOCANNON = path.join(path.dirname(createRequire(import.meta.url).resolve("autocannon/package.json")), "autocannon.js");

/** Limits high enough that the bench never sees RATE_LIMITED, while every call still takes tokens. */
const NO_REFUSAL_RATE_LIMITS = ["run", "mutation", "read", "ops"].map((c) => `${c}=1000000/1000000:1000000/1000000`).join(",");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A child process whose stdout+stderr go to a file (a pipe would bill its reader to the bench). */
export interface Child {
  process: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  logFile: string,
  timeoutMs = 180_000,
): Promise<Child> {
  const fd = openSync(logFile, "w");
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] });
  const output = () => readFileSync(logFile, "utf8");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ready.test(output())) break;
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited ${child.exitCode}:\n${output().slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${args.join(" ")} not ready in time:\n${output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    process: child,
    output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

async function runJson(args: string[]): Promise<unknown> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`${path.basename(args[0]!)} exited ${code}: ${err.slice(-2000)}`);
  const line = out.trim().split("\n").pop()!;
  return JSON.parse(line);
}

/** One call shape: path, Connect JSON body, gRPC body (hex), headers. */
interface Call {
  path: string;
  authorization?: string;
}

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks (100 per second);
  // the command name (field 2) is in parentheses and may hold spaces, so count from its end.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Waits until a process has used less than 10 % of a core in each of three 2-second windows in
 * a row (its start-up work done; an idle `nexus dev` uses a few %), at most `timeoutMs`. True
 * when it got there.
 */
export async function waitUntilIdle(pid: number, timeoutMs = 180_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  while (Date.now() < deadline) {
    const before = cpuMs(pid);
    await new Promise((r) => setTimeout(r, 2000));
    quiet = cpuMs(pid) - before < 200 ? quiet + 1 : 0;
    if (quiet === 3) return true;
  }
  return false;
}

/** One measurement: calls per second, and the server's CPU time per call. */
interface Sample {
  rps: number;
  cpuUsPerCall: number;
}

async function measure(pid: number, load: () => Promise<{ rps: number; calls: number }>): Promise<Sample> {
  const before = cpuMs(pid);
  const { rps, calls } = await load();
  return { rps, cpuUsPerCall: ((cpuMs(pid) - before) * 1000) / calls };
}

async function loadHttp1(baseUrl: string, call: Call, concurrency: number, seconds: number): Promise<{ rps: number; calls: number }> {
  const args = (d: number) => [
    AUTOCANNON,
    "-j",
    "-c",
    String(concurrency),
    "-d",
    String(d),
    "-m",
    "POST",
    "-H",
    "content-type=application/json",
    ...(call.authorization ? ["-H", `authorization=${call.authorization}`] : []),
    "-b",
    "{}",
    `${baseUrl}${call.path}`,
  ];
  const r = (await runJson(args(seconds))) as { requests: { total: number }; duration: number; non2xx: number; errors: number };
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`HTTP/1.1 ${call.path}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return { rps: r.requests.total / r.duration, calls: r.requests.total };
}

async function loadHttp2(baseUrl: string, call: Call, concurrency: number, seconds: number): Promise<{ rps: number; calls: number }> {
  const r = (await runJson([H2_LOAD, baseUrl, call.path, String(concurrency), "4", String(seconds), "", call.authorization ?? ""])) as {
    rps: number;
    ok: number;
    errors: number;
    statuses: Record<string, number>;
  };
  if (r.errors > 0) throw new Error(`gRPC ${call.path}: ${r.errors} failed calls ${JSON.stringify(r.statuses)}`);
  return { rps: r.rps, calls: r.ok };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Peak resident set size of a process (VmHWM), in MiB. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

/** The two keys `nexus dev` prints on first start. */
export function devKeys(output: string): { platform: string; owner: string } {
  const keys = [...output.matchAll(/^\s+(nxs_[A-Za-z0-9_-]+)\s*$/gm)].map((m) => m[1]!);
  if (keys.length < 2) throw new Error(`nexus dev printed no keys:\n${output.slice(-2000)}`);
  return { platform: keys[0]!, owner: keys[1]! };
}

/** Node flags `nexus dev` runs with: what the `nexus` launcher and `npm start` pass (NEXUS_BENCH_DEV_NODE_ARGS overrides). */
const DEV_NODE_ARGS = (process.env.NEXUS_BENCH_DEV_NODE_ARGS ?? "--liftoff-only --max-semi-space-size=32").split(" ").filter(Boolean);

export async function startDev(
  dataDir: string,
  extraEnv: NodeJS.ProcessEnv = {},
  nodeArgs: readonly string[] = DEV_NODE_ARGS,
): Promise<Child & { url: string }> {
  const port = await freePort();
  const child = await startChild(
    [...nodeArgs, CLI, "dev", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir],
    { NEXUS_RATE_LIMITS: NO_REFUSAL_RATE_LIMITS, NEXUS_LOG_PRETTY: "false", ...extraEnv },
    /Nexus dev listening on/,
    path.join(dataDir, "..", `dev-${port}.log`),
  );
  return { ...child, url: `http://127.0.0.1:${port}` };
}

/** `npm run bench rpc`: the table of RPS and ratios against bare connect-node. */
export async function benchRpc(options: RpcBenchOptions = {}): Promise<RpcBenchRow[]> {
  const seconds = options.seconds ?? Number(process.env.NEXUS_BENCH_RPC_SECONDS ?? 3);
  const rounds = options.rounds ?? Number(process.env.NEXUS_BENCH_RPC_ROUNDS ?? 7);
  const concurrency = options.concurrency ?? 32;
  const log = options.log ?? console.log;
  const work = mkdtempSync(path.join(tmpdir(), "nexus-bench-rpc-"));
  const children: Child[] = [];
  try {
    const [h1Port, h2Port] = [await freePort(), await freePort()];
    const bare = await startChild([BARE, String(h1Port), String(h2Port)], {}, /ready/, path.join(work, "bare.log"));
    children.push(bare);
    const dev = await startDev(path.join(work, "data"));
    children.push(dev);
    const { owner } = devKeys(dev.output());
    // A first start seeds the demo corpus (ingestion and embeddings on PGlite) after it prints
    // that it listens: that one-off work would be billed to the first rounds' calls.
    const settled = await waitUntilIdle(dev.process.pid!);
    log(`  nexus dev ${settled ? "idle" : "still busy after 180 s"} before measuring`);
    const health: Call = { path: "/grpc.health.v1.Health/Check" };
    const whoAmI: Call = { path: "/nexus.auth.v1.AuthService/WhoAmI", authorization: `Bearer ${owner}` };
    const targets: { target: string; url: (p: "h1" | "h2") => string; pid: number; call: Call }[] = [
      {
        target: "bare connect-node Health/Check",
        url: (p) => `http://127.0.0.1:${p === "h1" ? h1Port : h2Port}`,
        pid: bare.process.pid!,
        call: health,
      },
      { target: "nexus dev Health/Check", url: () => dev.url, pid: dev.process.pid!, call: health },
      { target: "nexus dev WhoAmI (authenticated)", url: () => dev.url, pid: dev.process.pid!, call: whoAmI },
    ];
    const protocols = [
      { protocol: "http1-connect-json" as const, short: "h1" as const, load: loadHttp1 },
      { protocol: "http2-grpc" as const, short: "h2" as const, load: loadHttp2 },
    ];
    // Warm-up: every target once, unrecorded (JIT, caches, connection pools).
    for (const p of protocols) for (const t of targets) await p.load(t.url(p.short), t.call, concurrency, 1);
    const samples = new Map<string, Sample[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const p of protocols) {
        for (const t of targets) {
          const sample = await measure(t.pid, () => p.load(t.url(p.short), t.call, concurrency, seconds));
          const key = `${p.protocol}\u0000${t.target}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
        }
      }
      log(`  round ${round}/${rounds} done`);
    }
    const rows: RpcBenchRow[] = [];
    for (const p of protocols) {
      const baseSamples = samples.get(`${p.protocol}\u0000${targets[0]!.target}`)!;
      log(`${p.protocol}, ${concurrency} concurrent, ${rounds} rounds × ${seconds} s (median; ratios: median of each round's ratio):`);
      for (const t of targets) {
        const all = samples.get(`${p.protocol}\u0000${t.target}`)!;
        const rps = median(all.map((x) => x.rps));
        const cpuUsPerCall = median(all.map((x) => x.cpuUsPerCall));
        const roundRatios = all.map((x, i) => x.rps / baseSamples[i]!.rps);
        const roundCpuRatios = all.map((x, i) => baseSamples[i]!.cpuUsPerCall / x.cpuUsPerCall);
        const ratio = median(roundRatios);
        const cpuRatio = median(roundCpuRatios);
        rows.push({
          protocol: p.protocol,
          target: t.target,
          rps,
          rounds: all.map((x) => x.rps),
          ratio,
          cpuUsPerCall,
          cpuRatio,
          roundCpuRatios,
        });
        log(
          `  ${t.target.padEnd(34)} ${rps.toFixed(0).padStart(6)} RPS ${(100 * ratio).toFixed(0).padStart(4)}% of bare` +
            ` | server CPU ${cpuUsPerCall.toFixed(0).padStart(5)} µs/call ${(100 * cpuRatio).toFixed(0).padStart(4)}% of bare` +
            `  (CPU ratio by round: ${roundCpuRatios.map((r) => `${(100 * r).toFixed(0)}%`).join(", ")})`,
        );
      }
    }
    log(
      `  peak RSS: bare connect-node ${peakRssMiB(bare.process.pid!).toFixed(0)} MiB, nexus dev ${peakRssMiB(dev.process.pid!).toFixed(0)} MiB`,
    );
    return rows;
  } finally {
    for (const c of children.reverse()) await c.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Whether the PostgreSQL server of `url` can install pgvector. */
async function hasPgvector(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
    return rows.length > 0;
  } finally {
    await client.end();
  }
}

/** What the Helm chart gives one service's container: its heap limit and memory limit. */
export interface ChartServiceSettings {
  /** `maxOldSpaceSizeMi` (serviceDefaults, then the service's override); 0 = Node's default. */
  maxOldSpaceSizeMi: number;
  /** `maxSemiSpaceSizeMi` (likewise); 0 = Node's default. */
  maxSemiSpaceSizeMi: number;
  /** `resources.limits.memory` as written in the values (e.g. "320Mi"), if any. */
  memoryLimit?: string;
  /** NODE_OPTIONS as the chart's Deployment sets it (the caller's own NODE_OPTIONS kept in front). */
  nodeOptions: string;
}

interface ChartServiceValues {
  maxOldSpaceSizeMi?: number;
  maxSemiSpaceSizeMi?: number;
  resources?: { limits?: { memory?: string } };
}

/**
 * Reads charts/nexus/values.yaml the way templates/services.yaml merges it (serviceDefaults,
 * overwritten by `services.<name>`), so a benchmark runs `nexus serve` with the settings a
 * deployment gets and cannot drift from them.
 */
export function chartServiceSettings(service: string): ChartServiceSettings {
  // From bench/ (tsx) or dist/bench/ (npm run bench): the first ancestor holding the chart.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "charts/nexus/values.yaml")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const file = path.join(dir, "charts/nexus/values.yaml");
  const values = parseYaml(readFileSync(file, "utf8")) as {
    serviceDefaults?: ChartServiceValues;
    services?: Record<string, ChartServiceValues | null>;
  };
  const override = values.services?.[service] ?? {};
  const maxOldSpaceSizeMi = Number(override.maxOldSpaceSizeMi ?? values.serviceDefaults?.maxOldSpaceSizeMi ?? 0);
  const maxSemiSpaceSizeMi = Number(override.maxSemiSpaceSizeMi ?? values.serviceDefaults?.maxSemiSpaceSizeMi ?? 0);
  const memoryLimit = override.resources?.limits?.memory ?? values.serviceDefaults?.resources?.limits?.memory;
  // As templates/services.yaml writes NODE_OPTIONS.
  const flags = [
    ...(maxOldSpaceSizeMi > 0 ? [`--max-old-space-size=${maxOldSpaceSizeMi}`] : []),
    ...(maxSemiSpaceSizeMi > 0 ? [`--max-semi-space-size=${maxSemiSpaceSizeMi}`] : []),
  ];
  return {
    maxOldSpaceSizeMi,
    maxSemiSpaceSizeMi,
    ...(memoryLimit ? { memoryLimit: String(memoryLimit) } : {}),
    nodeOptions: [process.env.NODE_OPTIONS ?? "", ...flags].join(" ").trim(),
  };
}

/** What {@link benchMemory} measured, in MiB. */
export interface MemoryBenchResult {
  /** With the launcher's node flags (--liftoff-only --max-semi-space-size=32), and without them. */
  dev: { afterFirstStart: number; afterIngest: number; withoutFlags?: { afterFirstStart: number; afterIngest: number } };
  serve: Record<string, number>;
}

/**
 * `npm run bench memory`: peak RSS (VmHWM) of `nexus dev` after its first start (migrations,
 * bootstrap, the demo corpus ingested) and after a further ingest of `documents` documents;
 * and of `nexus serve --service X` for each role alone against PostgreSQL
 * (NEXUS_BENCH_DATABASE_URL, a fresh database) and NATS (NEXUS_BENCH_NATS_URL), with the chart's heap
 * limit, after start and two seconds of Health/Check load.
 * Targets: dev < 512 MiB, each service < 256 MiB.
 */
export async function benchMemory(options: { documents?: number; log?: (line: string) => void } = {}): Promise<MemoryBenchResult> {
  const log = options.log ?? console.log;
  const documents = options.documents ?? 40;
  const work = mkdtempSync(path.join(tmpdir(), "nexus-bench-mem-"));
  const children: Child[] = [];
  try {
    const measureDev = async (nodeArgs: readonly string[], dir: string) => {
      const dev = await startDev(path.join(work, dir), { NEXUS_RATE_LIMIT_ENABLED: "false" }, nodeArgs);
      children.push(dev);
      const afterFirstStart = peakRssMiB(dev.process.pid!);
      const client = createNexusClient({ baseUrl: dev.url, apiKey: devKeys(dev.output()).owner });
      await client.retrieval.createCorpus({ corpusId: "bench-memory", displayName: "bench memory" });
      const ids: string[] = [];
      for (let i = 0; i < documents; i++) {
        const id = `bench-memory-${i}`;
        ids.push(id);
        await client.ingestion.ingestText({
          corpusId: "bench-memory",
          documentId: id,
          text: syntheticText(i, 200),
          filename: `${id}.md`,
          mediaType: "text/markdown",
        });
      }
      const pending = new Set(ids);
      const deadline = Date.now() + 300_000;
      while (pending.size > 0 && Date.now() < deadline) {
        for (const id of [...pending]) {
          const { document } = await client.ingestion.getDocument({ documentId: id });
          if (document?.status === DocumentStatus.SUCCEEDED || document?.status === DocumentStatus.FAILED) pending.delete(id);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      if (pending.size > 0) throw new Error(`${pending.size} documents not ingested in time`);
      const afterIngest = peakRssMiB(dev.process.pid!);
      await dev.stop();
      children.pop();
      log(
        `nexus dev (node ${nodeArgs.join(" ") || "without flags"}) peak RSS: ${afterFirstStart.toFixed(0)} MiB after first start, ${afterIngest.toFixed(0)} MiB after ingesting ${documents} more documents (target < 512)`,
      );
      return { afterFirstStart, afterIngest };
    };
    const { afterFirstStart, afterIngest } = await measureDev(DEV_NODE_ARGS, "data");
    const withoutFlags = DEV_NODE_ARGS.length > 0 ? await measureDev([], "data-no-flags") : undefined;

    const serve: Record<string, number> = {};
    const database = await createBenchDatabase(process.env.NEXUS_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
    const nats = {
      NATS_URL: process.env.NEXUS_BENCH_NATS_URL ?? "nats://127.0.0.1:4222",
      NEXUS_NATS_STREAM: `BENCH_MEM_${process.pid}`,
      NEXUS_SUBJECT_PREFIX: `benchmem${process.pid}`,
      NEXUS_DLQ_STREAM: `BENCH_MEM_DLQ_${process.pid}`,
    };
    try {
      // Without pgvector on the server the services refuse to start unless told to search
      // lexically (what the chart's users would set): measure that way, and say so.
      const vectors = await hasPgvector(database.url);
      if (!vectors) log("  (the PostgreSQL server has no pgvector: nexus serve runs with NEXUS_LEXICAL_ONLY=true)");
      const env = {
        ...(vectors ? {} : { NEXUS_LEXICAL_ONLY: "true" }),
        DATABASE_URL: database.url,
        ...nats,
        NEXUS_LOG_PRETTY: "false",
      };
      // Every role in its own process, as the chart runs them, each told where the others are;
      // started in order (auth first: the others authenticate through it).
      const ports = Object.fromEntries(await Promise.all(SERVICE_NAMES.map(async (r) => [r, await freePort()] as const))) as Record<
        string,
        number
      >;
      const urls = Object.fromEntries(SERVICE_NAMES.map((r) => [`NEXUS_${r.toUpperCase()}_URL`, `http://127.0.0.1:${ports[r]}`]));
      const running: [string, Child][] = [];
      for (const role of SERVICE_NAMES) {
        const child = await startChild(
          [CLI, "serve", "--service", role, "--port", String(ports[role]), "--host", "127.0.0.1"],
          // The heap limit the chart gives this service's container (maxOldSpaceSizeMi).
          { ...env, ...urls, NEXUS_SERVICE_NAME: `nexus-${role}`, NODE_OPTIONS: chartServiceSettings(role).nodeOptions },
          /listening on/,
          path.join(work, `serve-${role}.log`),
        );
        children.push(child);
        running.push([role, child]);
      }
      await new Promise((r) => setTimeout(r, 3000));
      // Some traffic on each (the kernel's whole unary path, 32 calls in flight), then the peak.
      for (const role of SERVICE_NAMES) await loadHttp1(`http://127.0.0.1:${ports[role]}`, { path: "/grpc.health.v1.Health/Check" }, 32, 2);
      for (const [role, child] of running) serve[role] = peakRssMiB(child.process.pid!);
      for (const [, child] of running.reverse()) await child.stop();
      children.length = 0;
    } finally {
      await database.drop();
      // The services created the run's streams on the shared server: remove them.
      await deleteStreams(nats.NATS_URL, [nats.NEXUS_NATS_STREAM, nats.NEXUS_DLQ_STREAM]);
    }
    log(
      `nexus serve peak RSS after start and 2 s of Health/Check at 32 in flight (target < 256 each): ${Object.entries(serve)
        .map(([r, v]) => `${r} ${v.toFixed(0)} MiB`)
        .join(", ")}`,
    );
    return { dev: { afterFirstStart, afterIngest, ...(withoutFlags ? { withoutFlags } : {}) }, serve };
  } finally {
    for (const c of children.reverse()) await c.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
