import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import pg from "pg";

/**
 * One ratio a benchmark measured in a single run against its own baseline: the numbers that
 * survive a noisy machine, since both sides ran on it at the same time.
 */
export interface BenchRatio {
  /** e.g. "search (PostgreSQL + pgvector, 50k chunks)". */
  bench: string;
  /** What is divided by what, e.g. "Search p95 / raw SQL p95". */
  name: string;
  value: number;
  /** "×" for a plain ratio, "%" to print `value` as a percentage. */
  unit: "×" | "%";
  /** e.g. "≤ 1.3×"; absent when the ratio is reported, not judged. */
  target?: string;
  met?: boolean;
}

/** What one benchmark hands back to `npm run bench`. */
export interface BenchOutcome {
  /** Every measured number (serialised to latest.json). */
  result: unknown;
  ratios: BenchRatio[];
}

/** The machine and the servers a run measured. */
export interface MachineInfo {
  cores: number;
  cpu: string;
  memoryGiB: number;
  os: string;
  node: string;
  /** 1-minute load average when the run started (others' work shares the cores). */
  loadAverageAtStart: number;
  postgres: string | undefined;
  pgvector: string | undefined;
  nats: string | undefined;
}

async function postgresVersions(url: string): Promise<{ postgres?: string; pgvector?: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ version: string; vector: string | null }>(
      "SELECT current_setting('server_version') AS version, (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS vector",
    );
    return { postgres: rows[0]?.version, ...(rows[0]?.vector ? { pgvector: rows[0].vector } : {}) };
  } catch {
    return {};
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function natsVersion(servers: string): Promise<string | undefined> {
  try {
    const nc = await connect({ servers, timeout: 3_000 });
    const version = nc.info?.version;
    await nc.close();
    return version;
  } catch {
    return undefined;
  }
}

/** Cores, memory, Node and the PostgreSQL / pgvector / NATS versions the run talks to. */
export async function machineInfo(options: { databaseUrl: string; natsUrl: string }): Promise<MachineInfo> {
  const versions = await postgresVersions(options.databaseUrl);
  return {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverageAtStart: Math.round(os.loadavg()[0]! * 100) / 100,
    postgres: versions.postgres,
    pgvector: versions.pgvector,
    nats: await natsVersion(options.natsUrl),
  };
}

/** Everything one `npm run bench` measured. */
export interface BenchRun {
  startedAt: string;
  durationSeconds: number;
  /** Arguments and switches of the run (which benches, the large search case). */
  options: Record<string, unknown>;
  machine: MachineInfo;
  ratios: BenchRatio[];
  /** Each benchmark's result object, by name. */
  results: Record<string, unknown>;
  /** Each benchmark's printed report, by name. */
  logs: Record<string, string[]>;
  /** Benchmarks that could not run here, with the reason. */
  skipped: Record<string, string>;
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

function ratioText(r: BenchRatio): string {
  return r.unit === "%" ? `${(r.value * 100).toFixed(0)}%` : `${r.value.toFixed(2)}×`;
}

/** Renders a run as Markdown: the machine, every ratio, then each benchmark's own report. */
export function renderMarkdown(run: BenchRun): string {
  const m = run.machine;
  const lines = [
    "# `npm run bench` results",
    "",
    `Run started ${run.startedAt}, took ${(run.durationSeconds / 60).toFixed(1)} min. How to read these: docs/performance.md.`,
    "",
    "## Machine",
    "",
    "| | |",
    "|---|---|",
    `| cores | ${m.cores} (${m.cpu}) |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| OS | ${m.os} |`,
    `| Node | ${m.node} |`,
    `| PostgreSQL | ${m.postgres ?? "not reachable"} |`,
    `| pgvector | ${m.pgvector ?? "not installed"} |`,
    `| NATS | ${m.nats ?? "not reachable"} |`,
    `| load average at start (1 min) | ${m.loadAverageAtStart} |`,
    `| options | \`${JSON.stringify(run.options)}\` |`,
    "",
    "## Ratios (each measured against its baseline in this run)",
    "",
    "| benchmark | ratio | value | target |",
    "|---|---|---|---|",
    ...run.ratios.map(
      (r) => `| ${r.bench} | ${r.name} | ${ratioText(r)} | ${r.target ? `${r.target}: ${r.met ? "met" : "**NOT met**"}` : "—"} |`,
    ),
    "",
  ];
  for (const [name, reason] of Object.entries(run.skipped)) lines.push(`- **${name}** skipped: ${reason}`);
  if (Object.keys(run.skipped).length > 0) lines.push("");
  for (const [name, log] of Object.entries(run.logs)) {
    lines.push(`## ${name}`, "", "```", ...log, "```", "");
  }
  return lines.join("\n");
}

/** Writes `<name>.json` and `<name>.md` (default `latest`) into `dir` (bench/results in the repository). */
export function writeResults(dir: string, run: BenchRun, name = "latest"): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${name}.json`);
  const markdown = path.join(dir, `${name}.md`);
  writeFileSync(json, `${JSON.stringify(run, bigintSafe, 2)}\n`);
  writeFileSync(markdown, renderMarkdown(run));
  return { json, markdown };
}
