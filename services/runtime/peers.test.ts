import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { IngestionService } from "../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { loadConfig } from "../kernel/config.js";
import { CORRELATION_ID_HEADER, currentRequestMeta, principalKey, REQUEST_ID_HEADER } from "../kernel/context.js";
import { domainError, errorReason } from "../kernel/errors.js";
import { createLogger } from "../kernel/logger.js";
import { type BoundAddress, createServer, type NexusServer, type ServerOptions } from "../kernel/server/server.js";
import { createPeers } from "./peers.js";

// Peer calls to a service hosted in the same process go through the server's in-process client
// (kernel/server/in-process-client.ts) instead of HTTP/2 over the loopback. A real server on
// 127.0.0.1 with real service definitions and small handlers; the calls are made through
// createPeers as services make them.

const KEY = "Bearer nxs_k1_in-process-secret-000000000000";

/** Where a handler was reached from, and what it saw. */
interface Seen {
  url: string;
  requestId: string | undefined;
  correlationId: string | undefined;
  principal: string | undefined;
}

let server: NexusServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(
  retrieval: Partial<ServiceImpl<typeof RetrievalService>>,
  options: Partial<ServerOptions> = {},
  ingestion: Partial<ServiceImpl<typeof IngestionService>> = {},
): Promise<{ server: NexusServer; addr: BoundAddress }> {
  server = createServer({
    logger: createLogger({ name: "test", level: "silent" }),
    async authenticate(ctx) {
      if (ctx.requestHeader.get("authorization") !== KEY) throw new ConnectError("missing or unknown API key", Code.Unauthenticated);
      ctx.values.set(principalKey, { kind: "platform", keyId: "k1", name: "ops" });
    },
    services: [
      { name: RetrievalService.typeName, register: (router) => router.service(RetrievalService, retrieval) },
      { name: IngestionService.typeName, register: (router) => router.service(IngestionService, ingestion) },
    ],
    ...options,
  });
  const addr = await server.listen({ port: 0, host: "127.0.0.1" });
  return { server, addr };
}

function peersOf(s: NexusServer, addr: BoundAddress, env: Record<string, string> = {}) {
  return createPeers(loadConfig(env), ["retrieval", "ingestion"], () => addr.url, { inProcess: () => s.inProcessClient });
}

function seenBy(seen: Seen[]): Partial<ServiceImpl<typeof RetrievalService>> {
  return {
    async getCorpus(req, ctx) {
      const meta = currentRequestMeta();
      seen.push({
        url: ctx.url,
        requestId: meta?.requestId,
        correlationId: meta?.correlationId,
        principal: ctx.values.get(principalKey)?.name,
      });
      return { corpus: { id: req.corpusId } };
    },
  };
}

/** The error a call failed with; undefined when it succeeded. */
const failure = (call: Promise<unknown>): Promise<ConnectError | undefined> =>
  call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err),
  );

describe("peer calls to a service hosted in this process", () => {
  it("reach the handler in-process, through the authentication gate, with the caller's ids", async () => {
    const seen: Seen[] = [];
    const { server: s, addr } = await start(seenBy(seen));
    const retrieval = createClient(RetrievalService, peersOf(s, addr).transport("retrieval"));

    const res = await retrieval.getCorpus(
      { corpusId: "c1" },
      { headers: { authorization: KEY, [REQUEST_ID_HEADER]: "req-peer-1", [CORRELATION_ID_HEADER]: "corr-peer-1" } },
    );
    expect(res.corpus?.id).toBe("c1");
    expect(seen).toEqual([
      {
        url: "http://in-process/nexus.retrieval.v1.RetrievalService/GetCorpus",
        requestId: "req-peer-1",
        correlationId: "corr-peer-1",
        principal: "ops",
      },
    ]);

    // The gate runs as for any call: no key, no call.
    const refused = await failure(retrieval.getCorpus({ corpusId: "c1" }));
    expect(refused?.code).toBe(Code.Unauthenticated);
    expect(seen).toHaveLength(1);
  });

  it("go over the network when the service's URL is configured, even to this process", async () => {
    const seen: Seen[] = [];
    const { server: s, addr } = await start(seenBy(seen));
    const retrieval = createClient(RetrievalService, peersOf(s, addr, { NEXUS_RETRIEVAL_URL: addr.url }).transport("retrieval"));
    await retrieval.getCorpus({ corpusId: "c2" }, { headers: { authorization: KEY } });
    expect(seen[0]?.url).toBe(`${addr.url}/nexus.retrieval.v1.RetrievalService/GetCorpus`);
  });

  it("get a domain error with its code and ErrorInfo, also when a stream fails after its first message", async () => {
    const { server: s, addr } = await start(
      {
        async search() {
          throw domainError("NOT_FOUND", "corpus c9 not found", { corpus_id: "c9" });
        },
      },
      {},
      {
        async *watchDocument(req) {
          yield { document: { id: req.documentId } };
          throw domainError("NOT_FOUND", `document ${req.documentId} was deleted`, { document_id: req.documentId });
        },
      },
    );
    const peers = peersOf(s, addr);
    const retrieval = createClient(RetrievalService, peers.transport("retrieval"));
    const unary = await failure(retrieval.search({ corpusId: "c9", query: "q" }, { headers: { authorization: KEY } }));
    expect(unary?.code).toBe(Code.NotFound);
    expect(errorReason(unary!)).toBe("NOT_FOUND");

    // The trailers are read when the stream ends, not copied when its headers come.
    const ingestion = createClient(IngestionService, peers.transport("ingestion"));
    const received: string[] = [];
    const streamed = await failure(
      (async () => {
        for await (const m of ingestion.watchDocument({ documentId: "d1" }, { headers: { authorization: KEY } })) {
          received.push(m.document?.id ?? "");
        }
      })(),
    );
    expect(received).toEqual(["d1"]);
    expect(streamed?.code).toBe(Code.NotFound);
    expect(streamed?.rawMessage).toBe("document d1 was deleted");
    expect(errorReason(streamed!)).toBe("NOT_FOUND");
  });

  it("end at their deadline with DEADLINE_EXCEEDED, and the handler sees its signal abort", async () => {
    let handlerAborted: unknown;
    const { server: s, addr } = await start({
      search: (_req, ctx) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener("abort", () => {
            handlerAborted = ctx.signal.reason;
            reject(ctx.signal.reason);
          }),
        ),
    });
    const retrieval = createClient(RetrievalService, peersOf(s, addr).transport("retrieval"));
    const err = await failure(retrieval.search({ corpusId: "c", query: "q" }, { headers: { authorization: KEY }, timeoutMs: 100 }));
    expect(err?.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => handlerAborted !== undefined).toBe(true);
  });

  it("answer a body that does not decode with INVALID_ARGUMENT and ErrorInfo, as over the network", async () => {
    const { server: s } = await start({
      async search() {
        return {};
      },
    });
    // A gRPC envelope holding bytes that are not a SearchRequest (field 1 of length 200, then 3 bytes).
    const bad = new Uint8Array([0x0a, 0xc8, 0x01, 0x61, 0x62, 0x63]);
    const envelope = new Uint8Array(5 + bad.length);
    new DataView(envelope.buffer).setUint32(1, bad.length);
    envelope.set(bad, 5);
    const res = await s.inProcessClient({
      url: "http://in-process/nexus.retrieval.v1.RetrievalService/Search",
      method: "POST",
      header: new Headers({ "content-type": "application/grpc+proto", te: "trailers", authorization: KEY }),
      body: (async function* () {
        yield envelope;
      })(),
    });
    for await (const _ of res.body) {
      // an error answer has no messages
    }
    const err = findTrailerError(res.trailer);
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.findDetails(ErrorInfoSchema)[0]?.reason).toBeTruthy();
  });

  it("hold a graceful shutdown until they finish, and are refused once it has begun", async () => {
    let release: () => void = () => {};
    let entered = false;
    const { server: s, addr } = await start({
      async createCorpus(req) {
        entered = true;
        await new Promise<void>((r) => (release = r));
        return { corpus: { id: "slow", displayName: req.displayName } };
      },
      async getCorpus(req) {
        return { corpus: { id: req.corpusId } };
      },
    });
    const retrieval = createClient(RetrievalService, peersOf(s, addr).transport("retrieval"));
    const inFlight = retrieval.createCorpus({ displayName: "slow one" }, { headers: { authorization: KEY } });
    await expect.poll(() => entered).toBe(true);
    let closed = false;
    const closing = s.close().then(() => (closed = true));
    expect(s.lifecycle).toBe("draining");

    const refused = await failure(retrieval.getCorpus({ corpusId: "c" }, { headers: { authorization: KEY } }));
    expect(refused?.code).toBe(Code.Unavailable);
    expect(refused?.rawMessage).toBe("the server is shutting down");

    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(false);
    release();
    expect((await inFlight).corpus?.displayName).toBe("slow one");
    await closing;
    expect(s.lifecycle).toBe("closed");
    server = undefined;
  });

  it("are refused with UNAVAILABLE before the server serves", async () => {
    const s = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      services: [{ name: RetrievalService.typeName, register: (router) => router.service(RetrievalService, {}) }],
    });
    const peers = createPeers(loadConfig({}), ["retrieval"], () => undefined, { inProcess: () => s.inProcessClient });
    const err = await failure(createClient(RetrievalService, peers.transport("retrieval")).getCorpus({ corpusId: "c" }));
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe("the server is not serving yet");
    await s.close();
  });
});
