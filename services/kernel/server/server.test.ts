import http from "node:http";
import net from "node:net";
import { Writable } from "node:stream";
import type { DescMessage, JsonValue, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { errorFromJson } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { HealthCheckResponse } from "../../../gen/grpc/health/v1/health_pb.js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../../gen/grpc/health/v1/health_pb.js";
import * as reflection from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { GetCorpusRequestSchema, RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { callFailure as failure } from "../../../tests/support/call-failure.js";
import { currentRequestMeta, principalKey } from "../context.js";
import { errorReason } from "../errors.js";
import { createLogger } from "../logger.js";
import type { BoundAddress, NexusServer } from "./server.js";
import { createServer } from "./server.js";
import type { ServiceModule } from "./service-module.js";
import { installSignalHandlers } from "./signals.js";

// A real server on 127.0.0.1 with real Nexus service definitions (retrieval, ingestion)
// whose methods are small test implementations: this tests the kernel, not the services.

/** Captures pino's JSON lines. */
class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split("\n")) {
      if (!line) continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function retrievalModule(impl: Partial<ServiceImpl<typeof RetrievalService>>, extra: Partial<ServiceModule> = {}): ServiceModule {
  return { name: RetrievalService.typeName, register: (router) => router.service(RetrievalService, impl), ...extra };
}

function ingestionModule(impl: Partial<ServiceImpl<typeof IngestionService>>): ServiceModule {
  return { name: IngestionService.typeName, register: (router) => router.service(IngestionService, impl) };
}

/** A gRPC (grpc-js) unary call with protobuf-es serializers: a client that knows nothing of Connect. */
function grpcUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  input: I,
  output: O,
  message: MessageShape<I>,
  metadata = new grpc.Metadata(),
): Promise<{ message: MessageShape<O>; headers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = client.makeUnaryRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      message,
      metadata,
      (err, res) => (err ? reject(err) : resolve({ message: res as MessageShape<O>, headers })),
    );
    call.on("metadata", (m) => (headers = m));
  });
}

function grpcReflect(client: grpc.Client, requests: reflection.ServerReflectionRequest[]): Promise<reflection.ServerReflectionResponse[]> {
  return new Promise((resolve, reject) => {
    const out: reflection.ServerReflectionResponse[] = [];
    const call = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      (m: reflection.ServerReflectionRequest) => Buffer.from(toBinary(reflection.ServerReflectionRequestSchema, m)),
      (b: Buffer) => fromBinary(reflection.ServerReflectionResponseSchema, b),
    );
    call.on("data", (m: reflection.ServerReflectionResponse) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
    for (const r of requests) call.write(r);
    call.end();
  });
}

describe("kernel server: one port, every protocol", () => {
  const logs = new LogCapture();
  const logger = createLogger({ name: "test", level: "debug", destination: logs });
  let server: NexusServer;
  let addr: BoundAddress;
  let grpcClient: grpc.Client;

  beforeAll(async () => {
    server = createServer({
      logger,
      readMaxBytes: 64 * 1024,
      cors: { origins: ["https://app.example.com"] },
      services: [
        retrievalModule({
          async search(req) {
            return { embeddingModel: `top_k=${req.topK ?? "default"}` };
          },
          async getCorpus(req, ctx) {
            // What the handler sees of the request's ids (context value and async scope).
            const meta = currentRequestMeta();
            return {
              corpus: {
                id: req.corpusId,
                displayName: meta?.requestId ?? "",
                description: meta?.correlationId ?? "",
                embeddingModel: ctx.values.get(principalKey)?.name ?? "",
              },
            };
          },
          async deleteCorpus() {
            throw new Error("connection to db-7 lost: password=hunter2");
          },
          async createCorpus(req) {
            return { corpus: { id: "c1", displayName: req.displayName, description: `${req.description.length}` } };
          },
        }),
        ingestionModule({
          async *watchDocument(req) {
            for (let i = 0; i < 3; i++) {
              await new Promise((r) => setTimeout(r, 5));
              yield { document: { id: `${req.documentId}:${i}`, filename: currentRequestMeta()?.requestId ?? "none" } };
            }
          },
          async uploadDocument(parts) {
            let bytes = 0;
            let filename = "";
            for await (const p of parts) {
              if (p.part.case === "header") filename = p.part.value.filename;
              if (p.part.case === "chunk") bytes += p.part.value.length;
            }
            return { document: { filename, sizeBytes: BigInt(bytes) } };
          },
        }),
      ],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
    grpcClient = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    grpcClient?.close();
    await server?.close();
  });

  it("answers grpc.health.v1 Check over HTTP/2 to a grpc-js client", async () => {
    const overall = await grpcUnary(
      grpcClient,
      "/grpc.health.v1.Health/Check",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      create(HealthCheckRequestSchema, { service: "" }),
    );
    expect(overall.message.status).toBe(Status.SERVING);
    const retrieval = await grpcUnary(
      grpcClient,
      "/grpc.health.v1.Health/Check",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      create(HealthCheckRequestSchema, { service: RetrievalService.typeName }),
    );
    expect(retrieval.message.status).toBe(Status.SERVING);
    await expect(
      grpcUnary(
        grpcClient,
        "/grpc.health.v1.Health/Check",
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        create(HealthCheckRequestSchema, { service: "nope.v1.Nope" }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("lists every service's health and answers Watch for an unknown service with SERVICE_UNKNOWN", async () => {
    const list = await grpcUnary(
      grpcClient,
      "/grpc.health.v1.Health/List",
      HealthListRequestSchema,
      HealthListResponseSchema,
      create(HealthListRequestSchema, {}),
    );
    const statuses = Object.fromEntries(Object.entries(list.message.statuses).map(([k, v]) => [k, v.status]));
    expect(statuses).toEqual({
      "": Status.SERVING,
      [RetrievalService.typeName]: Status.SERVING,
      [IngestionService.typeName]: Status.SERVING,
    });
    const first = await new Promise<Status>((resolve, reject) => {
      const call = grpcClient.makeServerStreamRequest(
        "/grpc.health.v1.Health/Watch",
        (m: MessageShape<typeof HealthCheckRequestSchema>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
        (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
        create(HealthCheckRequestSchema, { service: "nope.v1.Nope" }),
      );
      call.on("data", (m: HealthCheckResponse) => {
        resolve(m.status);
        call.cancel();
      });
      call.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    expect(first).toBe(Status.SERVICE_UNKNOWN);
  });

  it("lists services and serves file descriptors through reflection (grpc-js, HTTP/2)", async () => {
    const responses = await grpcReflect(grpcClient, [
      create(reflection.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
      create(reflection.ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "nexus.retrieval.v1.RetrievalService.Search" },
      }),
    ]);
    expect(responses).toHaveLength(2);
    const list = responses[0]!.messageResponse;
    expect(list.case).toBe("listServicesResponse");
    const names = list.case === "listServicesResponse" ? list.value.service.map((s) => s.name) : [];
    expect(names).toEqual(
      expect.arrayContaining([
        RetrievalService.typeName,
        IngestionService.typeName,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
    const files = responses[1]!.messageResponse;
    expect(files.case).toBe("fileDescriptorResponse");
    const protos =
      files.case === "fileDescriptorResponse" ? files.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)) : [];
    expect(protos[0]!.name).toBe("nexus/retrieval/v1/retrieval_service.proto");
    // The transitive imports come along, so a client can build the descriptors without files.
    const fileNames = protos.map((p) => p.name);
    expect(fileNames).toEqual(expect.arrayContaining(["buf/validate/validate.proto", "google/protobuf/descriptor.proto"]));
    for (const p of protos) for (const dep of p.dependency) expect(fileNames).toContain(dep);
  });

  it("serves a Connect JSON call over plain HTTP/1.1 on the same port (like curl)", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ corpusId: "handbook", query: "rotate keys", topK: 7 }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ embeddingModel: "top_k=7" });
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses a JSON field the API does not have (a typo) with invalid_argument naming it, instead of dropping it", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ corpusId: "handbook", query: "rotate keys", topk: 7 }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string; details?: Array<{ type: string; debug?: { reason?: string } }> };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/key "topk" is unknown/);
    // Decoding fails before any interceptor runs; the answer still carries ErrorInfo like every other.
    expect(body.details?.find((d) => d.type === "google.rpc.ErrorInfo")?.debug?.reason).toBe("INVALID_ARGUMENT");
  });

  it("answers a body that is not JSON with invalid_argument and ErrorInfo", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"query": bad json',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string; details?: Array<{ type: string; debug?: { reason?: string } }> };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("is not valid JSON");
    expect(body.details?.find((d) => d.type === "google.rpc.ErrorInfo")?.debug?.reason).toBe("INVALID_ARGUMENT");
    // What a Connect client makes of that answer: the reason is readable the usual way.
    const err = errorFromJson(body as unknown as JsonValue, undefined, new ConnectError("fallback"));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(errorReason(err)).toBe("INVALID_ARGUMENT");
  });

  it("serves gRPC-Web over HTTP/1.1 and Connect binary over HTTP/2", async () => {
    const web = createClient(RetrievalService, createGrpcWebTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    expect((await web.search({ corpusId: "c", query: "q", topK: 3 })).embeddingModel).toBe("top_k=3");
    const h2 = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "2", useBinaryFormat: true }));
    expect((await h2.search({ corpusId: "c", query: "q" })).embeddingModel).toBe("top_k=default");
  });

  it("streams server-streaming responses and sees the request id in every step of the stream", async () => {
    for (const transport of [
      createGrpcTransport({ baseUrl: addr.url }),
      createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }),
    ]) {
      const client = createClient(IngestionService, transport);
      const seen: { id: string; filename: string }[] = [];
      let requestId: string | null = null;
      for await (const m of client.watchDocument(
        { documentId: "doc1" },
        { headers: { "x-request-id": "req-stream-1" }, onHeader: (h) => (requestId = h.get("x-request-id")) },
      )) {
        seen.push({ id: m.document!.id, filename: m.document!.filename });
      }
      expect(seen.map((s) => s.id)).toEqual(["doc1:0", "doc1:1", "doc1:2"]);
      expect(seen.map((s) => s.filename)).toEqual(["req-stream-1", "req-stream-1", "req-stream-1"]);
      expect(requestId).toBe("req-stream-1");
    }
  });

  it("accepts a client stream over gRPC", async () => {
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: addr.url }));
    async function* parts() {
      yield { part: { case: "header" as const, value: { corpusId: "c1", filename: "a.txt" } } };
      yield { part: { case: "chunk" as const, value: new Uint8Array(10) } };
      yield { part: { case: "chunk" as const, value: new Uint8Array(5) } };
    }
    const res = await client.uploadDocument(parts());
    expect(res.document?.filename).toBe("a.txt");
    expect(res.document?.sizeBytes).toBe(15n);
  });

  it("echoes a sane x-request-id, keeps the correlation id, and shows both to the handler", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/GetCorpus`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-abc-123", "x-correlation-id": "corr-9" },
      body: JSON.stringify({ corpusId: "handbook" }),
    });
    expect(res.headers.get("x-request-id")).toBe("req-abc-123");
    const body = (await res.json()) as { corpus: { displayName: string; description: string } };
    expect(body.corpus.displayName).toBe("req-abc-123");
    expect(body.corpus.description).toBe("corr-9");

    // An unusable id (spaces, too long) is replaced, and the replacement is what the handler sees.
    const bad = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/GetCorpus`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "drop table; --" },
      body: JSON.stringify({ corpusId: "handbook" }),
    });
    const echoed = bad.headers.get("x-request-id")!;
    expect(echoed).not.toBe("drop table; --");
    const badBody = (await bad.json()) as { corpus: { displayName: string; description: string } };
    expect(badBody.corpus.displayName).toBe(echoed);
    expect(badBody.corpus.description).toBe(echoed);
  });

  it("turns a validation failure into invalid_argument VALIDATION_FAILED naming the field", async () => {
    const client = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    const ce = await failure(client.search({ corpusId: "handbook", query: "q", topK: 51 }));
    expect(ce.code).toBe(Code.InvalidArgument);
    expect(errorReason(ce)).toBe("VALIDATION_FAILED");
    expect(ce.rawMessage).toMatch(/^invalid request: top_k: must be .*less than or equal to 50$/);
    const badRequest = ce.findDetails(BadRequestSchema)[0];
    expect(badRequest?.fieldViolations.map((v) => v.field)).toEqual(["top_k"]);
    const violations = ce.findDetails(ViolationsSchema)[0];
    expect(violations?.violations[0]?.ruleId).toBe("uint32.gte_lte");
    expect(ce.findDetails(ErrorInfoSchema)[0]?.metadata.fields).toBe("top_k");

    // Plain JSON over HTTP/1.1 says the same to curl users.
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ corpusId: "", query: "q" }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("corpus_id:");
  });

  it("validates every message of a client stream", async () => {
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: addr.url }));
    async function* parts() {
      yield { part: { case: "header" as const, value: { corpusId: "c1", filename: "a.txt" } } };
      yield { part: { case: "chunk" as const, value: new Uint8Array(0) } };
    }
    const err = await failure(client.uploadDocument(parts()));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(errorReason(err)).toBe("VALIDATION_FAILED");
    expect(err.rawMessage).toContain("chunk:");
  });

  it("hides a handler's plain Error behind a generic internal error and logs the cause", async () => {
    const client = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    const err = await failure(client.deleteCorpus({ corpusId: "c1" }, { headers: { "x-request-id": "req-boom-1" } }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error (request id req-boom-1)");
    expect(JSON.stringify(err)).not.toContain("db-7");
    const line = await until(() => logs.lines.find((l) => l.request_id === "req-boom-1" && l.code === "internal"), "the RPC log line");
    expect(line.level).toBe(50);
    expect(line.method).toBe("DeleteCorpus");
    expect(line.service).toBe(RetrievalService.typeName);
    expect(JSON.stringify(line.err)).toContain("connection to db-7 lost");
    // ... and the password in the cause's message is redacted even there.
    expect(logs.raw.join("\n")).not.toContain("hunter2");
  });

  it("logs one line per RPC with ids, code and duration", async () => {
    await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-log-1", "x-correlation-id": "corr-log-1" },
      body: JSON.stringify({ corpusId: "c", query: "q" }),
    });
    const lines = await until(() => {
      const found = logs.lines.filter((l) => l.request_id === "req-log-1");
      return found.length > 0 ? found : undefined;
    }, "log line");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      correlation_id: "corr-log-1",
      service: RetrievalService.typeName,
      method: "Search",
      code: "ok",
      protocol: "connect",
    });
    expect(typeof lines[0]!.duration_ms).toBe("number");
  });

  it("shows RED metrics on /metrics with service, method and code", async () => {
    const res = await fetch(`${addr.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/nexus_rpc_requests_total\{service="nexus\.retrieval\.v1\.RetrievalService",method="Search",code="ok"\} \d+/);
    expect(text).toMatch(
      /nexus_rpc_requests_total\{service="nexus\.retrieval\.v1\.RetrievalService",method="Search",code="invalid_argument"\} \d+/,
    );
    expect(text).toMatch(
      /nexus_rpc_duration_seconds_bucket\{le="[^"]+",service="nexus\.retrieval\.v1\.RetrievalService",method="Search",code="ok"\}/,
    );
    expect(text).toContain("nexus_rpc_in_flight");
  });

  it("refuses a request body over readMaxBytes with resource_exhausted", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/CreateCorpus`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ displayName: "big", description: "x".repeat(100 * 1024) }),
    });
    const body = (await res.json()) as { code: string };
    expect(body.code).toBe("resource_exhausted");
    const client = createClient(RetrievalService, createGrpcTransport({ baseUrl: addr.url }));
    const err = await failure(client.createCorpus({ displayName: "big", description: "x".repeat(100 * 1024) }));
    expect(err.code).toBe(Code.ResourceExhausted);
  });

  it("answers CORS preflights for allowed origins and exposes the gRPC and Nexus headers", async () => {
    const preflight = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,authorization,x-request-id",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    const allowHeaders = preflight.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "authorization", "x-request-id", "x-grpc-web"])
      expect(allowHeaders).toContain(h);

    const actual = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { origin: "https://app.example.com", "content-type": "application/json" },
      body: JSON.stringify({ corpusId: "c", query: "q" }),
    });
    expect(actual.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const exposed = actual.headers.get("access-control-expose-headers")!.toLowerCase();
    for (const h of ["grpc-status", "grpc-message", "x-request-id"]) expect(exposed).toContain(h);

    const foreign = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("serves /healthz and /readyz", async () => {
    const live = await fetch(`${addr.url}/healthz`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${addr.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", failing: [] });
  });

  it("keeps serving HTTP/1.1 keep-alive connections with several requests", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${addr.url}/healthz`, { agent }, (res) => {
          ports.add(res.socket.localPort!);
          res.resume();
          res.on("end", resolve);
        });
        req.on("error", reject);
        req.end();
      });
    }
    agent.destroy();
    expect(ports.size).toBe(1);
  });
});

describe("kernel server: authentication slot", () => {
  const logs = new LogCapture();
  let server: NexusServer;
  let addr: BoundAddress;

  beforeAll(async () => {
    server = createServer({
      logger: createLogger({ name: "test", level: "info", destination: logs }),
      async authenticate(ctx) {
        const auth = ctx.requestHeader.get("authorization");
        if (auth !== "Bearer nxs_k1_sekret-value-1234") throw new ConnectError("missing or unknown API key", Code.Unauthenticated);
        ctx.values.set(principalKey, { kind: "platform", keyId: "k1", name: "ops" });
      },
      services: [
        retrievalModule({
          async getCorpus(req, ctx) {
            return { corpus: { id: req.corpusId, embeddingModel: ctx.values.get(principalKey)?.name ?? "" } };
          },
        }),
      ],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(() => server.close());

  it("refuses an unauthenticated call before the handler, and lets health through", async () => {
    const client = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    const err = await failure(client.getCorpus({ corpusId: "c" }, { headers: { "x-request-id": "req-unauth-1" } }));
    expect(err.code).toBe(Code.Unauthenticated);
    const ok = await client.getCorpus({ corpusId: "c" }, { headers: { authorization: "Bearer nxs_k1_sekret-value-1234" } });
    expect(ok.corpus?.embeddingModel).toBe("ops");

    const health = await fetch(`${addr.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await health.json()).toEqual({ status: "SERVING" });

    // The refusal is logged and counted like any RPC, and the key never reaches the log.
    const line = await until(() => logs.lines.find((l) => l.request_id === "req-unauth-1"), "refusal log line");
    expect(line).toMatchObject({ code: "unauthenticated", method: "GetCorpus" });
    expect(logs.raw.join("\n")).not.toContain("sekret");
    const metrics = await (await fetch(`${addr.url}/metrics`)).text();
    expect(metrics).toMatch(
      /nexus_rpc_requests_total\{service="nexus\.retrieval\.v1\.RetrievalService",method="GetCorpus",code="unauthenticated"\} [1-9]/,
    );
  });

  it("refuses before reading the body: an oversized unauthenticated upload is unauthenticated, not resource_exhausted", async () => {
    const res = await fetch(`${addr.url}/nexus.retrieval.v1.RetrievalService/GetCorpus`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ corpusId: "x".repeat(5 * 1024 * 1024) }),
    });
    expect(((await res.json()) as { code: string }).code).toBe("unauthenticated");
  });
});

describe("kernel server: health follows readiness and shutdown", () => {
  let server: NexusServer;
  let addr: BoundAddress;
  let moduleReady = true;
  let release: () => void = () => {};
  let entered = false;
  const hookOrder: string[] = [];

  afterEach(() => {
    release();
  });

  beforeAll(async () => {
    server = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      shutdownTimeoutMs: 10_000,
      healthWatchIntervalMs: 50,
      readinessChecks: { database: async () => ({ ready: true }) },
      services: [
        retrievalModule(
          {
            async createCorpus(req) {
              entered = true;
              await new Promise<void>((r) => (release = r));
              return { corpus: { id: "slow", displayName: req.displayName } };
            },
          },
          {
            readiness: async () => (moduleReady ? { ready: true } : { ready: false, reason: "consumer stalled for 90 s" }),
            shutdown: async () => {
              hookOrder.push("module");
            },
          },
        ),
        ingestionModule({}),
      ],
    });
    server.onShutdown("telemetry flush", () => {
      hookOrder.push("telemetry");
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(() => server.close());

  async function check(client: grpc.Client, service: string): Promise<Status> {
    const res = await grpcUnary(
      client,
      "/grpc.health.v1.Health/Check",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      create(HealthCheckRequestSchema, { service }),
    );
    return res.message.status;
  }

  it("reports a module NOT_SERVING while its readiness fails, and /readyz names the check", async () => {
    const client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
    try {
      moduleReady = false;
      // Check answers from an evaluation at most 250 ms old (ServingState.recent): a check's
      // change shows within that bound.
      await until(async () => (await check(client, RetrievalService.typeName)) === Status.NOT_SERVING, "NOT_SERVING", 2000);
      expect(await check(client, IngestionService.typeName)).toBe(Status.SERVING);
      expect(await check(client, "")).toBe(Status.NOT_SERVING);
      const ready = await fetch(`${addr.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        status: "not_ready",
        failing: [{ name: RetrievalService.typeName, reason: "consumer stalled for 90 s" }],
      });
      moduleReady = true;
      await until(async () => (await check(client, RetrievalService.typeName)) === Status.SERVING, "SERVING again", 2000);
      expect((await fetch(`${addr.url}/readyz`)).status).toBe(200);
    } finally {
      client.close();
    }
  });

  it("goes NOT_SERVING on close() while an in-flight RPC still completes, then runs the hooks in order", async () => {
    const client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
    const retrieval = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    // A Watch stream sees the transition as it happens.
    const watched: Status[] = [];
    const watch = client.makeServerStreamRequest(
      "/grpc.health.v1.Health/Watch",
      (m: MessageShape<typeof HealthCheckRequestSchema>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      create(HealthCheckRequestSchema, { service: RetrievalService.typeName }),
    );
    watch.on("data", (m: HealthCheckResponse) => watched.push(m.status));
    watch.on("error", () => {});
    const watchEnded = new Promise<void>((r) => watch.on("close", () => r()));
    await until(() => watched[0] === Status.SERVING, "first Watch status");

    try {
      const inFlight = retrieval.createCorpus({ displayName: "slow one" });
      await until(() => entered, "the slow handler to start");
      const closing = server.close();
      expect(server.lifecycle).toBe("draining");
      await until(() => watched.includes(Status.NOT_SERVING), "Watch to report NOT_SERVING");
      // The listener is closed: new connections are refused.
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(addr.port, "127.0.0.1");
        s.once("connect", () => {
          s.destroy();
          resolve("connected");
        });
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      });
      expect(refused).toBe("ECONNREFUSED");
      expect(hookOrder).toEqual([]);
      release();
      const res = await inFlight;
      expect(res.corpus?.displayName).toBe("slow one");
      await closing;
      await watchEnded;
      expect(server.lifecycle).toBe("closed");
      expect(hookOrder).toEqual(["module", "telemetry"]);
    } finally {
      client.close();
    }
  });
});

describe("kernel server: refused uploads do not linger", () => {
  it("ends an HTTP/2 stream whose oversized body was refused, so shutdown has nothing left to wait for", async () => {
    const logs = new LogCapture();
    const server = createServer({
      logger: createLogger({ name: "test", level: "info", destination: logs }),
      readMaxBytes: 64 * 1024,
      shutdownTimeoutMs: 2000,
      services: [retrievalModule({ createCorpus: async () => ({}) })],
    });
    const addr = await server.listen({ port: 0, host: "127.0.0.1" });
    const client = createClient(RetrievalService, createGrpcTransport({ baseUrl: addr.url }));
    const err = await failure(client.createCorpus({ displayName: "big", description: "x".repeat(200 * 1024) }));
    expect(err.code).toBe(Code.ResourceExhausted);
    await server.close();
    // Had the refused stream stayed half open, close() would have had to abort it.
    expect(logs.lines.filter((l) => l.msg === "shutdown timeout: aborting in-flight RPCs")).toEqual([]);
  });

  it("does the same for Connect over HTTP/2 (no trailers), and the connection keeps serving", async () => {
    const logs = new LogCapture();
    const server = createServer({
      logger: createLogger({ name: "test", level: "info", destination: logs }),
      readMaxBytes: 64 * 1024,
      shutdownTimeoutMs: 2000,
      services: [retrievalModule({ createCorpus: async () => ({}) })],
    });
    const addr = await server.listen({ port: 0, host: "127.0.0.1" });
    const client = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "2", useBinaryFormat: true }));
    for (let i = 0; i < 3; i++) {
      const err = await failure(client.createCorpus({ displayName: "big", description: "x".repeat(3 * 1024 * 1024) }));
      expect(err.code).toBe(Code.ResourceExhausted);
    }
    expect(await client.createCorpus({ displayName: "small" })).toBeDefined();
    await server.close();
    expect(logs.lines.filter((l) => l.msg === "shutdown timeout: aborting in-flight RPCs")).toEqual([]);
  });
});

describe("kernel server: what gRPC clients see of refused and undecodable requests", () => {
  let server: NexusServer;
  let addr: BoundAddress;
  beforeAll(async () => {
    server = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      readMaxBytes: 64 * 1024,
      services: [
        retrievalModule({
          async search() {
            return {};
          },
          async getCorpus(req) {
            throw new ConnectError(`corpus ${req.corpusId}: not found; see https://nexus.dev/docs#corpora (100% café)`, Code.NotFound);
          },
        }),
      ],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(async () => {
    await server.close();
  });

  const searchPath = "/nexus.retrieval.v1.RetrievalService/Search";
  /** A grpc-js unary call sending `bytes` as the message, resolving with the status it ended with. */
  function grpcRawUnary(client: grpc.Client, path: string, bytes: Uint8Array): Promise<grpc.ServiceError | undefined> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        path,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err) => resolve(err ?? undefined),
      );
    });
  }
  /** The ErrorInfo reason in a grpc-js error's grpc-status-details-bin (read with Connect's own parser). */
  const errorInfoReason = (err: grpc.ServiceError) => {
    const bin = err.metadata.get("grpc-status-details-bin")[0];
    if (!(bin instanceof Buffer)) return undefined;
    const headers = new Headers({ "grpc-status": String(err.code), "grpc-status-details-bin": bin.toString("base64") });
    const parsed = findTrailerError(headers);
    return parsed ? errorReason(parsed) : undefined;
  };

  it("answers every oversized request on one connection with RESOURCE_EXHAUSTED, never CANCELLED, and the connection keeps working", async () => {
    const client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
    try {
      const big = new Uint8Array(1024 * 1024).fill(0x61);
      for (let i = 0; i < 6; i++) {
        const err = await grpcRawUnary(client, searchPath, big);
        expect(err?.code, `attempt ${i}: ${err?.details}`).toBe(grpc.status.RESOURCE_EXHAUSTED);
        expect(errorInfoReason(err!)).toBe("REQUEST_TOO_LARGE");
      }
      const after = await grpcRawUnary(
        client,
        "/nexus.retrieval.v1.RetrievalService/GetCorpus",
        toBinary(GetCorpusRequestSchema, create(GetCorpusRequestSchema, { corpusId: "c-1" })),
      );
      expect(after?.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });

  it("answers an undecodable binary body with INVALID_ARGUMENT and ErrorInfo (gRPC, gRPC-Web and Connect binary)", async () => {
    const garbage = Uint8Array.of(0x0f, 0x01, 0x02);
    const client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
    try {
      const err = await grpcRawUnary(client, searchPath, garbage);
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/^parse binary:/);
      expect(errorInfoReason(err!)).toBe("INVALID_ARGUMENT");
    } finally {
      client.close();
    }
    // The same bytes as a Connect binary body and as a gRPC-Web message.
    const res = await fetch(`${addr.url}${searchPath}`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: Buffer.from(garbage),
    });
    expect(res.status).toBe(400);
    const e = errorFromJson((await res.json()) as JsonValue, undefined, new ConnectError("unparseable"));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(errorReason(e)).toBe("INVALID_ARGUMENT");
    const webErr = await fetch(`${addr.url}${searchPath}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.byteLength]), Buffer.from(garbage)]),
    });
    const text = Buffer.from(await webErr.arrayBuffer()).toString("latin1");
    expect(text).toContain("grpc-status: 3");
    expect(text).toContain("grpc-status-details-bin");
  });

  it("percent-encodes grpc-message as the gRPC spec says, so grpc-js shows ':' and not '%3A'", async () => {
    const client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        client.makeUnaryRequest(
          "/nexus.retrieval.v1.RetrievalService/GetCorpus",
          (b: Uint8Array) => Buffer.from(b),
          (b: Buffer) => b,
          toBinary(GetCorpusRequestSchema, create(GetCorpusRequestSchema, { corpusId: "c-1" })),
          (e) => resolve(e!),
        );
      });
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect(err.details).toBe("corpus c-1: not found; see https://nexus.dev/docs#corpora (100% café)");
    } finally {
      client.close();
    }
  });
});

describe("kernel server: shutdown timeout and signals", () => {
  it("aborts RPCs still running at the shutdown timeout with UNAVAILABLE", async () => {
    let started = false;
    const server = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      shutdownTimeoutMs: 200,
      services: [
        retrievalModule({
          // A handler that only stops when told to: it honours its signal.
          search: (_req, ctx) =>
            new Promise((_resolve, reject) => {
              started = true;
              ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
            }),
        }),
      ],
    });
    const addr = await server.listen({ port: 0, host: "127.0.0.1" });
    const client = createClient(RetrievalService, createGrpcTransport({ baseUrl: addr.url }));
    const call = failure(client.search({ corpusId: "c", query: "q" }));
    await until(() => started, "the handler to start");
    await server.close();
    const err = await call;
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("server is shutting down");
  });

  it("closes gracefully on a signal and then exits 0", async () => {
    const server = createServer({ logger: createLogger({ name: "test", level: "silent" }), services: [] });
    await server.listen({ port: 0, host: "127.0.0.1" });
    const exits: number[] = [];
    // SIGUSR2 stands in for SIGTERM: emitting SIGTERM would also reach the test runner's handlers.
    const uninstall = installSignalHandlers(server, createLogger({ name: "test", level: "silent" }), {
      signals: ["SIGUSR2"],
      exit: (code) => exits.push(code),
    });
    try {
      process.emit("SIGUSR2", "SIGUSR2");
      await until(() => (exits.length > 0 ? exits : undefined), "exit");
      expect(exits).toEqual([0]);
      expect(server.lifecycle).toBe("closed");
    } finally {
      uninstall();
    }
  });
});
