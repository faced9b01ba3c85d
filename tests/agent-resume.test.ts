import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type RunResponse, RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { MessageRole } from "../gen/nexus/agent/v1/session_pb.js";
import { createNexusClient, type NexusClient, resumableRun, watchRunResumable } from "../services/client/index.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, runEvents, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { type OpenAiStandin, startOpenAiStandin } from "./support/openai-standin.js";
import { describeWithPostgres } from "./support/services.js";

// Resuming a dropped Run stream (WatchRun, RunRequest.resumable) end to end through `nexus dev`
// with the model played by a LOCAL STAND-IN for a cloud LLM (tests/support/openai-standin.ts)
// that streams slowly: the connection is cut for real (the client aborts its HTTP request),
// and the client reattaches after the last seq it has.

const KEYS =
  "API keys authenticate every call to Nexus. To rotate an API key, run nexus keys rotate with the key id: " +
  "Nexus issues a new secret and the old one keeps working for the grace period. The grace period defaults to 24 hours.";
const ANSWER = Array.from({ length: 30 }, (_, i) => `word${i}`).join(" ");
const GRACE_MS = 1500;
const RETAIN_MS = 4000;

/**
 * Cuts the connection of the next `cuts[method]` streams of that method after `after`
 * messages: the HTTP request is aborted (the server sees the client go) and the stream
 * fails with UNAVAILABLE, as a dropped network does.
 */
function cutter(cuts: Record<string, { streams: number; after: number }>): Interceptor {
  return (next) => async (req) => {
    const plan = cuts[req.method.name];
    if (!req.stream || plan === undefined || plan.streams <= 0) return next(req);
    plan.streams -= 1;
    const cut = new AbortController();
    const res = await next({ ...req, signal: AbortSignal.any([req.signal, cut.signal]) });
    if (!res.stream) return res;
    const source = res.message;
    async function* broken() {
      let n = 0;
      for await (const m of source) {
        yield m;
        if (++n === plan?.after) {
          cut.abort();
          throw new ConnectError("connection reset by peer", Code.Unavailable);
        }
      }
    }
    return { ...res, message: broken() };
  };
}

function text(events: readonly RunResponse[]): string {
  return events.flatMap((e) => (e.event.case === "tokenDelta" ? [e.event.value.text] : [])).join("");
}

function finalText(events: readonly RunResponse[]): string {
  const e = events.find((x) => x.event.case === "messageFinal")?.event;
  if (e?.case !== "messageFinal") throw new Error("no message_final");
  return e.value.text;
}

async function rpcError(fn: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await fn();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

async function drain(stream: AsyncIterable<RunResponse>): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

describeWithPostgres("resuming a dropped Run stream (WatchRun)", () => {
  let mesh: AgentMesh;
  let standin: OpenAiStandin;
  let owner: NexusClient;
  let tenantId: string;

  const ask = (message: string) => ({ corpusId: "handbook", message, options: { provider: "openai", model: "standin-1" } });
  const flaky = (cuts: Record<string, { streams: number; after: number }>) =>
    createNexusClient({ baseUrl: mesh.url, apiKey: mesh.ownerKey, interceptors: [cutter(cuts)] });

  beforeAll(async () => {
    standin = await startOpenAiStandin();
    mesh = await startAgentMesh({
      NEXUS_OPENAI_BASE_URL: standin.baseUrl,
      NEXUS_OPENAI_API_KEY: "sk-standin",
      NEXUS_AGENT_RESUME_GRACE_MS: String(GRACE_MS),
      NEXUS_AGENT_RUN_RETAIN_MS: String(RETAIN_MS),
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

  it("the SDK's resumableRun reattaches after each drop: every event once, in seq order, every token once", async () => {
    standin.enqueue({ kind: "answer", text: ANSWER, chunkDelayMs: 40 });
    // The Run stream breaks after 5 events, the first reattachment after 4 more.
    const client = flaky({ Run: { streams: 1, after: 5 }, WatchRun: { streams: 1, after: 4 } });
    const reattached: bigint[] = [];
    const events = await drain(resumableRun(client.agent, ask("Tell me about keys"), { onReattach: (seq) => reattached.push(seq) }));
    expect(reattached).toEqual([5n, 9n]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
    expect(events.at(-1)?.event.case).toBe("done");
    expect(text(events)).toBe(ANSWER);
    expect(finalText(events)).toBe(ANSWER);
    // The model's stream was never cut: the run went on while its client was away.
    expect(standin.requests.at(-1)?.clientAborted).toBe(false);
  });

  it("watchRunResumable (a page reloaded mid-answer) replays the run from seq 0 through a refusal and a drop", async () => {
    standin.enqueue({ kind: "answer", text: ANSWER, chunkDelayMs: 40 });
    // The first page: reads a few events, then goes away (its request aborted).
    const gone = new AbortController();
    let requestId = "";
    let seen = 0;
    await expect(
      (async () => {
        for await (const e of owner.agent.run({ ...ask("Keys again"), resumable: true }, { signal: gone.signal })) {
          if (e.event.case === "accepted") requestId = e.event.value.requestId;
          if (++seen === 4) gone.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(requestId).not.toBe("");
    // The reloaded page: its first WatchRun is refused as by a replica that does not hold the
    // run (UNAVAILABLE), its second is cut after 4 events.
    let refused = 0;
    const otherReplicaOnce: Interceptor = (next) => async (req) => {
      if (req.method.name === "WatchRun" && refused++ === 0) throw new ConnectError("on another replica", Code.Unavailable);
      return next(req);
    };
    const client = createNexusClient({
      baseUrl: mesh.url,
      apiKey: mesh.ownerKey,
      interceptors: [otherReplicaOnce, cutter({ WatchRun: { streams: 1, after: 4 } })],
    });
    const reattached: bigint[] = [];
    const events = await drain(watchRunResumable(client.agent, requestId, 0n, { onReattach: (seq) => reattached.push(seq) }));
    expect(reattached).toEqual([0n, 4n]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
    expect(events[0]?.event.case).toBe("accepted");
    expect(events.at(-1)?.event.case).toBe("done");
    expect(text(events)).toBe(ANSWER);
    expect(finalText(events)).toBe(ANSWER);
  });

  it("WatchRun replays from any seq, also after the run ended, and is scoped to the tenant", async () => {
    standin.enqueue({ kind: "answer", text: ANSWER, chunkDelayMs: 5 });
    const all = await drain(owner.agent.run({ ...ask("Once more about keys"), resumable: true }));
    const accepted = all[0]?.event;
    if (accepted?.case !== "accepted") throw new Error("no accepted event");
    const { requestId, sessionId } = accepted.value;
    const tail = await drain(owner.agent.watchRun({ requestId, afterSeq: 3n }));
    expect(tail).toEqual(all.slice(3));
    expect(await drain(owner.agent.watchRun({ requestId, afterSeq: BigInt(all.length) }))).toEqual([]);
    const other = mesh.client((await mesh.newTenant("pro")).key);
    const stranger = await rpcError(() => drain(other.agent.watchRun({ requestId, afterSeq: 0n })));
    expect(stranger.code).toBe(Code.NotFound);
    const unknown = await rpcError(() => drain(owner.agent.watchRun({ requestId: "no-such-run", afterSeq: 0n })));
    expect(unknown.code).toBe(Code.NotFound);
    const ahead = await rpcError(() => drain(owner.agent.watchRun({ requestId, afterSeq: 10_000n })));
    expect(errorReason(ahead)).toBe("INVALID_ARGUMENT");
    // Once the replica forgot the run's events, the answer is in the session.
    const ended = await eventually(
      "the run's events to be forgotten",
      async () => {
        const err = await rpcError(() => drain(owner.agent.watchRun({ requestId, afterSeq: 0n })));
        return errorReason(err) === "RUN_ENDED" ? err : undefined;
      },
      RETAIN_MS * 5,
      200,
    );
    expect(ended.code).toBe(Code.FailedPrecondition);
    expect(errorMetadata(ended).session_id).toBe(sessionId);
    const { messages } = await owner.agent.getSession({ sessionId });
    expect(messages.at(-1)?.role).toBe(MessageRole.ASSISTANT);
    expect(messages.at(-1)?.text).toBe(ANSWER);
  });

  it("a resumable run nobody reattaches to is cancelled after the grace period (a plain one at once: agent-resilience)", async () => {
    standin.enqueue({ kind: "endless", text: "tick tock ", chunkDelayMs: 20 });
    const client = flaky({ Run: { streams: 1, after: 4 } });
    let requestId = "";
    const dropped = Date.now();
    const err = await rpcError(async () => {
      for await (const r of client.agent.run({ ...ask("Tell me everything"), resumable: true })) {
        if (r.event.case === "accepted") requestId = r.event.value.requestId;
      }
    });
    expect(err.code).toBe(Code.Unavailable);
    const upstream = standin.requests.at(-1)!;
    await eventually(
      "the run to be cancelled after the grace period",
      async () => (await runEvents(mesh.db, tenantId, requestId)).length === 2,
      30_000,
    );
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(GRACE_MS);
    expect(upstream.clientAborted).toBe(true);
    const events = await runEvents(mesh.db, tenantId, requestId);
    expect(events.map((e) => e.type)).toEqual(["nexus.events.v1.RunStarted", "nexus.events.v1.RunCancelled"]);
    // Reattaching replays the end: error CANCELLED, done CANCELLED.
    const tail = await drain(owner.agent.watchRun({ requestId, afterSeq: 0n }));
    const done = tail.at(-1)?.event;
    expect(done?.case === "done" && done.value.status).toBe(RunStatus.CANCELLED);
  });

  it("a watcher keeps a resumable run alive past the grace period", async () => {
    standin.enqueue({ kind: "answer", text: ANSWER, chunkDelayMs: 120 });
    const client = flaky({ Run: { streams: 1, after: 3 } });
    const seen: RunResponse[] = [];
    await rpcError(async () => {
      for await (const r of client.agent.run({ ...ask("Slowly about keys"), resumable: true })) seen.push(r);
    });
    const accepted = seen[0]?.event;
    if (accepted?.case !== "accepted") throw new Error("no accepted event");
    // 30 words × 120 ms ≈ 3.6 s: longer than the grace period; the watcher holds the run.
    const rest = await drain(owner.agent.watchRun({ requestId: accepted.value.requestId, afterSeq: seen.at(-1)!.seq }));
    const events = [...seen, ...rest];
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
    expect(text(events)).toBe(ANSWER);
    const done = events.at(-1)?.event;
    expect(done?.case === "done" && done.value.status).toBe(RunStatus.COMPLETED);
  });
});
