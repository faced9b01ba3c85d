import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { type RunResponse, RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { MessageRole } from "../gen/nexus/agent/v1/session_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, runEvents, startAgentMesh } from "./support/agent-mesh.js";
import { connectJsonStream } from "./support/connect-json-stream.js";
import { eventually } from "./support/eventually.js";
import { type OpenAiStandin, startOpenAiStandin } from "./support/openai-standin.js";
import { describeWithPostgres } from "./support/services.js";

// The `openai` provider end to end through `nexus dev`, against a LOCAL STAND-IN for a cloud
// LLM (tests/support/openai-standin.ts) that streams, fails and stalls on demand:
// cancellation, CancelRun, deadlines, heartbeats, the circuit breaker, the bulkhead and what
// a failed run stores.

const KEYS =
  "API keys authenticate every call to Nexus. To rotate an API key, run nexus keys rotate with the key id: " +
  "Nexus issues a new secret and the old one keeps working for the grace period. The grace period defaults to 24 hours.";

const BREAKER_RESET_MS = 1000;

type Event = RunResponse["event"];

/** The events' kinds without heartbeats (which may come at any quiet moment). */
function kinds(events: readonly RunResponse[]): string[] {
  return events.map((e) => e.event.case ?? "?").filter((k) => k !== "heartbeat");
}

function accepted(events: readonly RunResponse[]) {
  const e = events[0]?.event;
  if (e?.case !== "accepted") throw new Error(`expected accepted first, got ${kinds(events).join(",")}`);
  return e.value;
}

function errorOf(events: readonly RunResponse[]) {
  const e = events.find((x) => x.event.case === "error")?.event;
  if (e?.case !== "error") throw new Error(`no error event in ${kinds(events).join(",")}`);
  return e.value;
}

function doneOf(events: readonly RunResponse[]) {
  const e = events.at(-1)?.event;
  if (e?.case !== "done") throw new Error(`the stream did not end with done: ${kinds(events).join(",")}`);
  return e.value;
}

function expectContiguous(events: readonly RunResponse[]): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
}

/** Runs to the end, calling `onEvent` for each event (it may act on the run). */
async function run(
  client: NexusClient,
  request: Parameters<NexusClient["agent"]["run"]>[0],
  onEvent?: (e: Event, all: RunResponse[]) => void | Promise<void>,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
) {
  const out: RunResponse[] = [];
  for await (const r of client.agent.run(request, options)) {
    out.push(r);
    await onEvent?.(r.event, out);
  }
  return out;
}

async function rpcError(fn: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await fn();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describeWithPostgres("agent resilience with the openai provider (stand-in model server)", () => {
  let mesh: AgentMesh;
  let standin: OpenAiStandin;
  let owner: NexusClient;
  let tenantId: string;

  const ask = (message: string) => ({ corpusId: "handbook", message, options: { provider: "openai", model: "standin-1" } });

  beforeAll(async () => {
    standin = await startOpenAiStandin();
    mesh = await startAgentMesh({
      NEXUS_OPENAI_BASE_URL: standin.baseUrl,
      NEXUS_OPENAI_API_KEY: "sk-standin",
      NEXUS_AGENT_HEARTBEAT_MS: "100",
      NEXUS_AGENT_MODEL_TIMEOUT_MS: "1500",
      NEXUS_AGENT_BREAKER_FAILURES: "2",
      NEXUS_AGENT_BREAKER_RESET_MS: String(BREAKER_RESET_MS),
      NEXUS_AGENT_MAX_CONCURRENT_RUNS: "2",
    });
    owner = mesh.client();
    await ingestCorpus(owner, "handbook", [{ id: "keys", text: KEYS }]);
    const { rows } = await mesh.db.query<{ id: string }>("SELECT id FROM auth.tenants WHERE slug = 'demo'");
    tenantId = rows[0]!.id;
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
    await standin?.close();
  });

  it("streams the model's answer as it comes, with usage and citations from its [n] markers", async () => {
    standin.enqueue({
      kind: "answer",
      text: "Run nexus keys rotate [1]. The old key keeps working for the grace period [1].",
      chunkDelayMs: 30,
      usage: { prompt_tokens: 321, completion_tokens: 17 },
    });
    let finishedWhenFirstTokenArrived: boolean | undefined;
    const result = await connectJsonStream(`${mesh.url}/nexus.agent.v1.AgentService/Run`, ask("How do I rotate an API key?"), {
      headers: { authorization: `Bearer ${mesh.ownerKey}` },
      onMessage: (m) => {
        if ("tokenDelta" in m && finishedWhenFirstTokenArrived === undefined)
          finishedWhenFirstTokenArrived = standin.requests.at(-1)?.finished;
      },
    });
    // The first token reached the client while the model was still writing: nothing is buffered.
    expect(finishedWhenFirstTokenArrived).toBe(false);
    const final = result.messages.find((m) => "messageFinal" in m)?.messageFinal as {
      text: string;
      citations: Array<{ documentId: string; charStart?: number; charEnd: number; quote: string }>;
      inputTokens: string;
      outputTokens: string;
    };
    expect(final.text).toBe("Run nexus keys rotate [1]. The old key keeps working for the grace period [1].");
    expect(final.citations).toHaveLength(1);
    expect(final.citations[0]?.documentId).toBe("keys");
    expect(final.citations[0]?.quote).toBe(KEYS);
    expect(final.inputTokens).toBe("321");
    expect(final.outputTokens).toBe("17");
    const sent = standin.requests.at(-1)!;
    expect(sent.authorization).toBe("Bearer sk-standin");
    expect(sent.body.model).toBe("standin-1");
    expect(sent.body.messages?.[0]?.content).toContain("[1] (keys.txt)");
  });

  it("gives the model the session's history on a continued run", async () => {
    const first = await run(owner, ask("How do I rotate an API key?"));
    const sessionId = accepted(first).sessionId;
    await run(owner, { ...ask("And how long is the grace period?"), sessionId });
    const sent = standin.requests.at(-1)!;
    expect(sent.body.messages?.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
    expect(sent.body.messages?.[1]?.content).toBe("How do I rotate an API key?");
    expect(sent.body.messages?.[3]?.content).toBe("And how long is the grace period?");
  });

  it("a client that cancels mid-stream stops the model's stream at once; only the question is stored", async () => {
    standin.enqueue({ kind: "endless", text: "tick tock ", chunkDelayMs: 20 });
    const controller = new AbortController();
    let requestId = "";
    let sessionId = "";
    let tokens = 0;
    const err = await rpcError(() =>
      run(
        owner,
        ask("Tell me everything about keys"),
        (e) => {
          if (e.case === "accepted") ({ requestId, sessionId } = e.value);
          if (e.case === "tokenDelta" && ++tokens === 3) controller.abort();
        },
        { signal: controller.signal },
      ),
    );
    expect(err.code).toBe(Code.Canceled);
    const upstream = standin.requests.at(-1)!;
    await eventually("the stand-in model to see the agent hang up", () => upstream.clientAborted, 5000);
    await eventually("the cancelled run to be recorded", async () => (await runEvents(mesh.db, tenantId, requestId)).length === 2);
    const events = await runEvents(mesh.db, tenantId, requestId);
    expect(events.map((e) => e.type)).toEqual(["nexus.events.v1.RunStarted", "nexus.events.v1.RunCancelled"]);
    expect(events[1]?.payload.byCancelRun ?? false).toBe(false);
    const { messages } = await owner.agent.getSession({ sessionId });
    expect(messages.map((m) => m.role)).toEqual([MessageRole.USER]);
  });

  it("CancelRun from another connection ends the stream with error CANCELLED and done", async () => {
    standin.enqueue({ kind: "endless", text: "tick tock ", chunkDelayMs: 20 });
    const other = mesh.client((await mesh.newTenant("pro")).key, { protocol: "grpc" });
    const canceller = mesh.client(mesh.ownerKey, { protocol: "grpc" });
    let cancelled: boolean | undefined;
    let strangerCancelled: boolean | undefined;
    const events = await run(owner, ask("Tell me everything about keys"), async (e, all) => {
      if (e.case === "tokenDelta" && cancelled === undefined) {
        const { requestId } = accepted(all);
        strangerCancelled = (await other.agent.cancelRun({ requestId })).cancelled;
        cancelled = (await canceller.agent.cancelRun({ requestId })).cancelled;
      }
    });
    expect(strangerCancelled).toBe(false);
    expect(cancelled).toBe(true);
    expectContiguous(events);
    expect(kinds(events).slice(-2)).toEqual(["error", "done"]);
    expect(errorOf(events).code).toBe("CANCELLED");
    expect(doneOf(events).status).toBe(RunStatus.CANCELLED);
    const upstream = standin.requests.at(-1)!;
    await eventually("the stand-in model to see the agent hang up", () => upstream.clientAborted, 5000);
    const { requestId } = accepted(events);
    expect((await canceller.agent.cancelRun({ requestId })).cancelled).toBe(false);
    const recorded = await runEvents(mesh.db, tenantId, requestId);
    expect(recorded.at(-1)?.type).toBe("nexus.events.v1.RunCancelled");
    expect(recorded.at(-1)?.payload.byCancelRun).toBe(true);
  });

  it("a failing model ends the run with error → done and stores only the question", async () => {
    standin.enqueue({
      kind: "status",
      status: 503,
      headers: { "retry-after": "3" },
      body: JSON.stringify({ error: { message: "overloaded" } }),
    });
    const events = await run(owner, ask("How do I rotate an API key?"));
    expectContiguous(events);
    expect(kinds(events)).toEqual(["accepted", "retrieval", "error", "done"]);
    const error = errorOf(events);
    expect(error.code).toBe("UNAVAILABLE");
    expect(error.reason).toBe("DEPENDENCY_UNAVAILABLE");
    expect(error.message).toContain("overloaded");
    expect(error.retryAfter?.seconds).toBe(3n);
    expect(doneOf(events).status).toBe(RunStatus.FAILED);
    const { requestId, sessionId } = accepted(events);
    const { session, messages } = await owner.agent.getSession({ sessionId });
    expect(session?.messageCount).toBe(1);
    expect(messages.map((m) => [m.role, m.text])).toEqual([[MessageRole.USER, "How do I rotate an API key?"]]);
    const recorded = await runEvents(mesh.db, tenantId, requestId);
    expect(recorded.map((e) => e.type)).toEqual(["nexus.events.v1.RunStarted", "nexus.events.v1.RunFailed"]);
    expect(recorded[1]?.payload).toMatchObject({
      code: "UNAVAILABLE",
      reason: "DEPENDENCY_UNAVAILABLE",
      failedStep: "generate",
      provider: "openai",
    });
    // A good answer resets the breaker's failure count for the next tests.
    standin.enqueue({ kind: "answer", text: "Recovered [1]." });
    await run(owner, ask("How do I rotate an API key?"));
  });

  it("a stalled model: heartbeats share the seq counter, then the model timeout fails the run", async () => {
    standin.enqueue({ kind: "stall", text: "Starting to answer and then", afterChunks: 2 });
    const events = await run(owner, ask("How do I rotate an API key?"));
    expectContiguous(events);
    const k = events.map((e) => e.event.case);
    expect(k.filter((x) => x === "heartbeat").length).toBeGreaterThanOrEqual(2);
    expect(k.filter((x) => x === "tokenDelta")).toHaveLength(2);
    expect(k.slice(-2)).toEqual(["error", "done"]);
    expect(errorOf(events).code).toBe("UNAVAILABLE");
    expect(errorOf(events).message).toContain("sent nothing for 1500 ms");
    standin.enqueue({ kind: "answer", text: "Recovered [1]." });
    await run(owner, ask("How do I rotate an API key?"));
  });

  it("honours the client's deadline and records the run as failed", async () => {
    standin.enqueue({ kind: "stall", text: "Never finishing", afterChunks: 1 });
    let requestId = "";
    const err = await rpcError(() =>
      run(
        owner,
        ask("How do I rotate an API key?"),
        (e) => {
          if (e.case === "accepted") requestId = e.value.requestId;
        },
        { timeoutMs: 700 },
      ),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    const upstream = standin.requests.at(-1)!;
    await eventually("the stand-in model to see the agent hang up", () => upstream.clientAborted, 5000);
    await eventually("the run to be recorded", async () => (await runEvents(mesh.db, tenantId, requestId)).length === 2);
    const recorded = await runEvents(mesh.db, tenantId, requestId);
    expect(recorded[1]?.type).toBe("nexus.events.v1.RunFailed");
    expect(recorded[1]?.payload).toMatchObject({ code: "DEADLINE_EXCEEDED", failedStep: "generate" });
  });

  it("opens the model's circuit breaker after N failures, fails fast, and closes it after a good probe", async () => {
    standin.enqueue({ kind: "status", status: 500 }, { kind: "status", status: 500 });
    for (let i = 0; i < 2; i++) expect(errorOf(await run(owner, ask("How do I rotate an API key?"))).reason).toBe("DEPENDENCY_UNAVAILABLE");
    const before = standin.requests.length;
    const fastFail = await run(owner, ask("How do I rotate an API key?"));
    const error = errorOf(fastFail);
    expect(error.code).toBe("UNAVAILABLE");
    expect(error.metadata.circuit).toBe("open");
    expect(error.metadata.dependency).toBe("model:openai");
    expect(error.retryAfter).toBeDefined();
    expect(standin.requests.length).toBe(before);
    const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(metrics).toMatch(/nexus_agent_circuit_state\{dependency="model:openai"\} 2/);

    // After the reset timeout one probe goes through; its success closes the breaker.
    standin.setDefault({ kind: "answer", text: "Probe answer [1]." });
    let probe: RunResponse[] = [];
    await eventually(
      "the breaker to let a probe through",
      async () => {
        probe = await run(owner, ask("How do I rotate an API key?"));
        return doneOf(probe).status === RunStatus.COMPLETED;
      },
      BREAKER_RESET_MS * 10,
    );
    expect(standin.requests.length).toBe(before + 1);
    const after = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(after).toMatch(/nexus_agent_circuit_state\{dependency="model:openai"\} 0/);
  });

  it("refuses runs beyond the bulkhead with UNAVAILABLE SERVICE_BUSY and RetryInfo", async () => {
    standin.enqueue({ kind: "endless", text: "tick ", chunkDelayMs: 20 }, { kind: "endless", text: "tock ", chunkDelayMs: 20 });
    const controllers = [new AbortController(), new AbortController()];
    const started: Promise<unknown>[] = [];
    const streaming = new Set<AbortController>();
    for (const c of controllers) {
      started.push(
        run(
          owner,
          ask("Tell me everything about keys"),
          (e) => {
            if (e.case === "tokenDelta") streaming.add(c);
          },
          { signal: c.signal },
        ).catch(() => undefined),
      );
    }
    await eventually("two runs to be streaming", () => streaming.size === 2, 10_000);
    const busy = await rpcError(() => run(owner, ask("One more please")));
    expect(busy.code).toBe(Code.Unavailable);
    expect(errorReason(busy)).toBe("SERVICE_BUSY");
    expect(errorMetadata(busy).max_concurrent_runs).toBe("2");
    expect(busy.findDetails(RetryInfoSchema)).toHaveLength(1);
    for (const c of controllers) c.abort();
    await Promise.all(started);
    // Slots come back once the cancelled runs have stored their outcome.
    await eventually("a slot to be free again", async () => {
      try {
        return doneOf(await run(owner, { corpusId: "handbook", message: "How do I rotate an API key?" })).status === RunStatus.COMPLETED;
      } catch (err) {
        if (errorReason(err) === "SERVICE_BUSY") return false;
        throw err;
      }
    });
  });

  it("uses the corpus's provider and model (provider_config.agent) when the request names none", async () => {
    await owner.retrieval.createCorpus({
      corpusId: "per-corpus-model",
      displayName: "Per-corpus model",
      providerConfig: { agent: { provider: "openai", model: "standin-corpus" } },
    });
    const { corpus } = await owner.retrieval.getCorpus({ corpusId: "per-corpus-model" });
    expect(corpus?.providerConfig).toMatchObject({ agent: { provider: "openai", model: "standin-corpus" } });
    await ingestCorpus(owner, "per-corpus-model", [{ id: "keys-per-corpus", text: KEYS }]);
    standin.enqueue({ kind: "answer", text: "Run nexus keys rotate [1].", chunkDelayMs: 0 });
    const events = await run(owner, { corpusId: "per-corpus-model", message: "How do I rotate an API key?" });
    expect(accepted(events)).toMatchObject({ provider: "openai", model: "standin-corpus" });
    expect(standin.requests.at(-1)?.body.model).toBe("standin-corpus");
    // A misspelt section is refused up front, never stored.
    const bad = await rpcError(() =>
      owner.retrieval.createCorpus({ corpusId: "bad-agent-config", displayName: "Bad", providerConfig: { agent: { provider: "gpt" } } }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain("provider_config.agent.provider");
  });

  it("keeps remote providers to entitled plans", async () => {
    const free = mesh.client((await mesh.newTenant("free")).key);
    await free.retrieval.createCorpus({ corpusId: "handbook", displayName: "Handbook" });
    const err = await rpcError(() => run(free, ask("How do I rotate an API key?")));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("FEATURE_NOT_ENABLED");
    expect(errorMetadata(err).feature_key).toBe("feature.agent.openai");
  });
  it("a tenant's bad requests never open the retrieval breaker shared with every other tenant", async () => {
    // A NUL in the question makes retrieval fail (INTERNAL from the database's text handling):
    // the request's fault, not retrieval's. Breakers are per replica, shared by all tenants.
    const mallory = mesh.client((await mesh.newTenant("pro")).key);
    await ingestCorpus(mallory, "handbook", [{ id: "keys", text: KEYS }]);
    for (let i = 0; i < 4; i++) {
      const outcome = await run(mallory, { corpusId: "handbook", message: `rotate\u0000key ${i}` }).then(
        (events) => errorOf(events),
        (err: unknown) => ConnectError.from(err),
      );
      expect(outcome instanceof ConnectError ? errorMetadata(outcome).circuit : outcome.metadata.circuit).toBeUndefined();
    }
    const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(metrics).toMatch(/nexus_agent_circuit_state\{dependency="retrieval"\} 0/);
    // Another tenant's run goes through at once.
    const events = await run(owner, { corpusId: "handbook", message: "How do I rotate an API key?" });
    expect(doneOf(events).status).toBe(RunStatus.COMPLETED);
  });

  it("a run admitted while its records and its quota release cannot be written leaves them once the database is back", async () => {
    // The database refuses the run's writes — its events (RunStarted, RunFailed) and metering's
    // settling of the tenant's reservations — with SQLSTATE 57P03, what a PostgreSQL server
    // answers while it cannot accept work. A trigger does it so the shared server keeps running
    // for everyone else; the errors reach the agent and metering over their real connections.
    await mesh.db.query(`
      CREATE OR REPLACE FUNCTION public.nexus_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'the database system is not accepting writes (test outage)' USING ERRCODE = '57P03'; END $$`);
    await mesh.db.query(`CREATE TRIGGER nexus_test_refuse_events BEFORE INSERT ON platform.events FOR EACH ROW
      WHEN (NEW.stream_id LIKE 'agent-run-${tenantId}-%') EXECUTE FUNCTION public.nexus_test_refuse()`);
    await mesh.db.query(`CREATE TRIGGER nexus_test_refuse_settle BEFORE UPDATE ON metering.reservations FOR EACH ROW
      WHEN (OLD.tenant_id::text = '${tenantId}') EXECUTE FUNCTION public.nexus_test_refuse()`);
    let requestId = "";
    try {
      standin.enqueue({ kind: "status", status: 404, body: JSON.stringify({ error: { message: "no such model" } }) });
      const started = performance.now();
      const events = await run(owner, ask("How do I rotate an API key?"));
      // The client is not kept waiting for the outage: error and done come after one try.
      expect(performance.now() - started).toBeLessThan(3000);
      expect(kinds(events).slice(-2)).toEqual(["error", "done"]);
      expect(errorOf(events).code).toBe("FAILED_PRECONDITION");
      requestId = accepted(events).requestId;
      await new Promise((r) => setTimeout(r, 500));
      expect(await runEvents(mesh.db, tenantId, requestId)).toEqual([]);
    } finally {
      await mesh.db.query("DROP TRIGGER IF EXISTS nexus_test_refuse_events ON platform.events");
      await mesh.db.query("DROP TRIGGER IF EXISTS nexus_test_refuse_settle ON metering.reservations");
    }
    await eventually("the run's records to be stored", async () => (await runEvents(mesh.db, tenantId, requestId)).length === 2, 20_000);
    const recorded = await runEvents(mesh.db, tenantId, requestId);
    expect(recorded.map((e) => e.type)).toEqual(["nexus.events.v1.RunStarted", "nexus.events.v1.RunFailed"]);
    expect(recorded[1]?.payload).toMatchObject({ code: "FAILED_PRECONDITION", failedStep: "generate" });
    // The failed run's reservation is given back, not held until it expires.
    await eventually(
      "the reservation to be released",
      async () => {
        const { rows } = await mesh.db.query("SELECT state FROM metering.reservations WHERE tenant_id = $1 AND request_id = $2", [
          tenantId,
          requestId,
        ]);
        return rows[0]?.state === "released";
      },
      20_000,
    );
  });
});
