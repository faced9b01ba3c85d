import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import vm from "node:vm";
import { newQuickJSWASMModule } from "quickjs-emscripten";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { authSettingsFromConfig } from "../services/auth/auth-settings.js";
import { bootstrapDevInstallation } from "../services/auth/bootstrap.js";
import { createAuthApplication } from "../services/auth/create-auth-application.js";
import { DEMO_CORPUS_ID, seedDemoCorpus } from "../services/cli/demo/demo-corpus.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { loadConfig, SERVICE_NAMES } from "../services/kernel/config.js";
import { runInSandbox, type SandboxCall } from "../services/modules/sandbox/quickjs-sandbox.js";
import { SandboxPool } from "../services/modules/sandbox/sandbox-pool.js";
import { startNexus } from "../services/runtime/start-nexus.js";
import { type Percentiles, percentiles } from "./rag-setup.js";

/**
 * Modules benchmark (issue 19). Sandbox: a tool call in QuickJS (WebAssembly) — cold (a fresh
 * WebAssembly module loaded, then one call), warm (the process's module, a fresh runtime and
 * context per call) and warm on the worker pool (as CallTool runs it) — against the same
 * function run in a fresh `node:vm` context, measured in the same run. Run: the whole mesh in this process (PGlite,
 * `nexus dev`'s services), a module built from the template, approved and activated; a Run
 * with one explicit tool call against the same Run without one, and the bare CallTool RPC:
 * the difference of the Runs is the tool-call overhead inside a Run.
 */

const CODE = `function compute(input) {
  const values = input.values;
  return { result: values.reduce((a, b) => a + b, 0) / values.length, data: values.map((value, i) => ({ label: String(i + 1), value })), chart: { type: "bar", x: "label", y: "value" } };
}`;
const INPUT = { values: [3, 1, 4, 1, 5, 9, 2, 6] };
const LIMITS = { timeoutMs: 5000, cpuMs: 1000, memoryBytes: 32 << 20 };
const refuse = async () => {
  throw new Error("no egress in the benchmark");
};

/** What the modules benchmark measured. */
export interface ModulesBenchResult {
  sandbox: { cold: Percentiles; warm: Percentiles; pooled: Percentiles; nodeVm: Percentiles };
  run: { withoutTool: Percentiles; withTool: Percentiles; callTool: Percentiles };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function runTime(client: NexusClient, withTool: boolean): Promise<number> {
  return time(async () => {
    for await (const _ of client.agent.run({
      corpusId: DEMO_CORPUS_ID,
      message: "How do I rotate an API key?",
      ...(withTool ? { toolCalls: [{ module: "stats", tool: "compute", input: INPUT }] } : {}),
    })) {
      // drain
    }
  });
}

/** Runs the modules benchmark. */
export async function benchModules(options: { samples?: number; log?: (line: string) => void } = {}): Promise<ModulesBenchResult> {
  const log = options.log ?? console.log;
  const samples = options.samples ?? 100;
  const call: SandboxCall = { code: CODE, tool: "compute", input: INPUT, limits: LIMITS, fetch: refuse };

  const cold: number[] = [];
  for (let i = 0; i < 15; i++) cold.push(await time(async () => runInSandbox({ ...call, wasm: await newQuickJSWASMModule() })));
  for (let i = 0; i < 20; i++) await runInSandbox(call);
  const warm: number[] = [];
  const nodeVm: number[] = [];
  const script = new vm.Script(`${CODE}\nJSON.stringify(compute(JSON.parse(input)))`);
  for (let i = 0; i < samples * 5; i++) {
    warm.push(await time(() => runInSandbox(call)));
    nodeVm.push(await time(async () => JSON.parse(script.runInNewContext({ input: JSON.stringify(INPUT) }, { timeout: 1000 }) as string)));
  }
  // As a modules replica runs it: on a worker thread of the pool (message passing included).
  const pool = SandboxPool.beside(1);
  if (!pool) throw new Error("run the benchmark from the build (npm run bench): the sandbox worker is missing");
  const pooled: number[] = [];
  try {
    for (let i = 0; i < 20; i++) await pool.run(call);
    for (let i = 0; i < samples * 5; i++) pooled.push(await time(() => pool.run(call)));
  } finally {
    await pool.close();
  }
  const sandbox = { cold: percentiles(cold), warm: percentiles(warm), pooled: percentiles(pooled), nodeVm: percentiles(nodeVm) };
  log(`sandbox cold start p50 ${sandbox.cold.p50.toFixed(2)} ms p99 ${sandbox.cold.p99.toFixed(2)} ms`);
  log(`sandbox warm call p50 ${sandbox.warm.p50.toFixed(3)} ms p99 ${sandbox.warm.p99.toFixed(3)} ms`);
  log(`sandbox warm call on the worker pool p50 ${sandbox.pooled.p50.toFixed(3)} ms p99 ${sandbox.pooled.p99.toFixed(3)} ms`);
  log(`node:vm new context p50 ${sandbox.nodeVm.p50.toFixed(3)} ms p99 ${sandbox.nodeVm.p99.toFixed(3)} ms (baseline)`);

  const dataDir = mkdtempSync(path.join(tmpdir(), "nexus-bench-modules-"));
  const config = loadConfig({
    ...process.env,
    NEXUS_HOST: "127.0.0.1",
    NEXUS_PORT: "0",
    NEXUS_DATA_DIR: dataDir,
    LOG_LEVEL: "error",
    DATABASE_URL: "",
    NATS_URL: "",
    NEXUS_RATE_LIMIT_ENABLED: "false",
  });
  const nexus = await startNexus({ config, services: SERVICE_NAMES });
  try {
    const auth = createAuthApplication({
      db: nexus.db,
      logger: nexus.logger,
      clock: () => new Date(),
      settings: authSettingsFromConfig(config),
    });
    const first = await bootstrapDevInstallation(auth);
    if (!first) throw new Error("fresh data directory already bootstrapped");
    const baseUrl = `http://127.0.0.1:${nexus.address.port}`;
    const platform = createNexusClient({ baseUrl, apiKey: first.platformKey.plaintext, protocol: "grpc" });
    const { tenant } = await platform.auth.createTenant({
      slug: `bench-modules-${process.pid}`,
      displayName: "Bench",
      plan: Plan.ENTERPRISE,
    });
    const key = await platform.auth.createApiKey({ tenantId: tenant!.id, name: "bench", role: Role.OWNER });
    const client = createNexusClient({ baseUrl, apiKey: key.plaintextKey, protocol: "grpc" });
    await seedDemoCorpus(client);
    await client.modules.buildModule({ name: "stats", version: "1.0.0", spec: "the average of the numbers" });
    await client.modules.reviewModuleVersion({ name: "stats", version: "1.0.0", approve: true });
    await client.modules.activateModuleVersion({ name: "stats", version: "1.0.0" });
    for (let i = 0; i < 10; i++) {
      await runTime(client, false);
      await runTime(client, true);
    }
    const withoutTool: number[] = [];
    const withTool: number[] = [];
    const callTool: number[] = [];
    for (let i = 0; i < samples; i++) {
      // Alternate the order so neither side always runs on a warmer cache.
      if (i % 2 === 0) {
        withoutTool.push(await runTime(client, false));
        withTool.push(await runTime(client, true));
      } else {
        withTool.push(await runTime(client, true));
        withoutTool.push(await runTime(client, false));
      }
      callTool.push(await time(() => client.modules.callTool({ module: "stats", tool: "compute", input: INPUT })));
    }
    const run = { withoutTool: percentiles(withoutTool), withTool: percentiles(withTool), callTool: percentiles(callTool) };
    log(`Run without tool p50 ${run.withoutTool.p50.toFixed(2)} ms p99 ${run.withoutTool.p99.toFixed(2)} ms`);
    log(`Run with one tool call p50 ${run.withTool.p50.toFixed(2)} ms p99 ${run.withTool.p99.toFixed(2)} ms`);
    log(`CallTool RPC p50 ${run.callTool.p50.toFixed(2)} ms p99 ${run.callTool.p99.toFixed(2)} ms`);
    return { sandbox, run };
  } finally {
    await nexus.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
