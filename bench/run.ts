import { fileURLToPath } from "node:url";
import { benchAgent } from "./agent.js";
import { benchAuthAttempts } from "./auth-attempts.js";
import { benchBackupOutcome } from "./backup.js";
import { benchConsole, CONSOLE_BUDGETS } from "./console.js";
import { benchEdge } from "./edge.js";
import { benchEncryptionOutcome } from "./encryption.js";
import { benchEventsOutcome } from "./events.js";
import { benchIngestionBackends } from "./ingestion.js";
import { benchIntegration } from "./integration.js";
import { benchModules } from "./modules.js";
import { benchPartitioningOutcome } from "./partitioning.js";
import { type BenchBackend, benchServerUrl } from "./rag-setup.js";
import { benchRateLimits } from "./rate-limits.js";
import { benchRehydrationOutcome } from "./rehydration.js";
import { type BenchOutcome, type BenchRun, machineInfo, writeResults } from "./results.js";
import { benchMemory, benchRpc } from "./rpc.js";
import { benchSearchCases } from "./search.js";
import { benchSqlDestination } from "./sql-destination.js";

/**
 * `npm run bench [--large] [name …]`: every benchmark (or the named ones), one after the
 * other, each printing its measurements and its ratio against the baseline it measures in the
 * same run; then `bench/results/latest.json` and `latest.md` with the machine and every ratio.
 * Timings live here, never in tests. Add a benchmark by adding one entry to the list.
 *
 * `--large` (or NEXUS_BENCH_LARGE=1) adds the 200k-chunk search case on PostgreSQL (several
 * minutes on two cores) and writes `latest-…-large.*` instead of `latest.*`; a run of named
 * benchmarks writes `latest-<names>.*`. Benchmarks on PostgreSQL use NEXUS_BENCH_DATABASE_URL or the local server,
 * on NATS NEXUS_BENCH_NATS_URL or the local server; without them they are skipped and say so.
 * NEXUS_BENCH_BACKENDS=postgres (or pglite) runs the ingestion and search cases on one engine.
 */
const args = process.argv.slice(2);
const large = args.includes("--large") || process.env.NEXUS_BENCH_LARGE === "1";
const only = args.filter((a) => !a.startsWith("--"));
const natsUrl = process.env.NEXUS_BENCH_NATS_URL || "nats://127.0.0.1:4222";

const started = new Date();
const machine = await machineInfo({ databaseUrl: benchServerUrl(), natsUrl });
const postgres = machine.postgres !== undefined;
// NEXUS_BENCH_BACKENDS=postgres (or pglite) narrows the ingestion and search cases to one engine.
const wanted = (process.env.NEXUS_BENCH_BACKENDS ?? "pglite,postgres").split(",").map((b) => b.trim());
const backends = (postgres ? (["pglite", "postgres"] as const) : (["pglite"] as const)).filter((b): b is BenchBackend =>
  wanted.includes(b),
);
// PGlite at 200k chunks takes a quarter of an hour here (one WASM thread builds the graph):
// only with NEXUS_BENCH_LARGE_PGLITE=1.
const largePglite = process.env.NEXUS_BENCH_LARGE_PGLITE === "1";
// Search needs vectors: a PostgreSQL without pgvector is left out of it (and said so).
const searchBackends = backends.filter((b) => b === "pglite" || machine.pgvector !== undefined);
const searchCases = [
  ...searchBackends.map((backend) => ({ backend, chunks: 50_000 })),
  ...(large ? searchBackends.filter((b) => b === "postgres" || largePglite).map((backend) => ({ backend, chunks: 200_000 })) : []),
];
const skippedNoPostgres = `no PostgreSQL at ${benchServerUrl()} (set NEXUS_BENCH_DATABASE_URL)`;

type Log = (line: string) => void;
const BENCHES: ReadonlyArray<[name: string, run: (log: Log) => Promise<BenchOutcome | string>]> = [
  ["ingestion", (log) => benchIngestionBackends(backends, log)],
  ["search", (log) => benchSearchCases(searchCases, log)],
  ["encryption", (log) => benchEncryptionOutcome(postgres && backends.includes("postgres") ? "postgres" : backends[0], log)],
  ["backup", (log) => (postgres ? benchBackupOutcome(log) : Promise.resolve(skippedNoPostgres))],
  [
    "agent",
    async (log) => {
      const r = await benchAgent({ log });
      const bench = `agent (${process.env.NEXUS_BENCH_DATABASE_URL ? "PostgreSQL" : "PGlite"})`;
      return {
        result: r,
        ratios: [
          { bench, name: "Run first token p95 / Search p95", value: r.timeToFirstToken.p95 / r.search.p95, unit: "×" },
          {
            bench,
            name: "runs/s at concurrency 16 / concurrency 1",
            value: r.runsPerSecond.concurrency16 / r.runsPerSecond.concurrency1,
            unit: "×",
          },
        ],
      };
    },
  ],
  [
    "rate-limits",
    async (log) => {
      if (!postgres || !machine.nats) return !postgres ? skippedNoPostgres : `no NATS at ${natsUrl}`;
      const r = await benchRateLimits({ log });
      return {
        result: r,
        ratios: r.runs.map((x) => ({
          bench: "rate-limits",
          name: `PostgreSQL takes/s / NATS KV takes/s, concurrency ${x.concurrency}`,
          value: x.ratio,
          unit: "×" as const,
        })),
      };
    },
  ],
  ["events", (log) => benchEventsOutcome(log)],
  [
    "rpc",
    async (log) => {
      const rows = await benchRpc({ log });
      return {
        result: rows,
        ratios: rows
          .filter((r) => !r.target.startsWith("bare"))
          .flatMap((r) => {
            // Issue 11's targets: unauthenticated ≥ 85 %, authenticated unary ≥ 70 % of bare connect-node.
            const goal = r.target.includes("WhoAmI") ? 0.7 : 0.85;
            const verdict = (value: number) => ({ target: `≥ ${goal * 100}%`, met: value >= goal });
            return [
              {
                bench: `rpc (${r.protocol})`,
                name: `${r.target} RPS / bare connect-node RPS`,
                value: r.ratio,
                unit: "%" as const,
                ...verdict(r.ratio),
              },
              {
                bench: `rpc (${r.protocol})`,
                name: `bare connect-node CPU per call / ${r.target} CPU per call`,
                value: r.cpuRatio,
                unit: "%" as const,
                ...verdict(r.cpuRatio),
              },
            ];
          }),
      };
    },
  ],
  ["memory", async (log) => ({ result: await benchMemory({ log }), ratios: [] })],
  [
    "auth-attempts",
    async (log) => {
      const r = await benchAuthAttempts({ log });
      return {
        result: r,
        ratios: [
          {
            bench: "auth-attempts (nexus dev, PGlite)",
            name: "CPU per refused call, limiter on / limiter off",
            value: r.cpuRatio,
            unit: "%" as const,
          },
        ],
      };
    },
  ],
  ["rehydration", (log) => benchRehydrationOutcome(log)],
  ["partitioning", (log) => (postgres ? benchPartitioningOutcome(log) : Promise.resolve(skippedNoPostgres))],
  [
    "modules",
    async (log) => {
      const r = await benchModules({ log });
      const bench = "modules (PGlite)";
      return {
        result: r,
        ratios: [
          {
            bench,
            name: "QuickJS warm call p50 / node:vm new-context call p50",
            value: r.sandbox.warm.p50 / r.sandbox.nodeVm.p50,
            unit: "×",
          },
          {
            bench,
            name: "QuickJS warm call p99 / node:vm new-context call p99",
            value: r.sandbox.warm.p99 / r.sandbox.nodeVm.p99,
            unit: "×",
          },
          { bench, name: "QuickJS cold start p50 / warm call p50", value: r.sandbox.cold.p50 / r.sandbox.warm.p50, unit: "×" },
          {
            bench,
            name: "QuickJS warm call on the worker pool p50 / node:vm new-context call p50",
            value: r.sandbox.pooled.p50 / r.sandbox.nodeVm.p50,
            unit: "×",
          },
          {
            bench,
            name: "QuickJS warm call on the worker pool p99 / node:vm new-context call p99",
            value: r.sandbox.pooled.p99 / r.sandbox.nodeVm.p99,
            unit: "×",
          },
          {
            bench,
            name: "tool-call overhead in a Run (Run with one tool − Run without, p50) / CallTool RPC p50",
            value: (r.run.withTool.p50 - r.run.withoutTool.p50) / r.run.callTool.p50,
            unit: "×",
          },
          { bench, name: "Run with one tool call p99 / Run without p99", value: r.run.withTool.p99 / r.run.withoutTool.p99, unit: "×" },
        ],
      };
    },
  ],
  ["sql-destination", (log) => (postgres ? benchSqlDestination({ log }) : Promise.resolve(skippedNoPostgres))],
  ["integration", (log) => (postgres ? benchIntegration({ log }) : Promise.resolve(skippedNoPostgres))],
  [
    "console",
    async (log) => {
      const r = await benchConsole(log);
      if (typeof r === "string") return r;
      const bench = "console (chromium, nexus dev)";
      return {
        result: r,
        ratios: [
          {
            bench,
            name: "initial JS gzipped / 300 KiB budget",
            value: r.initialJsGzipKiB / CONSOLE_BUDGETS.initialJsGzipKiB,
            unit: "%",
            target: "≤ 100%",
            met: r.initialJsGzipKiB <= CONSOLE_BUDGETS.initialJsGzipKiB,
          },
          {
            bench,
            name: "first screen interactive / 1 s budget",
            value: r.firstScreenMs.median / CONSOLE_BUDGETS.firstScreenMs,
            unit: "%",
            target: "≤ 100%",
            met: r.firstScreenMs.median <= CONSOLE_BUDGETS.firstScreenMs,
          },
          { bench, name: "first screen / plain page load", value: r.firstScreenMs.median / r.plainPageMs.median, unit: "×" },
        ],
      };
    },
  ],
  ["edge", (log) => benchEdge({ log })],
];

const run: BenchRun = {
  startedAt: started.toISOString(),
  durationSeconds: 0,
  options: { large, largePglite, only, backends },
  machine,
  ratios: [],
  results: {},
  logs: {},
  skipped: {},
};
console.log(
  `machine: ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres ?? "-"} (pgvector ${machine.pgvector ?? "-"}), NATS ${machine.nats ?? "-"}, load ${machine.loadAverageAtStart}`,
);
for (const [name, bench] of BENCHES) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`\n== ${name} ==`);
  const lines: string[] = [];
  const log: Log = (line) => {
    lines.push(line);
    console.log(line);
  };
  if (name === "search" && searchBackends.length < backends.length) {
    run.skipped["search on PostgreSQL"] = "the server has no pgvector (install it: see docs/performance.md)";
  }
  const outcome = await bench(log);
  if (typeof outcome === "string") {
    run.skipped[name] = outcome;
    console.log(`skipped: ${outcome}`);
    continue;
  }
  run.logs[name] = lines;
  run.results[name] = outcome.result;
  run.ratios.push(...outcome.ratios);
}
run.durationSeconds = (Date.now() - started.getTime()) / 1000;
// The full default run is `latest`; a partial or large run gets its own name, so it never
// replaces the full picture.
const name = only.length === 0 && !large ? "latest" : `latest-${[...only, ...(large ? ["large"] : [])].join("-")}`;
const written = writeResults(fileURLToPath(new URL("../../bench/results/", import.meta.url)), run, name);
console.log(`\nresults: ${written.json}, ${written.markdown}`);
