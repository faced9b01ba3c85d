import { createServer, type Server } from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEgressBroker } from "./egress-broker.js";
import type { SandboxCall } from "./quickjs-sandbox.js";
import { SandboxPool } from "./sandbox-pool.js";

// The worker pool over the compiled worker (dist/, built by vitest's global setup), with a
// real HTTP server on 127.0.0.1:15712 as the declared host.
const WORKER = pathToFileURL(path.resolve("dist/services/modules/sandbox/sandbox-worker.js"));
const HOST = "127.0.0.1:15712";
let server: Server;
let pool: SandboxPool;

beforeAll(async () => {
  server = createServer((req, res) => res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization ?? "" })));
  await new Promise<void>((r) => server.listen(15712, "127.0.0.1", r));
  pool = new SandboxPool(2, WORKER);
});
afterAll(async () => {
  await pool.close();
  server.close();
});

const call = (code: string, limits = { timeoutMs: 1500, cpuMs: 300, memoryBytes: 16 << 20 }): SandboxCall => ({
  code,
  tool: "run",
  input: { n: 2 },
  limits,
  fetch: createEgressBroker({
    hosts: [HOST],
    credentials: new Map([["K", "secret-k"]]),
    maxRequests: 3,
    maxResponseBytes: 1 << 16,
    allowPrivate: [HOST], // the test server is on loopback
  }),
});

describe("the sandbox worker pool", () => {
  it("runs calls on worker threads, with egress through this thread's broker", async () => {
    expect(await pool.run(call("function run(i) { return { twice: i.n * 2 }; }"))).toMatchObject({ kind: "ok", output: { twice: 4 } });
    const r = await pool.run(
      call(
        `async function run(i, ctx) { const res = await ctx.fetch("http://${HOST}/x", { headers: { authorization: ctx.credential("K") } }); return await res.json(); }`,
      ),
    );
    expect(r).toMatchObject({ kind: "ok", output: { path: "/x", auth: "secret-k" } });
    const refused = await pool.run(call(`async function run(i, ctx) { await ctx.fetch("http://127.0.0.1:1/"); return {}; }`));
    expect(refused).toMatchObject({ kind: "failed", reason: "MODULE_EGRESS_DENIED" });
  });

  it("ends a memory bomb QuickJS cannot interrupt by terminating its worker at the hard timeout, without blocking this thread", async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    const started = performance.now();
    const r = await pool.run(call("function run() { const a = []; for (;;) a.push(new Array(100000).fill(1)); }"));
    clearInterval(ticker);
    const elapsed = performance.now() - started;
    expect(["MODULE_TIMEOUT", "MODULE_MEMORY_LIMIT"]).toContain(r.kind === "failed" ? r.reason : "ok");
    expect(elapsed).toBeLessThan(1500 + 500 + 1500);
    // The event loop kept running while the guest ran.
    expect(ticks).toBeGreaterThan(5);
    // The pool replaced the worker and serves the next call.
    expect(await pool.run(call("function run() { return { ok: true }; }"))).toMatchObject({ kind: "ok", output: { ok: true } });
  });

  it("runs more calls than workers by queueing them", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => pool.run({ ...call("function run(i) { return { n: i.n }; }"), input: { n } })),
    );
    expect(results.map((r) => (r.kind === "ok" ? (r.output as { n: number }).n : -1))).toEqual([1, 2, 3, 4, 5]);
  });
});
