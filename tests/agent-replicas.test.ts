import type { AddressInfo } from "node:net";
import net from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type RunResponse, RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { createNexusClient, errorReason, type NexusClient } from "../services/client/index.js";
import { type AgentMesh, ingestCorpus, runEvents, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { type OpenAiStandin, startOpenAiStandin } from "./support/openai-standin.js";
import { describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

// Two agent replicas, as on Kubernetes: `nexus dev` (every service, replica A) and a second
// process `nexus serve --service agent` (replica B) on the same PostgreSQL and NATS. B reaches
// retrieval through a TCP proxy this test can cut, to exercise B's retrieval circuit breaker;
// its model is a LOCAL STAND-IN for a cloud LLM (tests/support/openai-standin.ts). Replica C, a
// third process `nexus serve --service agent`, serves the runs that B follows with WatchRun.

const KEYS = "To rotate an API key, run nexus keys rotate with the key id. The old key keeps working for the grace period.";
const BREAKER_RESET_MS = 1000;

/** A TCP proxy that can be cut: while down it accepts and drops every connection (and counts them). */
async function startCuttableProxy(target: { host: string; port: number }) {
  let down = false;
  let refused = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (down) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = net.connect(target);
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get refused() {
      return refused;
    },
    cut() {
      down = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      down = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function collect(
  client: NexusClient,
  request: Parameters<NexusClient["agent"]["run"]>[0],
  onEvent?: (e: RunResponse, all: RunResponse[]) => Promise<void> | void,
) {
  const out: RunResponse[] = [];
  for await (const r of client.agent.run(request)) {
    out.push(r);
    await onEvent?.(r, out);
  }
  return out;
}

function errorOf(events: readonly RunResponse[]) {
  const e = events.find((x) => x.event.case === "error")?.event;
  return e?.case === "error" ? e.value : undefined;
}

function doneOf(events: readonly RunResponse[]) {
  const e = events.at(-1)?.event;
  return e?.case === "done" ? e.value : undefined;
}

function tokens(events: readonly RunResponse[]): string {
  return events.flatMap((e) => (e.event.case === "tokenDelta" ? [e.event.value.text] : [])).join("");
}

async function drain(stream: AsyncIterable<RunResponse>): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

describeWithPostgresAndNats("agent replicas: WatchRun and CancelRun across replicas, and the retrieval breaker", () => {
  let a: AgentMesh;
  let b: NexusProcess;
  let c: NexusProcess;
  let viaC: NexusClient;
  let standin: OpenAiStandin;
  let proxy: Awaited<ReturnType<typeof startCuttableProxy>>;
  let viaA: NexusClient;
  let viaB: NexusClient;
  let tenantId: string;

  const token = uniqueToken("agent");
  /** Heartbeats every second on B and C: a silent owner is noticed after three. */
  const HEARTBEAT_MS = 1000;

  beforeAll(async () => {
    standin = await startOpenAiStandin();
    const shared = {
      NATS_URL: TEST_NATS_URL,
      NEXUS_SUBJECT_PREFIX: token,
      NEXUS_NATS_STREAM: `${token}_EVENTS`,
      NEXUS_DLQ_STREAM: `${token}_DLQ`,
      NEXUS_OPENAI_BASE_URL: standin.baseUrl,
    };
    a = await startAgentMesh(shared);
    proxy = await startCuttableProxy({ host: "127.0.0.1", port: Number(new URL(a.url).port) });
    // An agent-only process on the same database and NATS, using auth and metering of replica A.
    const agentReplica = (env: Record<string, string>) =>
      startNexus({
        args: ["serve", "--service", "agent", "--port", "0", "--host", "127.0.0.1"],
        env: {
          ...shared,
          DATABASE_URL: a.databaseUrl,
          NEXUS_AUTH_URL: a.url,
          NEXUS_METERING_URL: a.url,
          NEXUS_AGENT_HEARTBEAT_MS: String(HEARTBEAT_MS),
          LOG_LEVEL: "warn",
          ...env,
        },
      });
    b = await agentReplica({
      NEXUS_RETRIEVAL_URL: proxy.url,
      NEXUS_AGENT_BREAKER_FAILURES: "2",
      NEXUS_AGENT_BREAKER_RESET_MS: String(BREAKER_RESET_MS),
      NEXUS_AGENT_RETRIEVAL_TIMEOUT_MS: "3000",
    });
    // Replica C: a second `nexus serve --service agent` (retrieval reached directly).
    c = await agentReplica({ NEXUS_RETRIEVAL_URL: a.url });
    viaC = createNexusClient({ baseUrl: c.url.replace("localhost", "127.0.0.1"), apiKey: a.ownerKey });
    viaA = a.client();
    viaB = createNexusClient({ baseUrl: b.url.replace("localhost", "127.0.0.1"), apiKey: a.ownerKey });
    await ingestCorpus(viaA, "handbook", [{ id: "keys", text: KEYS }]);
    const t = await a.db.query<{ id: string }>("SELECT id FROM auth.tenants WHERE slug = 'demo'");
    tenantId = t.rows[0]!.id;
  }, 180_000);
  afterAll(async () => {
    await b?.stop();
    await c?.stop();
    await a?.close();
    await proxy?.close();
    await standin?.close();
    await deleteSuiteStreams(token, [`${token}_EVENTS`, `${token}_DLQ`]);
  });

  it("replica B answers runs, authenticating through auth on replica A", async () => {
    const events = await collect(viaB, { corpusId: "handbook", message: "How do I rotate an API key?" });
    expect(doneOf(events)?.status).toBe(RunStatus.COMPLETED);
  });

  /** Starts a slow resumable run on replica C and hangs up once `cut` says so; the run goes on. */
  async function startAndCut(message: string, cut: (seen: RunResponse[]) => boolean) {
    standin.enqueue({ kind: "answer", text: Array.from({ length: 40 }, (_, i) => `word${i}`).join(" "), chunkDelayMs: 60 });
    const seen: RunResponse[] = [];
    for await (const r of viaC.agent.run({ corpusId: "handbook", message, options: { provider: "openai" }, resumable: true })) {
      seen.push(r);
      if (cut(seen)) break;
    }
    const accepted = seen[0]?.event;
    if (accepted?.case !== "accepted") throw new Error("no accepted event");
    const { requestId } = accepted.value;
    // Replica B finds the run by its stored RunStarted (written with the first token at the latest).
    await eventually("RunStarted to be stored", async () => (await runEvents(a.db, tenantId, requestId)).length > 0);
    return { seen, requestId };
  }

  it("WatchRun on replica B follows a run that replica C serves: every event after the seq once, in order, to the end", async () => {
    // The Run call on C is cut (the client hangs up) after a few tokens; the resumable run goes on.
    const { seen, requestId } = await startAndCut(
      "Tell me about keys",
      (all) => all.filter((e) => e.event.case === "tokenDelta").length >= 3,
    );
    // From a seq before the cut: some events replayed, the rest live, through replica B.
    const afterSeq = seen.at(-2)!.seq;
    const tail = await drain(viaB.agent.watchRun({ requestId, afterSeq }));
    expect(tail.map((e) => e.seq)).toEqual(tail.map((_, i) => afterSeq + 1n + BigInt(i)));
    expect(tail.slice(0, seen.length - Number(afterSeq))).toEqual(seen.slice(Number(afterSeq)));
    expect(doneOf(tail)?.status).toBe(RunStatus.COMPLETED);
    const final = tail.find((e) => e.event.case === "messageFinal")?.event;
    expect(final?.case === "messageFinal" ? final.value.text : undefined).toBe(tokens(seen.slice(0, Number(afterSeq))) + tokens(tail));
    // Ended but still held by C: replayed whole through B; from the end nothing.
    const whole = await drain(viaB.agent.watchRun({ requestId, afterSeq: 0n }));
    expect(whole.slice(Number(afterSeq))).toEqual(tail);
    expect(await drain(viaB.agent.watchRun({ requestId, afterSeq: whole.at(-1)!.seq }))).toEqual([]);
    // Another tenant's caller is told NOT_FOUND by B.
    const other = createNexusClient({ baseUrl: b.url.replace("localhost", "127.0.0.1"), apiKey: (await a.newTenant("pro")).key });
    await expect(drain(other.agent.watchRun({ requestId, afterSeq: 0n }))).rejects.toMatchObject({ code: Code.NotFound });
    await expect(drain(viaB.agent.watchRun({ requestId, afterSeq: 10_000n }))).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("a WatchRun on replica B that is itself cut is picked up again after its last seq, through B", async () => {
    const { seen: first, requestId } = await startAndCut("Keys again", (all) => all.length >= 3);
    const watched: RunResponse[] = [];
    for await (const r of viaB.agent.watchRun({ requestId, afterSeq: first.at(-1)!.seq })) {
      watched.push(r);
      if (watched.length >= 4) break;
    }
    const rest = await drain(viaB.agent.watchRun({ requestId, afterSeq: watched.at(-1)!.seq }));
    const all = [...first, ...watched, ...rest];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => BigInt(i + 1)));
    expect(doneOf(all)?.status).toBe(RunStatus.COMPLETED);
    const final = all.find((e) => e.event.case === "messageFinal")?.event;
    expect(final?.case === "messageFinal" ? final.value.text : undefined).toBe(tokens(all));
  });

  it("CancelRun sent to replica A cancels a run that replica B serves", async () => {
    standin.enqueue({ kind: "endless", text: "tick tock ", chunkDelayMs: 20 });
    let cancelled: boolean | undefined;
    const events = await collect(
      viaB,
      { corpusId: "handbook", message: "Tell me everything", options: { provider: "openai" } },
      async (r, all) => {
        if (r.event.case === "tokenDelta" && cancelled === undefined) {
          const first = all[0]?.event;
          if (first?.case !== "accepted") throw new Error("no accepted event");
          // RunStarted is what replica A finds the run by; it is stored once the first token is
          // written (at the latest 100 ms after acceptance).
          await eventually("RunStarted to be stored", async () => (await runEvents(a.db, tenantId, first.value.requestId)).length > 0);
          cancelled = (await viaA.agent.cancelRun({ requestId: first.value.requestId })).cancelled;
        }
      },
    );
    expect(cancelled).toBe(true);
    expect(errorOf(events)?.code).toBe("CANCELLED");
    expect(doneOf(events)?.status).toBe(RunStatus.CANCELLED);
    const upstream = standin.requests.at(-1)!;
    await eventually("the stand-in model to see replica B hang up", () => upstream.clientAborted, 5000);
    const first = events[0]?.event;
    const recorded = first?.case === "accepted" ? await runEvents(a.db, tenantId, first.value.requestId) : [];
    expect(recorded.map((e) => e.type)).toEqual([
      "nexus.events.v1.RunStarted",
      "nexus.events.v1.RunCancelRequested",
      "nexus.events.v1.RunCancelled",
    ]);
    expect(recorded[2]?.payload.byCancelRun).toBe(true);
    // Once the run has ended, CancelRun anywhere answers false.
    expect((await viaA.agent.cancelRun({ requestId: first?.case === "accepted" ? first.value.requestId : "" })).cancelled).toBe(false);
    expect((await viaA.agent.cancelRun({ requestId: "never-was-a-run" })).cancelled).toBe(false);
  });

  it("opens replica B's retrieval breaker when retrieval is unreachable, fails fast, and recovers", async () => {
    proxy.cut();
    for (let i = 0; i < 2; i++) {
      const events = await collect(viaB, { corpusId: "handbook", message: "How do I rotate an API key?" });
      expect(errorOf(events)).toMatchObject({ code: "UNAVAILABLE", reason: "DEPENDENCY_UNAVAILABLE" });
      expect(errorOf(events)?.metadata.dependency).toBe("retrieval");
      expect(doneOf(events)?.status).toBe(RunStatus.FAILED);
    }
    const attempts = proxy.refused;
    expect(attempts).toBeGreaterThan(0);
    const fast = await collect(viaB, { corpusId: "handbook", message: "How do I rotate an API key?" });
    expect(errorOf(fast)?.metadata).toMatchObject({ dependency: "retrieval", circuit: "open" });
    expect(errorOf(fast)?.retryAfter).toBeDefined();
    // Open: the call was not even attempted.
    expect(proxy.refused).toBe(attempts);
    const metrics = await (await fetch(`${b.url.replace("localhost", "127.0.0.1")}/metrics`)).text();
    expect(metrics).toMatch(/nexus_agent_circuit_state\{dependency="retrieval"\} 2/);

    proxy.restore();
    await eventually(
      "a probe to get through and close the breaker",
      async () =>
        doneOf(await collect(viaB, { corpusId: "handbook", message: "How do I rotate an API key?" }))?.status === RunStatus.COMPLETED,
      BREAKER_RESET_MS * 15,
    );
    const after = await (await fetch(`${b.url.replace("localhost", "127.0.0.1")}/metrics`)).text();
    expect(after).toMatch(/nexus_agent_circuit_state\{dependency="retrieval"\} 0/);
  });

  // Last: replica C is killed.
  it("when the owner replica dies, a WatchRun through B ends with RUN_ON_OTHER_REPLICA, and so does a new one", async () => {
    const { seen, requestId } = await startAndCut("Keys, one last time", (all) => all.length >= 3);
    const watched: RunResponse[] = [];
    const watching = (async () => {
      for await (const r of viaB.agent.watchRun({ requestId, afterSeq: seen.at(-1)!.seq })) watched.push(r);
    })();
    await eventually("B to relay events from C", () => watched.length >= 2);
    await c.stop("SIGKILL");
    const lost = await watching.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(errorReason(lost)).toBe("RUN_ON_OTHER_REPLICA");
    expect(watched.map((e) => e.seq)).toEqual(watched.map((_, i) => seen.at(-1)!.seq + 1n + BigInt(i)));
    await expect(drain(viaB.agent.watchRun({ requestId, afterSeq: 0n }))).rejects.toMatchObject({ code: Code.Unavailable });
  });
});
