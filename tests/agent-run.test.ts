import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RunRequestSchema, type RunResponse, RunResponseSchema, RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { MessageRole } from "../gen/nexus/agent/v1/session_pb.js";
import { DONT_KNOW_ANSWER } from "../services/agent/providers/extractive/extractive-composer.js";
import type { NexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, runEvents, startAgentMesh } from "./support/agent-mesh.js";
import { connectJsonStream } from "./support/connect-json-stream.js";
import { grpcServerStream } from "./support/grpc-js.js";
import { describeWithPostgres } from "./support/services.js";

// End to end through `nexus dev` (real auth gate, retrieval, ingestion, metering, agent) on
// PostgreSQL: what a client of Run sees, what is stored, and the events metering consumes.

const KEYS = [
  "API keys authenticate every call to Nexus.",
  "To rotate an API key, run nexus keys rotate with the key id: Nexus issues a new secret and the old one keeps working for the grace period.",
  "The grace period defaults to 24 hours. Revoked keys stop working at once.",
].join(" ");
const QUOTAS =
  "Quotas limit how many runs a tenant may start per day and per month. Platform operators change them with nexus quota set. " +
  "When a tenant reaches its hard cap, new runs are refused with QUOTA_EXCEEDED.";
const CAFE =
  "Café ☕ notes 🍵 for the team.\n\nThe espresso machine needs descaling every month. Descaling takes twenty minutes and uses citric acid.";

// Document ids are unique per tenant, and the demo tenant already holds the demo corpus
// ("quotas", "api-keys", …) that `nexus dev` seeds on its first start.
const DOCS = { "hb-keys": KEYS, "hb-quotas": QUOTAS, "hb-cafe": CAFE } as const;

function cp(text: string, start: number, end: number): string {
  return [...text].slice(start, end).join("");
}

async function collect(stream: AsyncIterable<RunResponse>): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

function expectWellFormed(events: readonly RunResponse[]): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
  const kinds = events.map((e) => e.event.case).filter((k) => k !== "heartbeat");
  expect(kinds[0]).toBe("accepted");
  expect(kinds[1]).toBe("retrieval");
  expect(kinds.at(-2)).toBe("messageFinal");
  expect(kinds.at(-1)).toBe("done");
  expect(kinds.slice(2, -2).every((k) => k === "tokenDelta")).toBe(true);
  expect(kinds.slice(2, -2).length).toBeGreaterThan(1);
  const text = events.flatMap((e) => (e.event.case === "tokenDelta" ? [e.event.value.text] : [])).join("");
  const final = events.find((e) => e.event.case === "messageFinal");
  expect(final?.event.case === "messageFinal" && final.event.value.text).toBe(text);
}

function final(events: readonly RunResponse[]) {
  const e = events.find((x) => x.event.case === "messageFinal");
  if (e?.event.case !== "messageFinal") throw new Error("no message_final");
  return e.event.value;
}

function accepted(events: readonly RunResponse[]) {
  const e = events[0];
  if (e?.event.case !== "accepted") throw new Error("no accepted event first");
  return e.event.value;
}

describeWithPostgres("agent Run end to end (nexus dev)", () => {
  let mesh: AgentMesh;
  let owner: NexusClient;

  beforeAll(async () => {
    mesh = await startAgentMesh();
    owner = mesh.client();
    await ingestCorpus(
      owner,
      "handbook",
      Object.entries(DOCS).map(([id, text]) => ({ id, text })),
    );
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
  });

  it("streams accepted → retrieval → token_delta* → message_final → done with seq 1, 2, 3 …", async () => {
    let requestIdHeader: string | null = null;
    let quotaDecision: string | null = null;
    const events = await collect(
      owner.agent.run(
        { corpusId: "handbook", message: "How do I rotate an API key?" },
        {
          onHeader: (h) => {
            requestIdHeader = h.get("x-request-id");
            quotaDecision = h.get("x-nexus-quota-decision");
          },
        },
      ),
    );
    expectWellFormed(events);
    const a = accepted(events);
    expect(a.corpusId).toBe("handbook");
    expect(a.provider).toBe("extractive");
    expect(a.sessionId).toMatch(/^ses_/);
    expect(a.requestId).toBe(requestIdHeader);
    expect(quotaDecision).toMatch(/^(allowed|allowed_soft_cap|allowed_overage|unchecked)$/);
    const retrieval = events[1]?.event;
    expect(retrieval?.case === "retrieval" && retrieval.value.hits.map((h) => h.documentId)).toContain("hb-keys");
    const answer = final(events);
    expect(answer.text).toContain("To rotate an API key, run nexus keys rotate with the key id");
    expect(answer.text).not.toContain("Quotas limit");
    expect(answer.citations.length).toBeGreaterThan(0);
    expect(answer.finishReason).toBe("stop");
    expect(answer.outputTokens).toBeGreaterThan(0n);
    const done = events.at(-1)?.event;
    expect(done?.case === "done" && done.value.status).toBe(RunStatus.COMPLETED);
  });

  it("cites exact spans of the ingested text, counted in code points", async () => {
    const events = await collect(owner.agent.run({ corpusId: "handbook", message: "How often does the espresso machine need descaling?" }));
    expectWellFormed(events);
    const answer = final(events);
    expect(answer.citations.length).toBeGreaterThan(0);
    for (const c of answer.citations) {
      const source = DOCS[c.documentId as keyof typeof DOCS];
      expect(source, c.documentId).toBeDefined();
      expect(cp(source, c.charStart, c.charEnd)).toBe(c.quote);
      expect(answer.text).toContain(c.quote);
      expect(c.filename).toBe(`${c.documentId}.txt`);
      expect(c.score).toBeGreaterThan(0);
    }
    const cafe = answer.citations.find((c) => c.documentId === "hb-cafe");
    expect(cafe?.quote).toBe("The espresso machine needs descaling every month.");
    // The emoji before the sentence count as one character each.
    expect(cafe?.charStart).toBe([..."Café ☕ notes 🍵 for the team.\n\n"].length);
  });

  it("answers that it does not know when nothing relevant was retrieved", async () => {
    const events = await collect(owner.agent.run({ corpusId: "handbook", message: "What is the boiling point of mercury at sea level?" }));
    expectWellFormed(events);
    const answer = final(events);
    expect(answer.text).toBe(DONT_KNOW_ANSWER);
    expect(answer.citations).toEqual([]);
  });

  it("serves gRPC clients (grpc-js) the same stream", async () => {
    const result = await grpcServerStream(
      mesh.address,
      "/nexus.agent.v1.AgentService/Run",
      RunRequestSchema,
      RunResponseSchema,
      { corpusId: "handbook", message: "What is the grace period of a rotated key?" },
      { metadata: { authorization: `Bearer ${mesh.ownerKey}` } },
    );
    expect(result.status.code).toBe(grpc.status.OK);
    expectWellFormed(result.messages);
    expect(final(result.messages).text).toContain("The grace period defaults to 24 hours.");
    expect(result.headers.get("x-request-id")[0]).toBe(accepted(result.messages).requestId);
  });

  it("serves Connect JSON over HTTP/1.1, one envelope per event, as curl sees it", async () => {
    const result = await connectJsonStream(
      `${mesh.url}/nexus.agent.v1.AgentService/Run`,
      { corpusId: "handbook", message: "Who changes quotas?" },
      { headers: { authorization: `Bearer ${mesh.ownerKey}` } },
    );
    expect(result.status).toBe(200);
    expect(result.end).toEqual({});
    const seqs = result.messages.map((m) => m.seq);
    expect(seqs).toEqual(result.messages.map((_, i) => String(i + 1)));
    const kinds = result.messages.map((m) => Object.keys(m).find((k) => k !== "seq"));
    expect(kinds[0]).toBe("accepted");
    expect(kinds[1]).toBe("retrieval");
    expect(kinds.at(-2)).toBe("messageFinal");
    expect(kinds.at(-1)).toBe("done");
    const finalJson = result.messages.at(-2)?.messageFinal as { text: string; citations: Array<{ documentId: string }> };
    expect(finalJson.text).toContain("Platform operators change them with nexus quota set.");
    expect(finalJson.citations[0]?.documentId).toBe("hb-quotas");
    expect((result.messages.at(-1)?.done as { status: string } | undefined)?.status).toBe("RUN_STATUS_COMPLETED");
  });

  it("refuses before acceptance with ordinary RPC errors", async () => {
    const refusal = async (run: () => Promise<unknown>) => {
      try {
        await run();
      } catch (err) {
        return ConnectError.from(err);
      }
      throw new Error("expected a refusal");
    };
    const unknownCorpus = await refusal(() => collect(owner.agent.run({ corpusId: "no-such-corpus", message: "hello there friend" })));
    expect(unknownCorpus.code).toBe(Code.NotFound);
    const unknownSession = await refusal(() =>
      collect(owner.agent.run({ corpusId: "handbook", sessionId: "ses_nope", message: "hello there" })),
    );
    expect(unknownSession.code).toBe(Code.NotFound);
    const platform = await refusal(() =>
      collect(mesh.client(mesh.platformKey).agent.run({ corpusId: "handbook", message: "hello there" })),
    );
    expect(platform.code).toBe(Code.PermissionDenied);
    const invalid = await refusal(() => collect(owner.agent.run({ corpusId: "handbook", message: "" })));
    expect(invalid.code).toBe(Code.InvalidArgument);
    const badProvider = await refusal(() =>
      collect(owner.agent.run({ corpusId: "handbook", message: "hello", options: { provider: "nope" } })),
    );
    expect(badProvider.code).toBe(Code.InvalidArgument);
    const unconfigured = await refusal(() =>
      collect(owner.agent.run({ corpusId: "handbook", message: "hello", options: { provider: "openai" } })),
    );
    expect(unconfigured.code).toBe(Code.FailedPrecondition);
    expect(errorReason(unconfigured)).toBe("FAILED_PRECONDITION");
  });

  it("keeps sessions: continued runs, history, listing, deletion, all within the tenant", async () => {
    const first = await collect(owner.agent.run({ corpusId: "handbook", message: "How do I rotate an API key?" }));
    const sessionId = accepted(first).sessionId;
    const second = await collect(owner.agent.run({ corpusId: "handbook", sessionId, message: "How long is the grace period?" }));
    expect(accepted(second).sessionId).toBe(sessionId);

    const { session, messages } = await owner.agent.getSession({ sessionId });
    expect(session?.messageCount).toBe(4);
    expect(session?.title).toBe("How do I rotate an API key?");
    expect(session?.corpusId).toBe("handbook");
    expect(messages.map((m) => m.role)).toEqual([MessageRole.USER, MessageRole.ASSISTANT, MessageRole.USER, MessageRole.ASSISTANT]);
    expect(messages[1]?.text).toBe(final(first).text);
    expect(messages[1]?.id).toBe(final(first).messageId);
    expect(messages[1]?.citations.map((c) => c.quote)).toEqual(final(first).citations.map((c) => c.quote));
    expect(messages[3]?.requestId).toBe(accepted(second).requestId);
    expect((await owner.agent.getSession({ sessionId, messageLimit: 1 })).messages.map((m) => m.role)).toEqual([MessageRole.ASSISTANT]);

    // Most recently updated first, paged.
    const page1 = await owner.agent.listSessions({ pageSize: 1 });
    expect(page1.sessions[0]?.id).toBe(sessionId);
    expect(page1.nextPageToken).not.toBe("");
    const page2 = await owner.agent.listSessions({ pageSize: 1, pageToken: page1.nextPageToken });
    expect(page2.sessions).toHaveLength(1);
    expect(page2.sessions[0]?.id).not.toBe(sessionId);
    expect((await owner.agent.listSessions({ corpusId: "other" })).sessions).toEqual([]);

    // Another tenant sees none of it.
    const other = mesh.client((await mesh.newTenant("pro")).key);
    await expect(other.agent.getSession({ sessionId })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(other.agent.deleteSession({ sessionId })).rejects.toMatchObject({ code: Code.NotFound });
    expect((await other.agent.listSessions({})).sessions).toEqual([]);
    await expect(collect(other.agent.run({ corpusId: "handbook", sessionId, message: "hi there" }))).rejects.toMatchObject({
      code: Code.NotFound,
    });

    await owner.agent.deleteSession({ sessionId });
    await expect(owner.agent.getSession({ sessionId })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("records RunStarted and RunCompleted with the run's usage for metering", async () => {
    const events = await collect(owner.agent.run({ corpusId: "handbook", message: "How do I rotate an API key?" }));
    const { requestId, sessionId } = accepted(events);
    const { rows } = await mesh.db.query<{ tenant_id: string }>("SELECT tenant_id FROM agent.sessions WHERE session_id = $1", [sessionId]);
    const tenantId = rows[0]?.tenant_id;
    expect(tenantId).toBeDefined();
    const recorded = await runEvents(mesh.db, tenantId!, requestId);
    expect(recorded.map((e) => e.type)).toEqual(["nexus.events.v1.RunStarted", "nexus.events.v1.RunCompleted"]);
    const completed = recorded[1]!.payload as {
      tenantId: string;
      plan: string;
      requestId: string;
      provider: string;
      usage: {
        cpuSeconds?: number;
        gpuSeconds?: number;
        toolCalls: number;
        inputTokens: string;
        outputTokens: string;
        tokenCountsEstimated: boolean;
      };
      timings: { total: string; timeToFirstToken: string; retrieval: string };
      retrievedChunks: number;
      citations: number;
    };
    expect(completed.tenantId).toBe(tenantId);
    expect(completed.plan).toBe("PLAN_PRO");
    expect(completed.requestId).toBe(requestId);
    expect(completed.provider).toBe("extractive");
    expect(completed.usage.toolCalls).toBe(1);
    expect(Number(completed.usage.inputTokens)).toBeGreaterThan(Number(completed.usage.outputTokens));
    expect(Number(completed.usage.outputTokens)).toBe([...final(events).text].length);
    expect(completed.usage.tokenCountsEstimated).toBe(true);
    // CPU of the run's own work only: some, but nowhere near the run's wall time of other runs.
    expect(completed.usage.cpuSeconds ?? 0).toBeGreaterThan(0);
    expect(completed.usage.cpuSeconds ?? 0).toBeLessThan(0.5);
    expect(completed.usage.gpuSeconds ?? 0).toBe(0);
    expect(completed.timings.total).toMatch(/s$/);
    expect(completed.timings.timeToFirstToken).toMatch(/s$/);
    expect(completed.retrievedChunks).toBeGreaterThan(0);
    expect(completed.citations).toBe(final(events).citations.length);
  });
});
