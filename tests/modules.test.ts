import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type RunResponse, RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { ModuleKind, ModuleVersionStatus } from "../gen/nexus/modules/v1/module_pb.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { newMasterKeyLine } from "../services/kernel/keyring/index.js";
import { revenueLedgerHandler } from "../services/modules/marketplace.js";
import { type AgentMesh, ingestCorpus, runEvents, startAgentMesh } from "./support/agent-mesh.js";
import { failure } from "./support/auth-harness.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { NEXUS_BIN, type NexusProcess, startNexus } from "./support/nexus-process.js";
import { type OpenAiStandin, startOpenAiStandin } from "./support/openai-standin.js";
import { describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

// The modules service end to end: `nexus dev` (every service) plus a second process
// `nexus serve --service modules` on the same PostgreSQL and NATS, a real HTTP API on
// 127.0.0.1:15720 for the modules to call and another on 15721 that no module declares.
// The `openai` provider talks to a LOCAL STAND-IN for a cloud LLM (tests/support/openai-standin.ts)
// that speaks the Chat Completions tool-call protocol: no cloud model can run here.

const API_PORT = 15720;
const OTHER_PORT = 15721;
const SECRET = "sk-live-0123456789abcdef";

describeWithPostgresAndNats("modules: build, test, approve, activate, call, contain, roll back", () => {
  let mesh: AgentMesh;
  let replicaB: NexusProcess;
  let owner: NexusClient;
  let viaB: NexusClient;
  let api: Server;
  let other: Server;
  const apiHits: { url: string; auth: string | undefined }[] = [];
  let otherHits = 0;
  let standin: OpenAiStandin;
  const token = uniqueToken("modules");

  beforeAll(async () => {
    standin = await startOpenAiStandin();
    api = createServer((req, res) => {
      apiHits.push({ url: req.url ?? "", auth: req.headers.authorization });
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          city: new URL(req.url ?? "/", "http://x").searchParams.get("city"),
          tempC: 21,
          echo: req.headers.authorization ?? "",
        }),
      );
    });
    other = createServer((_req, res) => {
      otherHits += 1;
      res.end("{}");
    });
    await new Promise<void>((r) => api.listen(API_PORT, "127.0.0.1", r));
    await new Promise<void>((r) => other.listen(OTHER_PORT, "127.0.0.1", r));
    const shared = {
      NATS_URL: TEST_NATS_URL,
      NEXUS_SUBJECT_PREFIX: token,
      NEXUS_NATS_STREAM: suiteStreams(token).stream,
      NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
      NEXUS_MASTER_KEYS: newMasterKeyLine(1),
      NEXUS_MODULES_CPU_MS: "300",
      NEXUS_MODULES_TIMEOUT_MS: "2000",
      NEXUS_MODULES_MEMORY_BYTES: String(16 << 20),
      NEXUS_OPENAI_BASE_URL: standin.baseUrl,
      // The test APIs and the mesh (a gRPC tool's target) are on loopback: 127.0.0.1 is allowed
      // past the SSRF guard by the installation setting; "localhost" is not.
      NEXUS_MODULES_EGRESS_ALLOW_PRIVATE: "127.0.0.1",
    };
    mesh = await startAgentMesh(shared);
    replicaB = await startNexus({
      args: ["serve", "--service", "modules", "--port", "0", "--host", "127.0.0.1"],
      env: { ...shared, DATABASE_URL: mesh.databaseUrl, NEXUS_AUTH_URL: mesh.url, LOG_LEVEL: "warn" },
    });
    owner = mesh.client();
    viaB = createNexusClient({ baseUrl: replicaB.url.replace("localhost", "127.0.0.1"), apiKey: mesh.ownerKey });
  }, 180_000);

  afterAll(async () => {
    await replicaB?.stop();
    await mesh?.close();
    api?.close();
    other?.close();
    await standin?.close();
    await deleteSuiteStreams(token);
  });

  it("builds a module from a spec; its generated tests pass in the sandbox; an admin approves it; it is called", async () => {
    const built = await owner.modules.buildModule({
      name: "stats",
      version: "1.0.0",
      spec: "Compute the average of a list of numbers and chart them.",
    });
    expect(built.draftedBy).toBe("template");
    expect(built.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    expect(built.version?.testResults.map((t) => t.passed)).toEqual([true, true, true]);
    expect(built.version?.code).toContain("function compute");

    // Not callable before approval and activation.
    expect(await failure(() => owner.modules.callTool({ module: "stats", tool: "compute", input: { values: [1, 2] } }))).toMatchObject({
      code: "FailedPrecondition",
      reason: "MODULE_NOT_ACTIVE",
    });
    expect(await failure(() => owner.modules.activateModuleVersion({ name: "stats", version: "1.0.0" }))).toMatchObject({
      code: "FailedPrecondition",
      reason: "FAILED_PRECONDITION",
    });
    // An editor may build but not review.
    const editor = await mesh.newTenant("pro", "editor");
    expect(
      await failure(() => mesh.client(editor.key).modules.reviewModuleVersion({ name: "stats", version: "1.0.0", approve: true })),
    ).toMatchObject({
      code: "PermissionDenied",
    });

    const reviewed = await owner.modules.reviewModuleVersion({ name: "stats", version: "1.0.0", approve: true, feedback: "looks right" });
    expect(reviewed.version?.status).toBe(ModuleVersionStatus.APPROVED);
    await owner.modules.activateModuleVersion({ name: "stats", version: "1.0.0" });
    const out = await owner.modules.callTool({ module: "stats", tool: "compute", input: { values: [2, 4, 9], labels: ["a", "b", "c"] } });
    expect(out.moduleVersion).toBe("1.0.0");
    expect(out.output).toMatchObject({
      result: 5,
      chart: { type: "bar" },
      data: [
        { label: "a", value: 2 },
        { label: "b", value: 4 },
        { label: "c", value: 9 },
      ],
    });
    expect(await failure(() => owner.modules.callTool({ module: "stats", tool: "compute", input: { values: "nope" } }))).toMatchObject({
      code: "InvalidArgument",
      reason: "TOOL_INPUT_INVALID",
    });

    // Every step is on the module's stream (and so in the audit trail).
    const events = await mesh.db.query<{ type: string }>(
      "SELECT type FROM platform.events WHERE stream_id LIKE 'module-%-stats' ORDER BY version",
    );
    expect(events.rows.map((r) => r.type)).toEqual([
      "nexus.events.v1.ModuleVersionSubmitted",
      "nexus.events.v1.ModuleVersionReviewed",
      "nexus.events.v1.ModuleVersionActivated",
    ]);
  });

  it("records failing tests, refuses to approve them, and requires feedback to reject", async () => {
    const manifest = {
      name: "broken",
      version: "1.0.0",
      kind: ModuleKind.CODE,
      tools: [{ name: "run", inputSchema: { type: "object" } }],
      tests: [{ name: "returns 2", tool: "run", input: {}, expect: { n: 2 } }],
    };
    const v = await owner.modules.submitModuleVersion({ manifest, code: "function run() { return { n: 3 }; }" });
    expect(v.version?.status).toBe(ModuleVersionStatus.TESTS_FAILED);
    expect(v.version?.testResults[0]?.message).toBe("/n: expected 2, got 3");
    expect(await failure(() => owner.modules.reviewModuleVersion({ name: "broken", version: "1.0.0", approve: true }))).toMatchObject({
      code: "FailedPrecondition",
    });
    const fixed = await owner.modules.submitModuleVersion({
      manifest: { ...manifest, version: "1.0.1" },
      code: "function run() { return { n: 2 }; }",
    });
    expect(fixed.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    expect(await failure(() => owner.modules.reviewModuleVersion({ name: "broken", version: "1.0.1", approve: false }))).toMatchObject({
      code: "InvalidArgument",
    });
    const rejected = await owner.modules.reviewModuleVersion({
      name: "broken",
      version: "1.0.1",
      approve: false,
      feedback: "name it better",
    });
    expect(rejected.version).toMatchObject({ status: ModuleVersionStatus.REJECTED, reviewFeedback: "name it better" });
    expect(
      await failure(() =>
        owner.modules.submitModuleVersion({ manifest: { ...manifest, version: "1.0.1" }, code: "function run() { return { n: 2 }; }" }),
      ),
    ).toMatchObject({
      code: "AlreadyExists",
    });
    expect(
      await failure(() =>
        owner.modules.submitModuleVersion({
          manifest: { ...manifest, version: "2.0.0", tools: [{ name: "run", inputSchema: { type: "nonsense" } }] },
          code: "function run() {}",
        }),
      ),
    ).toMatchObject({
      code: "InvalidArgument",
      reason: "MANIFEST_INVALID",
    });
  });

  it("runs a TypeScript module: types stripped at submit, tests pass, approved, called; the source kept for review", async () => {
    const code = [
      "interface Totals { sum: number; count: number }",
      "function total(values: number[]): Totals {",
      "  return { sum: values.reduce((a: number, b: number) => a + b, 0), count: values.length };",
      "}",
      "async function summarize(input: { values: number[] }): Promise<Totals & { mean: number }> {",
      "  const t: Totals = total(input.values);",
      "  return { ...t, mean: t.count === 0 ? 0 : t.sum / t.count };",
      "}",
    ].join("\n");
    const manifest = {
      name: "typed",
      version: "1.0.0",
      kind: ModuleKind.CODE,
      language: "typescript",
      tools: [{ name: "summarize", inputSchema: { type: "object" } }],
      tests: [{ name: "sums", tool: "summarize", input: { values: [1, 2, 3] }, expect: { sum: 6, count: 3, mean: 2 } }],
    };
    const v = await owner.modules.submitModuleVersion({ manifest, code });
    expect(v.version?.testResults[0]).toMatchObject({ passed: true });
    expect(v.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    const read = await owner.modules.getModule({ name: "typed" });
    expect(read.module?.versions[0]?.code).toBe(code);
    await owner.modules.reviewModuleVersion({ name: "typed", version: "1.0.0", approve: true });
    await owner.modules.activateModuleVersion({ name: "typed", version: "1.0.0" });
    const out = await owner.modules.callTool({ module: "typed", tool: "summarize", input: { values: [2, 4, 9] } });
    expect(out.output).toEqual({ sum: 15, count: 3, mean: 5 });

    const broken = await failure(() =>
      owner.modules.submitModuleVersion({
        manifest: { ...manifest, version: "1.0.1" },
        code: "function summarize(input: { values: number[] }) {\n  const n: = input.values.length;\n  return { n };\n}",
      }),
    );
    expect(broken).toMatchObject({ code: "InvalidArgument", reason: "MANIFEST_INVALID" });
    expect(broken.message).toContain("line 2");
    // The same type annotations as JavaScript are a syntax error in the sandbox: the language matters.
    const asJs = await owner.modules.submitModuleVersion({ manifest: { ...manifest, version: "1.0.2", language: "javascript" }, code });
    expect(asJs.version?.status).toBe(ModuleVersionStatus.TESTS_FAILED);
  });

  it("keeps credentials sealed, injects them at the broker, and never returns them", async () => {
    await owner.modules.setCredential({ name: "WEATHER_KEY", value: SECRET });
    const listed = await owner.modules.listCredentials({});
    expect(listed.credentials.map((c) => c.name)).toEqual(["WEATHER_KEY"]);
    expect(JSON.stringify(listed, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(SECRET);
    const stored = await mesh.db.query<{ entries: unknown }>("SELECT entries FROM modules.credentials");
    expect(JSON.stringify(stored.rows)).not.toContain(SECRET);
    const events = await mesh.db.query<{ payload: unknown }>(
      "SELECT payload FROM platform.events WHERE stream_id LIKE 'module_credentials-%'",
    );
    expect(events.rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(events.rows)).not.toContain(SECRET);
    expect(await failure(() => owner.modules.setCredential({ name: "BAD", value: "line\nbreak" }))).toMatchObject({
      code: "InvalidArgument",
    });

    const manifest = {
      name: "weather",
      version: "1.0.0",
      kind: ModuleKind.HTTP,
      credentials: ["WEATHER_KEY"],
      egressHosts: [`127.0.0.1:${API_PORT}`],
      tools: [
        {
          name: "current",
          inputSchema: { type: "object", required: ["city"], properties: { city: { type: "string" } } },
          outputSchema: { type: "object", required: ["tempC"] },
          http: {
            method: "GET",
            url: `http://127.0.0.1:${API_PORT}/weather?city={city}`,
            headers: { authorization: "Bearer {{credential:WEATHER_KEY}}" },
          },
        },
      ],
      tests: [{ name: "Oslo", tool: "current", input: { city: "Oslo" }, expect: { city: "Oslo", tempC: 21 } }],
    };
    const v = await owner.modules.submitModuleVersion({ manifest });
    expect(v.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    await owner.modules.reviewModuleVersion({ name: "weather", version: "1.0.0", approve: true });
    await owner.modules.activateModuleVersion({ name: "weather", version: "1.0.0" });
    const out = await owner.modules.callTool({ module: "weather", tool: "current", input: { city: "Bergen" } });
    expect(apiHits.at(-1)).toEqual({ url: "/weather?city=Bergen", auth: `Bearer ${SECRET}` });
    // The API echoed the header; the secret does not come back.
    expect(out.output).toMatchObject({ city: "Bergen", tempC: 21, echo: "Bearer [REDACTED]" });
    expect(JSON.stringify(out.output)).not.toContain(SECRET);
    expect(mesh.process.output()).not.toContain(SECRET);
  });

  it("contains a malicious module: limits, undeclared hosts, env and other tenants", async () => {
    const code = `
      function ok() { return { fine: true }; }
      function spin() { for (;;) {} }
      function hog() { const a = []; for (;;) a.push(new Array(100000).fill(1)); }
      async function probe(i, ctx) { await ctx.fetch("http://127.0.0.1:${OTHER_PORT}/"); return {}; }
      function env() { return { process: typeof process, require: typeof require, globals: Object.getOwnPropertyNames(globalThis).filter((n) => /process|require|std|os|fetch|fs/i.test(n)) }; }
      function pollute() { Object.prototype.isAdmin = true; return JSON.parse('{"__proto__": {"isAdmin": true}}'); }`;
    const tool = (name: string) => ({ name, inputSchema: { type: "object" } });
    const manifest = {
      name: "evil",
      version: "1.0.0",
      kind: ModuleKind.CODE,
      egressHosts: [`127.0.0.1:${API_PORT}`],
      tools: ["ok", "spin", "hog", "probe", "env", "pollute"].map(tool),
      tests: [{ name: "ok", tool: "ok", input: {}, expect: { fine: true } }],
    };
    const v = await owner.modules.submitModuleVersion({ manifest, code });
    expect(v.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    await owner.modules.reviewModuleVersion({ name: "evil", version: "1.0.0", approve: true });
    await owner.modules.activateModuleVersion({ name: "evil", version: "1.0.0" });
    const call = (t: string) => owner.modules.callTool({ module: "evil", tool: t, input: {} });
    expect(await failure(() => call("spin"))).toMatchObject({ code: "DeadlineExceeded", reason: "MODULE_TIMEOUT" });
    // Near its memory limit QuickJS's collector can take seconds inside one native call, out of
    // the interrupt handler's reach: the worker running it is terminated at the hard timeout.
    const hogStarted = performance.now();
    const hog = await failure(() => call("hog"));
    expect(["DeadlineExceeded MODULE_TIMEOUT", "ResourceExhausted MODULE_MEMORY_LIMIT"]).toContain(`${hog.code} ${hog.reason}`);
    expect(performance.now() - hogStarted).toBeLessThan(2000 + 500 + 1500);
    const probe = await failure(() => call("probe"));
    expect(probe).toMatchObject({ code: "PermissionDenied", reason: "MODULE_EGRESS_DENIED" });
    expect(probe.message).toContain(`host 127.0.0.1:${OTHER_PORT} is not among the module's egress hosts`);
    expect(otherHits).toBe(0);
    // A declared host name that resolves to loopback, not allowed by the installation, is refused.
    const ssrf = await owner.modules.submitModuleVersion({
      manifest: {
        name: "zssrf",
        version: "1.0.0",
        kind: ModuleKind.CODE,
        egressHosts: [`localhost:${API_PORT}`],
        tools: [tool("peek")],
        tests: [{ name: "peeks", tool: "peek", input: {}, expect: { status: 200 } }],
      },
      code: `async function peek(i, ctx) { const r = await ctx.fetch("http://localhost:${API_PORT}/weather"); return { status: r.status }; }`,
    });
    expect(ssrf.version?.status).toBe(ModuleVersionStatus.TESTS_FAILED);
    expect(ssrf.version?.testResults[0]?.message).toMatch(
      /MODULE_EGRESS_DENIED.*resolves to .*(127\.0\.0\.1|::1).*NEXUS_MODULES_EGRESS_ALLOW_PRIVATE/,
    );
    expect((await call("env")).output).toEqual({ process: "undefined", require: "undefined", globals: [] });
    expect(await failure(() => call("pollute"))).toMatchObject({ reason: "TOOL_OUTPUT_INVALID" });
    // The process is unharmed and still answers.
    expect((await call("ok")).output).toEqual({ fine: true });
    // Another tenant cannot see or call it, nor read this tenant's credentials.
    const stranger = await mesh.newTenant("pro", "owner");
    const other = mesh.client(stranger.key);
    expect(await failure(() => other.modules.callTool({ module: "evil", tool: "ok", input: {} }))).toMatchObject({ code: "NotFound" });
    expect(await failure(() => other.modules.getModule({ name: "weather" }))).toMatchObject({ code: "NotFound" });
    expect((await other.modules.listCredentials({})).credentials).toEqual([]);
    expect((await other.modules.listModules({})).modules).toEqual([]);
  });

  it("rolls back to an earlier approved version on every replica within a second", async () => {
    const manifest = (version: string) => ({
      name: "greeter",
      version,
      kind: ModuleKind.CODE,
      tools: [{ name: "hello", inputSchema: { type: "object" } }],
      tests: [{ name: "says hello", tool: "hello", input: {}, expect: { v: version } }],
    });
    for (const version of ["1.0.0", "2.0.0"]) {
      await owner.modules.submitModuleVersion({
        manifest: manifest(version),
        code: `function hello() { return { v: ${JSON.stringify(version)} }; }`,
      });
      await owner.modules.reviewModuleVersion({ name: "greeter", version, approve: true });
    }
    await owner.modules.activateModuleVersion({ name: "greeter", version: "2.0.0" });
    const onB = async () => (await viaB.modules.callTool({ module: "greeter", tool: "hello", input: {} })).output;
    expect(await onB()).toEqual({ v: "2.0.0" });

    const rolled = await owner.modules.activateModuleVersion({ name: "greeter", version: "1.0.0" });
    const switchedAt = performance.now();
    expect(rolled.previousVersion).toBe("2.0.0");
    await eventually("replica B to serve 1.0.0", async () => (await onB())?.v === "1.0.0", 1000);
    expect(performance.now() - switchedAt).toBeLessThan(1000);
    expect((await owner.modules.callTool({ module: "greeter", tool: "hello", input: {} })).output).toEqual({ v: "1.0.0" });

    const page1 = await owner.modules.listModules({ pageSize: 2 });
    expect(page1.modules.map((m) => m.name)).toEqual(["broken", "evil"]);
    const page2 = await owner.modules.listModules({ pageSize: 2, pageToken: page1.nextPageToken });
    expect(page2.modules.map((m) => m.name)).toEqual(["greeter", "stats"]);
    expect(page2.modules.find((m) => m.name === "greeter")?.activeVersion).toBe("1.0.0");
  });

  it("calls tools from a Run: tool_call and tool_result in the stream, a failing tool is an event, not a failed run", async () => {
    await ingestCorpus(owner, "handbook", [{ id: "stats-doc", text: "The stats module computes the average of numbers." }]);
    const events: RunResponse[] = [];
    for await (const e of owner.agent.run({
      corpusId: "handbook",
      message: "What is the average?",
      toolCalls: [
        { module: "stats", tool: "compute", input: { values: [1, 2, 3, 6] } },
        { module: "evil", tool: "spin", input: {} },
      ],
    })) {
      events.push(e);
    }
    expect(events.map((e) => Number(e.seq))).toEqual(events.map((_e, i) => i + 1));
    const kinds = events.map((e) => e.event.case).filter((k) => k !== "heartbeat" && k !== "tokenDelta");
    expect(kinds).toEqual(["accepted", "retrieval", "toolCall", "toolResult", "toolCall", "toolResult", "messageFinal", "done"]);
    const results = events.flatMap((e) => (e.event.case === "toolResult" ? [e.event.value] : []));
    const calls = events.flatMap((e) => (e.event.case === "toolCall" ? [e.event.value] : []));
    expect(calls[0]).toMatchObject({ module: "stats", tool: "compute", chosenBy: "request", input: { values: [1, 2, 3, 6] } });
    expect(results[0]).toMatchObject({ callId: calls[0]?.callId, moduleVersion: "1.0.0", output: { result: 3 } });
    expect(results[1]?.output).toBeUndefined();
    expect(results[1]?.error).toMatchObject({ code: "DEADLINE_EXCEEDED", reason: "MODULE_TIMEOUT" });
    const done = events.at(-1)?.event;
    expect(done?.case === "done" && done.value.status).toBe(RunStatus.COMPLETED);
    // The offline (extractive) provider quotes the tool results in its answer, too.
    const final = events.find((e) => e.event.case === "messageFinal")?.event;
    const text = final?.case === "messageFinal" ? final.value.text : "";
    const streamed = events.map((e) => (e.event.case === "tokenDelta" ? e.event.value.text : "")).join("");
    expect(streamed).toBe(text);
    expect(text).toContain("The stats module computes the average of numbers.");
    const quoted = text.slice(text.indexOf("\n\nTool results:\n"));
    expect(quoted.split("\n")[3]).toMatch(/^- stats\.compute: \{.*"result":3[,}]/);
    expect(quoted).toMatch(/\n- evil\.spin: \{"error":\{"reason":"MODULE_TIMEOUT"/);
    // Metered: retrieval and both tool calls count as the run's tool calls.
    const accepted = events[0]?.event;
    const requestId = accepted?.case === "accepted" ? accepted.value.requestId : "";
    const tenant = await mesh.db.query<{ id: string }>("SELECT id FROM auth.tenants WHERE slug = 'demo'");
    const recorded = await eventually("the run's RunCompleted", async () => {
      const rows = await runEvents(mesh.db, tenant.rows[0]!.id, requestId);
      return rows.find((r) => r.type === "nexus.events.v1.RunCompleted");
    });
    expect(recorded.payload).toMatchObject({ usage: { toolCalls: 3 } });
  });

  it("calls a gRPC method found by server reflection, mapping JSON input and output through its descriptors", async () => {
    // The target is the mesh itself (it serves grpc.reflection.v1): RetrievalService/GetCorpus
    // with the caller's key as a credential injected into the call's metadata.
    const target = new URL(mesh.url);
    await owner.modules.setCredential({ name: "MESH_KEY", value: mesh.ownerKey });
    const manifest = {
      name: "mesh",
      version: "1.0.0",
      kind: ModuleKind.GRPC,
      credentials: ["MESH_KEY"],
      egressHosts: [target.host],
      tools: [
        {
          name: "corpus",
          inputSchema: { type: "object", required: ["corpusId"], properties: { corpusId: { type: "string" } } },
          outputSchema: { type: "object", required: ["corpus"] },
          grpc: {
            target: target.origin,
            method: "nexus.retrieval.v1.RetrievalService/GetCorpus",
            metadata: { authorization: "Bearer {{credential:MESH_KEY}}" },
          },
        },
      ],
      tests: [{ name: "the handbook", tool: "corpus", input: { corpusId: "handbook" }, expect: { corpus: { id: "handbook" } } }],
    };
    expect(await failure(() => owner.modules.submitModuleVersion({ manifest, code: "function corpus() {}" }))).toMatchObject({
      code: "InvalidArgument",
      reason: "MANIFEST_INVALID",
    });
    const v = await owner.modules.submitModuleVersion({ manifest });
    expect(v.version?.testResults).toEqual([expect.objectContaining({ name: "the handbook", passed: true })]);
    await owner.modules.reviewModuleVersion({ name: "mesh", version: "1.0.0", approve: true });
    await owner.modules.activateModuleVersion({ name: "mesh", version: "1.0.0" });
    const out = await owner.modules.callTool({ module: "mesh", tool: "corpus", input: { corpusId: "handbook" } });
    expect(out.output).toMatchObject({ corpus: { id: "handbook" } });
    expect(JSON.stringify(out.output)).not.toContain(mesh.ownerKey);
    // The gRPC error of the target is the tool's error; input the request type cannot take is refused.
    expect(
      await failure(() => owner.modules.callTool({ module: "mesh", tool: "corpus", input: { corpusId: "no-such-corpus" } })),
    ).toMatchObject({
      reason: "MODULE_ERROR",
    });
    expect(
      await failure(() => owner.modules.callTool({ module: "mesh", tool: "corpus", input: { corpusId: "handbook", bogus: 1 } })),
    ).toMatchObject({ reason: "TOOL_INPUT_INVALID" });
  });

  it("lets an OpenAI-compatible model choose a tool (Chat Completions tool calling)", async () => {
    standin.enqueue(
      { kind: "tool_calls", calls: [{ id: "call_abc", name: "stats__compute", arguments: JSON.stringify({ values: [4, 6] }) }] },
      { kind: "answer", text: "The average is 5 [1]." },
    );
    const before = standin.requests.length;
    const events: RunResponse[] = [];
    for await (const e of owner.agent.run({
      corpusId: "handbook",
      message: "Average of 4 and 6?",
      options: { provider: "openai" },
      tools: ["stats.compute"],
    })) {
      events.push(e);
    }
    const call = events.find((e) => e.event.case === "toolCall")?.event;
    const result = events.find((e) => e.event.case === "toolResult")?.event;
    expect(call?.case === "toolCall" && call.value).toMatchObject({
      module: "stats",
      tool: "compute",
      chosenBy: "model",
      input: { values: [4, 6] },
    });
    expect(result?.case === "toolResult" && result.value.output).toMatchObject({ result: 5 });
    const final = events.find((e) => e.event.case === "messageFinal")?.event;
    expect(final?.case === "messageFinal" && final.value.text).toBe("The average is 5 [1].");
    const [first, second] = standin.requests.slice(before);
    expect(first?.body.tools?.map((t) => t.function.name)).toEqual(["stats__compute"]);
    expect(first?.body.tools?.[0]?.function.parameters).toMatchObject({ type: "object", required: ["values"] });
    const toolMessage = second?.body.messages?.find((m) => m.role === "tool");
    expect(toolMessage?.tool_call_id).toBe("call_abc");
    expect(JSON.parse(toolMessage?.content ?? "{}")).toMatchObject({ result: 5 });
  });

  it("builds with the OpenAI-compatible drafter, feeding failing tests back for a repair", async () => {
    standin.enqueue(
      {
        kind: "message",
        content: JSON.stringify({
          code: "function compute(input) { return { result: 0, data: [], chart: { type: 'bar', x: 'label', y: 'value' } }; }",
        }),
      },
      {
        kind: "message",
        content: JSON.stringify({
          code: "function compute(input) { const v = input.values; const l = input.labels || []; return { result: Math.max(...v), data: v.map((value, i) => ({ label: l[i] !== undefined ? l[i] : String(i + 1), value })), chart: { type: 'bar', x: 'label', y: 'value' } }; }",
        }),
      },
    );
    const before = standin.requests.length;
    const built = await owner.modules.buildModule({ name: "peak", version: "1.0.0", spec: "Find the largest value", provider: "openai" });
    expect(built).toMatchObject({ draftedBy: "openai", repairs: 1 });
    expect(built.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    const repairPrompt = standin.requests[before + 1]?.body.messages?.find((m) => m.role === "user")?.content ?? "";
    expect(repairPrompt).toContain("These tests failed in the sandbox");
    expect(repairPrompt).toContain("/result: expected 4, got 0");
  });

  it("repairs offline: the template drafter's first median draft fails a generated test and a known repair fixes it", async () => {
    const spec = "The median of the numbers, as a chart";
    const unrepaired = await owner.modules.buildModule({ name: "middle", version: "1.0.0", spec, maxRepairs: 0 });
    expect(unrepaired).toMatchObject({ draftedBy: "template", repairs: 0 });
    expect(unrepaired.version?.status).toBe(ModuleVersionStatus.TESTS_FAILED);
    const failed = unrepaired.version?.testResults.find((t) => !t.passed);
    expect(failed).toMatchObject({ name: "median of 10, 9, 2" });
    expect(failed?.message).toContain("expected 9");

    const repaired = await owner.modules.buildModule({ name: "middle", version: "1.0.1", spec });
    expect(repaired).toMatchObject({ draftedBy: "template", repairs: 1 });
    expect(repaired.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    expect(repaired.version?.testResults.map((t) => [t.name, t.passed])).toEqual([
      ["median of 1, 2, 3, 4", true],
      ["median of 10, 9, 2", true],
      ["returns rows and a bar chart", true],
      ["refuses values that are not numbers", true],
    ]);
    expect(repaired.version?.code).toContain(".sort((a, b) => a - b)");
  });

  it("lets the OpenAI-compatible drafter write tests as well as code (kept beside the template's)", async () => {
    standin.enqueue({
      kind: "message",
      content: JSON.stringify({
        code: "function compute(input) { const v = input.values; const l = input.labels || []; return { result: Math.min(...v), data: v.map((value, i) => ({ label: l[i] !== undefined ? l[i] : String(i + 1), value })), chart: { type: 'bar', x: 'label', y: 'value' } }; }",
        tests: [
          { name: "min of negatives", tool: "compute", input: { values: [-3, -1] }, expect: { result: -3 } },
          { name: "names a tool that does not exist", tool: "nope", input: {} },
        ],
      }),
    });
    const built = await owner.modules.buildModule({ name: "low", version: "1.0.0", spec: "Find the smallest value", provider: "openai" });
    expect(built).toMatchObject({ draftedBy: "openai", repairs: 0 });
    expect(built.version?.status).toBe(ModuleVersionStatus.PENDING_REVIEW);
    expect(built.version?.testResults.map((t) => [t.name, t.passed])).toEqual([
      ["min of 1, 2, 3, 4", true],
      ["returns rows and a bar chart", true],
      ["refuses values that are not numbers", true],
      ["min of negatives", true],
    ]);
    expect(built.version?.manifest?.tests.map((t) => t.name)).toContain("min of negatives");
  });

  it("writes each approval step to the audit trail", async () => {
    const tenant = await mesh.db.query<{ id: string }>("SELECT id FROM auth.tenants WHERE slug = 'demo'");
    const types = await eventually("the module audit entries", async () => {
      const { rows } = await mesh.db.query<{ event_type: string }>(
        "SELECT event_type FROM audit.entries WHERE tenant_id = $1 AND event_type LIKE 'modules.%'",
        [tenant.rows[0]!.id],
      );
      const t = new Set(rows.map((r) => r.event_type));
      return t.has("modules.version.activated") && t.has("modules.version.rejected") && t.has("modules.credential.set") && t;
    });
    expect([...types].sort()).toEqual([
      "modules.credential.set",
      "modules.version.activated",
      "modules.version.approved",
      "modules.version.rejected",
      "modules.version.submitted",
    ]);
  });

  it("works from the CLI: build, review, activate, call, credentials", async () => {
    const cli = async (...args: string[]) => {
      const env = { ...process.env, NEXUS_URL: mesh.url, NEXUS_API_KEY: mesh.ownerKey, CLI_SECRET: "cli-secret-value" };
      return (await promisify(execFile)(process.execPath, [NEXUS_BIN, ...args], { env })).stdout;
    };
    expect(await cli("modules", "build", "totals", "--version", "1.0.0", "--spec", "Sum the numbers")).toContain(
      "totals@1.0.0: pending review",
    );
    expect(await cli("modules", "review", "totals", "1.0.0", "--approve")).toContain("approved");
    expect(await cli("modules", "activate", "totals", "1.0.0")).toContain("totals: active 1.0.0");
    expect(JSON.parse(await cli("modules", "call", "totals", "compute", "--input", '{"values": [1, 2, 3]}'))).toMatchObject({
      version: "1.0.0",
      output: { result: 6 },
    });
    expect(await cli("modules", "list")).toContain("totals");
    await cli("credentials", "set", "CLI_KEY", "--from-env", "CLI_SECRET");
    const listed = await cli("credentials", "list");
    expect(listed).toContain("CLI_KEY");
    expect(listed).not.toContain("cli-secret-value");
  });

  it("publishes to the marketplace: browse and search with paging, install, rate, and an 85/15 revenue ledger", async () => {
    const published = await owner.modules.publishModule({
      name: "stats",
      version: "1.0.0",
      license: "MIT",
      priceMicrosPerCall: 1000n,
      summary: "Average of numbers, with a chart",
    });
    const listing = published.listing!;
    expect(listing).toMatchObject({ name: "stats", version: "1.0.0", license: "MIT", creator: "demo", tools: ["compute"] });
    expect(await failure(() => owner.modules.publishModule({ name: "stats", version: "1.0.0", license: "MIT" }))).toMatchObject({
      code: "AlreadyExists",
    });
    expect(await failure(() => owner.modules.publishModule({ name: "broken", version: "1.0.0", license: "MIT" }))).toMatchObject({
      code: "FailedPrecondition",
    });
    const greeter = (await owner.modules.publishModule({ name: "greeter", version: "2.0.0", license: "Apache-2.0", summary: "Says hello" }))
      .listing!;
    expect(listing.status).toBe("PENDING_REVIEW");

    // Nobody sees or installs a listing before a platform operator approves it.
    const buyer = await mesh.newTenant("pro", "owner");
    const viaBuyer = mesh.client(buyer.key);
    expect((await viaBuyer.modules.listListings({ query: "average" })).listings).toEqual([]);
    expect(await failure(() => viaBuyer.modules.installListing({ listingId: listing.listingId }))).toMatchObject({ code: "NotFound" });
    expect(await failure(() => owner.modules.reviewListing({ listingId: listing.listingId, approve: true }))).toMatchObject({
      code: "PermissionDenied",
    });
    const operator = mesh.client(mesh.platformKey);
    expect(await failure(() => operator.modules.reviewListing({ listingId: greeter.listingId, approve: false }))).toMatchObject({
      code: "InvalidArgument",
    });
    for (const id of [listing.listingId, greeter.listingId]) {
      const reviewed = await operator.modules.reviewListing({ listingId: id, approve: true, feedback: "fine" });
      expect(reviewed.listing).toMatchObject({ status: "APPROVED", reviewFeedback: "fine" });
    }
    expect(
      await failure(() => operator.modules.reviewListing({ listingId: listing.listingId, approve: false, feedback: "no" })),
    ).toMatchObject({
      code: "FailedPrecondition",
    });

    const found = await viaBuyer.modules.listListings({ query: "average" });
    expect(found.listings.map((l) => l.listingId)).toEqual([listing.listingId]);
    const page1 = await viaBuyer.modules.listListings({ pageSize: 1 });
    const page2 = await viaBuyer.modules.listListings({ pageSize: 1, pageToken: page1.nextPageToken });
    expect(page1.listings).toHaveLength(1);
    expect(page2.listings).toHaveLength(1);
    expect(page2.listings[0]?.listingId).not.toBe(page1.listings[0]?.listingId);

    expect(await failure(() => viaBuyer.modules.rateListing({ listingId: listing.listingId, stars: 5 }))).toMatchObject({
      code: "FailedPrecondition",
    });
    const installed = await viaBuyer.modules.installListing({ listingId: listing.listingId });
    expect(installed.module).toMatchObject({ name: "stats", activeVersion: "1.0.0" });
    expect(await failure(() => viaBuyer.modules.installListing({ listingId: listing.listingId }))).toMatchObject({ code: "AlreadyExists" });
    // Paid calls are made in a Run: metering's UsageRecorded carries each tool call with the
    // listing its version came from, and the ledger is fed from that event.
    await ingestCorpus(viaBuyer, "buyer-docs", [{ id: "b1", text: "Stats computes averages." }]);
    const runEventsSeen: RunResponse[] = [];
    for await (const e of viaBuyer.agent.run({
      corpusId: "buyer-docs",
      message: "averages please",
      toolCalls: [
        { module: "stats", tool: "compute", input: { values: [1, 3] } },
        { module: "stats", tool: "compute", input: { values: [2, 4] } },
        { module: "stats", tool: "compute", input: { values: [10, 20] } },
      ],
    })) {
      runEventsSeen.push(e);
    }
    expect(runEventsSeen.filter((e) => e.event.case === "toolResult" && e.event.value.output !== undefined)).toHaveLength(3);
    const accepted = runEventsSeen[0]?.event;
    const buyerRequestId = accepted?.case === "accepted" ? accepted.value.requestId : "";
    const recorded = await eventually("metering's UsageRecorded of the buyer's run", async () => {
      const r = await mesh.db.query<{ event_id: string; stream_id: string; version: number; payload: { toolCallUsage?: unknown[] } }>(
        "SELECT event_id, stream_id, version, payload FROM platform.events WHERE type = 'nexus.events.v1.UsageRecorded' AND payload->>'requestId' = $1",
        [buyerRequestId],
      );
      return r.rows[0];
    });
    const usage = recorded.payload;
    expect(usage.toolCallUsage).toEqual(
      Array.from({ length: 3 }, () => expect.objectContaining({ module: "stats", moduleVersion: "1.0.0", listingId: listing.listingId })),
    );
    // A direct CallTool is not a metered run: it adds nothing to the ledger.
    await viaBuyer.modules.callTool({ module: "stats", tool: "compute", input: { values: [7, 9] } });
    const rated = await viaBuyer.modules.rateListing({ listingId: listing.listingId, stars: 4 });
    expect(rated.listing).toMatchObject({ installCount: 1n, ratingCount: 1n, ratingAverage: 4 });
    // The creator's own calls are not paid; the buyer's three are, split 85/15.
    const revenue = await eventually("the ledger to record the three paid calls", async () => {
      const r = await owner.modules.getRevenue({});
      const line = r.listings.find((l) => l.listingId === listing.listingId);
      return line?.calls === 3n && line;
    });
    expect(revenue).toMatchObject({ grossMicros: 3000n, creatorMicros: 2550n, platformMicros: 450n });
    // The same UsageRecorded delivered again (a redelivery) records nothing more.
    await revenueLedgerHandler()(
      {
        eventId: recorded.event_id,
        type: "nexus.events.v1.UsageRecorded",
        streamId: recorded.stream_id,
        version: recorded.version,
        payload: recorded.payload,
        metadata: {},
        subject: "nexus.metering.usage_recorded",
        topic: "metering.usage_recorded",
        occurredAt: new Date(),
        deliveryCount: 2,
      },
      {
        query: async <T>(sql: string, params?: readonly unknown[]) => {
          const r = await mesh.db.query(sql, params as unknown[]);
          return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
        },
        exec: async (sql: string) => {
          await mesh.db.query(sql);
        },
      },
    );
    const again = (await owner.modules.getRevenue({})).listings.find((l) => l.listingId === listing.listingId);
    expect(again).toMatchObject({ calls: 3n, grossMicros: 3000n });
    expect((await viaBuyer.modules.getRevenue({})).listings).toEqual([]);
    const cli = async (...args: string[]) =>
      (
        await promisify(execFile)(process.execPath, [NEXUS_BIN, ...args], {
          env: { ...process.env, NEXUS_URL: mesh.url, NEXUS_API_KEY: mesh.ownerKey },
        })
      ).stdout;
    expect(await cli("marketplace", "list", "average")).toContain("stats@1.0.0");
    expect(await cli("marketplace", "revenue")).toMatch(/stats@1\.0\.0\s+3\s+0\.003000\s+0\.002550\s+0\.000450/);
  });
});
