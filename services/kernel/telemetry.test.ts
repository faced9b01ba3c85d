import { Writable } from "node:stream";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { IngestionService } from "../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { callFailure as failure } from "../../tests/support/call-failure.js";
import { currentRequestMeta } from "./context.js";
import { clientInterceptor } from "./interceptors/client.js";
import { createLogger } from "./logger.js";
import type { BoundAddress, NexusServer } from "./server/server.js";
import { createServer } from "./server/server.js";
import type { Telemetry } from "./telemetry.js";
import { startTelemetry } from "./telemetry.js";

async function until<T>(probe: () => T | undefined, what: string): Promise<T> {
  const end = Date.now() + 5000;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("telemetry: spans across a client → server → server call", () => {
  const exporter = new InMemorySpanExporter();
  let telemetry: Telemetry;
  let server: NexusServer;
  let addr: BoundAddress;

  beforeAll(async () => {
    telemetry = startTelemetry({
      serviceName: "nexus-test",
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
      env: {},
    });
    const logger = createLogger({ name: "test", level: "silent" });
    // Service A (retrieval) calls service B (ingestion) through the kernel's client interceptor.
    let downstream: ReturnType<typeof createClient<typeof IngestionService>> | undefined;
    server = createServer({
      logger,
      services: [
        {
          name: RetrievalService.typeName,
          register: (r) =>
            r.service(RetrievalService, {
              async getCorpus(req) {
                const answer = await downstream!.getDocument({ documentId: req.corpusId });
                return { corpus: { id: answer.document?.id ?? "", displayName: answer.document?.filename ?? "" } };
              },
              async deleteCorpus() {
                throw new Error("boom");
              },
            }),
        },
        {
          name: IngestionService.typeName,
          register: (r) =>
            r.service(IngestionService, {
              async getDocument(req) {
                const meta = currentRequestMeta();
                return { document: { id: req.documentId, filename: `${meta?.requestId}|${meta?.correlationId}` } };
              },
            }),
        },
      ],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
    downstream = createClient(IngestionService, createGrpcTransport({ baseUrl: addr.url, interceptors: [clientInterceptor()] }));
  });

  afterAll(async () => {
    await server?.close();
    await telemetry?.shutdown();
  });

  it("links client and server spans by W3C trace context and carries the correlation id to the next hop", async () => {
    exporter.reset();
    const client = createClient(
      RetrievalService,
      createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1", interceptors: [clientInterceptor()] }),
    );
    const res = await client.getCorpus({ corpusId: "doc-7" }, { headers: { "x-correlation-id": "corr-trace-1" } });
    const [downstreamRequestId, downstreamCorrelation] = res.corpus!.displayName.split("|");
    expect(downstreamCorrelation).toBe("corr-trace-1");
    expect(downstreamRequestId).toMatch(/^[0-9a-f-]{36}$/);

    const spans = await until(() => {
      const s = exporter.getFinishedSpans();
      return s.length >= 4 ? s : undefined;
    }, "four spans");
    const byKindAndName = (kind: SpanKind, name: string) => spans.find((s) => s.kind === kind && s.name === name)!;
    const outerClient = byKindAndName(SpanKind.CLIENT, "nexus.retrieval.v1.RetrievalService/GetCorpus");
    const serverA = byKindAndName(SpanKind.SERVER, "nexus.retrieval.v1.RetrievalService/GetCorpus");
    const innerClient = byKindAndName(SpanKind.CLIENT, "nexus.ingestion.v1.IngestionService/GetDocument");
    const serverB = byKindAndName(SpanKind.SERVER, "nexus.ingestion.v1.IngestionService/GetDocument");
    for (const s of [serverA, innerClient, serverB]) expect(s.spanContext().traceId).toBe(outerClient.spanContext().traceId);
    expect(serverA.parentSpanContext?.spanId).toBe(outerClient.spanContext().spanId);
    expect(innerClient.parentSpanContext?.spanId).toBe(serverA.spanContext().spanId);
    expect(serverB.parentSpanContext?.spanId).toBe(innerClient.spanContext().spanId);
    expect(serverA.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.service": "nexus.retrieval.v1.RetrievalService",
      "rpc.method": "GetCorpus",
      "rpc.grpc.status_code": 0,
      "nexus.correlation_id": "corr-trace-1",
    });
    expect(serverB.attributes["rpc.system"]).toBe("grpc");
    expect(serverA.resource.attributes["service.name"]).toBe("nexus-test");
  });

  it("continues a trace started by a caller that only sends a traceparent header", async () => {
    exporter.reset();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    await fetch(`${addr.url}/nexus.ingestion.v1.IngestionService/GetDocument`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      body: JSON.stringify({ documentId: "d1" }),
    });
    const span = await until(() => exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER), "server span");
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
  });

  it("marks server faults as errors and keeps caller mistakes unset, both with their code", async () => {
    exporter.reset();
    const client = createClient(RetrievalService, createConnectTransport({ baseUrl: addr.url, httpVersion: "1.1" }));
    const internal = await failure(client.deleteCorpus({ corpusId: "c1" }));
    expect(internal.code).toBe(Code.Internal);
    const invalid = await failure(client.deleteCorpus({ corpusId: "" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    const spans = await until(() => {
      const s = exporter.getFinishedSpans().filter((x) => x.kind === SpanKind.SERVER);
      return s.length >= 2 ? s : undefined;
    }, "two server spans");
    const failed = spans.find((s) => s.attributes["rpc.grpc.status_code"] === Code.Internal)!;
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.events.some((e) => e.name === "exception")).toBe(true);
    const refused = spans.find((s) => s.attributes["rpc.grpc.status_code"] === Code.InvalidArgument)!;
    expect(refused.status.code).toBe(SpanStatusCode.UNSET);
    expect(refused.attributes["rpc.connect_rpc.error_code"]).toBe("invalid_argument");
  });
});

describe("telemetry: start-up modes", () => {
  it("is quiet without a collector: nothing exported, nothing printed, and it can start again after shutdown", async () => {
    const printed: unknown[] = [];
    const spies = [
      vi.spyOn(console, "error").mockImplementation((...a) => void printed.push(a)),
      vi.spyOn(console, "warn").mockImplementation((...a) => void printed.push(a)),
      vi.spyOn(console, "info").mockImplementation((...a) => void printed.push(a)),
      vi.spyOn(console, "log").mockImplementation((...a) => void printed.push(a)),
    ];
    try {
      const t = startTelemetry({ serviceName: "quiet", env: {} });
      expect(t.enabled).toBe(true);
      expect(t.exporting).toBe(false);
      // The W3C propagator is registered even without export, so context still flows.
      expect(propagation.fields()).toContain("traceparent");
      trace.getTracer("t").startSpan("s").end();
      await t.shutdown();
      expect(propagation.fields()).toEqual([]);
      const again = startTelemetry({ serviceName: "quiet", env: {} });
      await again.shutdown();
    } finally {
      for (const s of spies) s.mockRestore();
    }
    expect(printed).toEqual([]);
  });

  it("sends OpenTelemetry's own complaints (collector unreachable) to the logger, not the console", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      name: "test",
      level: "debug",
      destination: new Writable({
        write(chunk: Buffer, _e, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    });
    const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, timeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT };
    // Port 9 on 127.0.0.1: nothing listens, the export is refused (the SDK reads process.env).
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:9";
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = "300";
    const printed: unknown[] = [];
    const spies = [
      vi.spyOn(console, "error").mockImplementation((...a) => void printed.push(a)),
      vi.spyOn(console, "warn").mockImplementation((...a) => void printed.push(a)),
    ];
    try {
      const t = startTelemetry({
        serviceName: "no-collector",
        logger,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
        shutdownTimeoutMs: 20_000,
      });
      expect(t.exporting).toBe(true);
      trace.getTracer("t").startSpan("lost").end();
      // The final export fails; shutdown still resolves and says so in the log.
      await t.shutdown();
    } finally {
      for (const s of spies) s.mockRestore();
      for (const [key, value] of [
        ["OTEL_EXPORTER_OTLP_ENDPOINT", saved.endpoint],
        ["OTEL_EXPORTER_OTLP_TIMEOUT", saved.timeout],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
    expect(printed).toEqual([]);
    expect(lines.join("")).toContain("final span export failed");
  });

  it("respects OTEL_SDK_DISABLED", async () => {
    const t = startTelemetry({ serviceName: "off", env: { OTEL_SDK_DISABLED: "true" } });
    expect(t.enabled).toBe(false);
    expect(propagation.fields()).toEqual([]);
    await t.shutdown();
  });
});
