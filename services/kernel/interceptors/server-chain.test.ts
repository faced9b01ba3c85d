import { Writable } from "node:stream";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { callFailure as failure } from "../../../tests/support/call-failure.js";
import { currentRequestMeta } from "../context.js";
import { domainError, errorReason } from "../errors.js";
import { createLogger } from "../logger.js";
import { isSaneId, requestMetaFromHeaders } from "./request-id.js";
import { serverInterceptors } from "./server-chain.js";

// The kernel chain in front of a real service definition, through connect's in-process
// router transport (the full server is exercised in server/server.test.ts).

function chain(impl: Partial<ServiceImpl<typeof RetrievalService>>) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: "test",
    level: "debug",
    destination: new Writable({
      write(chunk: Buffer, _e, done) {
        for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    }),
  });
  const transport = createRouterTransport((router) => router.service(RetrievalService, impl), {
    router: { interceptors: serverInterceptors({ logger }) },
  });
  return { client: createClient(RetrievalService, transport), lines };
}

describe("kernel interceptor chain", () => {
  it("lists every violated field, in order, in message and BadRequest", async () => {
    const { client } = chain({ search: async () => ({}) });
    const err = await failure(client.search({ corpusId: "", query: "", topK: 0 }));
    expect(err.code).toBe(Code.InvalidArgument);
    // An empty corpus_id breaks two rules (length and pattern): both are reported.
    expect(err.rawMessage).toMatch(/^invalid request: corpus_id: .+; corpus_id: .+; query: .+; top_k: .+$/);
    const fields = err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field);
    expect(fields).toEqual(["corpus_id", "corpus_id", "query", "top_k"]);
  });

  it("never calls the handler with an invalid request", async () => {
    let called = false;
    const { client } = chain({
      search: async () => {
        called = true;
        return {};
      },
    });
    await failure(client.search({ corpusId: "ok", query: "q", topK: 99 }));
    expect(called).toBe(false);
  });

  it("passes domain errors through unchanged", async () => {
    const { client, lines } = chain({
      getCorpus: async (req) => {
        throw domainError("NOT_FOUND", `corpus ${req.corpusId} not found`, { corpus_id: req.corpusId });
      },
    });
    const err = await failure(client.getCorpus({ corpusId: "nope" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("corpus nope not found");
    expect(errorReason(err)).toBe("NOT_FOUND");
    const line = lines.find((l) => l.method === "GetCorpus")!;
    expect(line).toMatchObject({ code: "not_found", reason: "NOT_FOUND", level: 30 });
    expect(line.err).toBeUndefined();
  });

  it("reports a deadline that aborted the handler's work as deadline_exceeded, not internal", async () => {
    const { client } = chain({
      search: (_req, ctx) =>
        new Promise((_resolve, reject) => {
          // What fetch() or a driver does when handed ctx.signal: reject with an AbortError.
          ctx.signal.addEventListener("abort", () => reject(new DOMException("This operation was aborted", "AbortError")));
        }),
    });
    const err = await failure(client.search({ corpusId: "c", query: "q" }, { timeoutMs: 50 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
  });

  it("gives the handler the request ids even without the server's gate", async () => {
    const { client } = chain({
      getCorpus: async () => ({
        corpus: { id: currentRequestMeta()?.requestId ?? "", description: currentRequestMeta()?.correlationId ?? "" },
      }),
    });
    let echoed: string | null = null;
    const res = await client.getCorpus(
      { corpusId: "c" },
      { headers: { "x-request-id": "rid-1", "x-correlation-id": "cid-1" }, onHeader: (h) => (echoed = h.get("x-request-id")) },
    );
    expect(res.corpus).toMatchObject({ id: "rid-1", description: "cid-1" });
    expect(echoed).toBe("rid-1");
  });
});

describe("request ids", () => {
  it("accepts ids that are safe in logs and headers, and replaces the rest", () => {
    for (const ok of ["0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "01HZX3JQ9V", "req_1.2:3-4"]) expect(isSaneId(ok)).toBe(true);
    for (const bad of ["", "a b", "x".repeat(129), "id\nInjected: header", "<script>", null, undefined]) expect(isSaneId(bad)).toBe(false);
    const meta = requestMetaFromHeaders(new Headers({ "x-request-id": "a b", "x-correlation-id": "corr-1" }));
    expect(meta.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(meta.correlationId).toBe("corr-1");
    const own = requestMetaFromHeaders(new Headers());
    expect(own.correlationId).toBe(own.requestId);
  });
});
