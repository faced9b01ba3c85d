import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEgressBroker, guardedLookup, isNonPublicAddress } from "./egress-broker.js";
import { EgressRefused, runInSandbox, type SandboxCall } from "./quickjs-sandbox.js";

// Escape tests of the code-module sandbox: a real QuickJS WebAssembly runtime, a real HTTP
// server on 127.0.0.1 for the declared host and another for an undeclared one (ports 15710-15711).
const limits = { timeoutMs: 2000, cpuMs: 300, memoryBytes: 16 << 20 };
let allowed: Server;
let forbidden: Server;
let allowedHost = "";
let forbiddenHost = "";
const seen: { url: string; auth: string | undefined }[] = [];

function listen(port: number, handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const s = createServer(handler);
  return new Promise((resolve) => s.listen(port, "127.0.0.1", () => resolve(s)));
}

beforeAll(async () => {
  allowed = await listen(15710, (req, res) => {
    seen.push({ url: req.url ?? "", auth: req.headers.authorization });
    if (req.url === "/slow") return void setTimeout(() => res.end("{}"), 5000);
    if (req.url === "/redirect") {
      res.writeHead(302, { location: `http://${forbiddenHost}/` });
      return void res.end();
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ path: req.url, echoedAuth: req.headers.authorization ?? "" }));
  });
  forbidden = await listen(15711, (_req, res) => {
    seen.push({ url: "FORBIDDEN", auth: undefined });
    res.end("{}");
  });
  allowedHost = `127.0.0.1:${(allowed.address() as AddressInfo).port}`;
  forbiddenHost = `127.0.0.1:${(forbidden.address() as AddressInfo).port}`;
});
afterAll(() => {
  allowed.close();
  forbidden.close();
});

function call(
  code: string,
  tool = "run",
  input: unknown = {},
  secrets = new Map([["API_KEY", "s3cret-value"]]),
): Promise<ReturnType<typeof runInSandbox> extends Promise<infer T> ? T : never> {
  // The test servers are on loopback: the installation setting allows exactly that host.
  const broker = createEgressBroker({
    hosts: [allowedHost],
    credentials: secrets,
    maxRequests: 5,
    maxResponseBytes: 1 << 16,
    allowPrivate: [allowedHost],
  });
  const c: SandboxCall = { code, tool, input, limits, fetch: broker };
  return runInSandbox(c);
}

describe("the QuickJS sandbox", () => {
  it("runs a tool with its input and returns its JSON output", async () => {
    const r = await call("function run(input) { return { sum: input.xs.reduce((a, b) => a + b, 0) }; }", "run", { xs: [1, 2, 3] });
    expect(r).toMatchObject({ kind: "ok", output: { sum: 6 } });
  });

  it("does not let a module pollute the host's prototypes", async () => {
    const r = await call(
      `function run() { Object.prototype.polluted = "yes"; Array.prototype.map = null; return JSON.parse('{"__proto__": {"polluted": "yes"}}'); }`,
    );
    expect(r.kind).toBe("ok");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect([1].map((x) => x + 1)).toEqual([2]);
    // A second call starts from a clean realm.
    expect(await call("function run() { return { p: ({}).polluted ?? null }; }")).toMatchObject({ kind: "ok", output: { p: null } });
  });

  it("stops an infinite loop at its CPU limit with MODULE_TIMEOUT", async () => {
    const r = await call("function run() { for (;;) {} }");
    expect(r).toMatchObject({ kind: "failed", reason: "MODULE_TIMEOUT" });
    expect(r.kind === "failed" && r.message).toMatch(/CPU time/);
  });

  it("stops a memory bomb at its memory limit with MODULE_MEMORY_LIMIT", async () => {
    // (Bombs QuickJS's collector grinds on for seconds are ended by the worker pool: sandbox-pool.test.ts.)
    const s = await call("function run() { let s = 'x'; for (;;) s = s + s; }");
    expect(s).toMatchObject({ kind: "failed", reason: "MODULE_MEMORY_LIMIT" });
    expect(s.kind === "failed" && s.message).toMatch(/went past its 16777216 bytes of memory/);
  });

  it("fails deep recursion as a module error, not a host crash", async () => {
    const r = await call("function f() { return f() + 1; } function run() { return f(); }");
    expect(r).toMatchObject({ kind: "failed", reason: "MODULE_ERROR" });
    expect(r.kind === "failed" && r.message).toMatch(/stack overflow/);
  });

  it("gives the module no process, require, import, file system or timers", async () => {
    const r = await call(
      `function run() { return { env: typeof process, req: typeof require, std: typeof std, os: typeof os, fetch: typeof fetch,
        timers: typeof setTimeout, wasm: typeof WebAssembly }; }`,
    );
    expect(r).toMatchObject({
      kind: "ok",
      output: {
        env: "undefined",
        req: "undefined",
        std: "undefined",
        os: "undefined",
        fetch: "undefined",
        timers: "undefined",
        wasm: "undefined",
      },
    });
    const imp = await call(`async function run() { await import("fs"); return {}; }`);
    expect(imp).toMatchObject({ kind: "failed", reason: "MODULE_ERROR" });
  });

  it("reaches a declared host through the broker, with the credential injected outside the sandbox", async () => {
    const r = await call(
      `async function run(input, ctx) {
         const res = await ctx.fetch("http://" + input.host + "/data?q=1", { headers: { authorization: "Bearer " + ctx.credential("API_KEY") } });
         const body = await res.json();
         return { status: res.status, path: body.path, sawPlaceholder: ctx.credential("API_KEY") };
       }`,
      "run",
      { host: allowedHost },
    );
    expect(r).toMatchObject({ kind: "ok", output: { status: 200, path: "/data?q=1", sawPlaceholder: "{{credential:API_KEY}}" } });
    expect(seen.at(-1)).toEqual({ url: "/data?q=1", auth: "Bearer s3cret-value" });
  });

  it("refuses undeclared hosts, other schemes and redirects out, with MODULE_EGRESS_DENIED", async () => {
    const before = seen.filter((s) => s.url === "FORBIDDEN").length;
    const r = await call(`async function run(i, ctx) { await ctx.fetch("http://${forbiddenHost}/"); return {}; }`);
    expect(r).toMatchObject({ kind: "failed", reason: "MODULE_EGRESS_DENIED" });
    expect(r.kind === "failed" && r.message).toMatch(/not among the module's egress hosts/);
    expect(await call(`async function run(i, ctx) { await ctx.fetch("file:///etc/passwd"); return {}; }`)).toMatchObject({
      reason: "MODULE_EGRESS_DENIED",
    });
    const redirect = await call(
      `async function run(i, ctx) { const r = await ctx.fetch("http://${allowedHost}/redirect"); return { status: r.status }; }`,
    );
    expect(redirect).toMatchObject({ kind: "ok", output: { status: 302 } });
    expect(seen.filter((s) => s.url === "FORBIDDEN").length).toBe(before);
    const undeclared = await call(
      `async function run(i, ctx) { await ctx.fetch("http://${allowedHost}/", { headers: { x: ctx.credential("OTHER") } }); return {}; }`,
    );
    expect(undeclared).toMatchObject({ kind: "failed", reason: "MODULE_EGRESS_DENIED" });
  });

  it("refuses declared hosts that are or resolve to loopback, private or link-local addresses (SSRF)", async () => {
    const port = allowedHost.split(":")[1];
    const hits = seen.length;
    const declared = [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "169.254.169.254", "10.0.0.1", "metadata.google.internal"];
    const broker = createEgressBroker({ hosts: declared, credentials: new Map(), maxRequests: 10, maxResponseBytes: 1 << 16 });
    for (const host of declared) {
      const r = await runInSandbox({
        code: `async function run(i, ctx) { const r = await ctx.fetch("http://${host}/data"); return { status: r.status }; }`,
        tool: "run",
        input: {},
        limits,
        fetch: broker,
      });
      expect(r, host).toMatchObject({ kind: "failed", reason: "MODULE_EGRESS_DENIED" });
      expect(r.kind === "failed" && r.message, host).toMatch(/resolves to .*loopback, private or link-local|does not resolve/);
    }
    expect(seen.length).toBe(hits);
    // The installation setting (NEXUS_MODULES_EGRESS_ALLOW_PRIVATE) lets a named host through.
    const allowed = createEgressBroker({
      hosts: [`localhost:${port}`],
      credentials: new Map(),
      maxRequests: 1,
      maxResponseBytes: 1 << 16,
      allowPrivate: [`localhost:${port}`],
    });
    const ok = await runInSandbox({
      code: `async function run(i, ctx) { const r = await ctx.fetch("http://localhost:${port}/data"); return { status: r.status }; }`,
      tool: "run",
      input: {},
      limits,
      fetch: allowed,
    });
    expect(ok).toMatchObject({ kind: "ok", output: { status: 200 } });
  });

  it("checks the addresses a connection is made to, not only those seen at admission (DNS rebinding)", async () => {
    // A name that passes admission and then resolves to a private address when the connection
    // is made is refused by the connection's own resolver; here the name is `localhost`.
    const lookupOf = (allowPrivate: boolean) =>
      new Promise<unknown>((resolve) =>
        guardedLookup(allowPrivate)("localhost", { all: true }, (err, addresses) => resolve(err ?? addresses)),
      );
    const refused = await lookupOf(false);
    expect(refused).toBeInstanceOf(EgressRefused);
    expect(String((refused as Error).message)).toMatch(/resolved to .* when connecting, a non-public address/);
    expect(await lookupOf(true)).toEqual(
      expect.arrayContaining([expect.objectContaining({ address: expect.stringMatching(/127\.0\.0\.1|::1/) })]),
    );
  });

  it.each([
    ["127.0.0.1", true],
    ["10.20.30.40", true],
    ["172.16.5.4", true],
    ["172.32.0.1", false],
    ["192.168.1.1", true],
    ["169.254.169.254", true],
    ["100.64.0.1", true],
    ["0.0.0.0", true],
    ["::1", true],
    ["::", true],
    ["fe80::1", true],
    ["fd00::1", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:8.8.8.8", false],
    ["8.8.8.8", false],
    ["1.1.1.1", false],
    ["2606:4700:4700::1111", false],
    ["not-an-ip", true],
  ])("classifies %s as non-public: %s", (address, expected) => {
    expect(isNonPublicAddress(address)).toBe(expected);
  });

  it("ends a call waiting on a slow host at its hard timeout", async () => {
    const started = performance.now();
    const r = await call(`async function run(i, ctx) { await ctx.fetch("http://${allowedHost}/slow"); return {}; }`);
    expect(r).toMatchObject({ kind: "failed", reason: "MODULE_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it("reports a thrown error and a missing tool function as module errors", async () => {
    expect(await call(`function run() { throw new TypeError("bad city"); }`)).toMatchObject({
      reason: "MODULE_ERROR",
      message: "TypeError: bad city",
    });
    expect(await call(`function other() {}`)).toMatchObject({
      reason: "MODULE_ERROR",
      message: "Error: the module defines no function run",
    });
    expect(await call(`this is not javascript`)).toMatchObject({ reason: "MODULE_ERROR" });
  });
});
