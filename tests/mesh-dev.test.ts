import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { grpcBidi, grpcUnary } from "./support/grpc-js.js";
import { type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

/** The services `nexus dev` mounts (metering's process also hosts the audit API). */
const MESH_SERVICES = [
  "nexus.agent.v1.AgentService",
  "nexus.audit.v1.AuditService",
  "nexus.auth.v1.AuthService",
  "nexus.eventstore.v1.EventStoreService",
  "nexus.ingestion.v1.IngestionService",
  "nexus.integration.v1.IntegrationService",
  "nexus.metering.v1.MeteringService",
  "nexus.modules.v1.ModulesService",
  "nexus.retrieval.v1.RetrievalService",
];

describe("nexus dev: the whole mesh in one process (PGlite + local bus)", () => {
  let nexus: NexusProcess;
  let address: string;
  /** The demo tenant's owner key `nexus dev` prints on its first start. */
  let ownerKey: string;
  const data = tempDir();

  beforeAll(async () => {
    nexus = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir] });
    address = `127.0.0.1:${nexus.port}`;
    const keyPattern = /owner key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/;
    for (let i = 0; i < 200 && !keyPattern.test(nexus.output()); i++) await new Promise((r) => setTimeout(r, 50));
    ownerKey = keyPattern.exec(nexus.output())?.[1] ?? "";
    expect(ownerKey, "nexus dev prints the demo owner key on first start").not.toBe("");
  });
  afterAll(async () => {
    await nexus?.stop();
    data.remove();
  });

  it("prints where it listens and which backends run", () => {
    expect(nexus.output()).toContain(`listening on http://127.0.0.1:${nexus.port}`);
    expect(nexus.output()).toMatch(/PGlite in .*; events: local bus/);
  });

  it("answers grpc.health.v1 for every service to a @grpc/grpc-js client (HTTP/2)", async () => {
    const list = await grpcUnary(address, "/grpc.health.v1.Health/List", HealthListRequestSchema, HealthListResponseSchema, {});
    for (const name of MESH_SERVICES) {
      expect(list.statuses[name]?.status, name).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
    const one = await grpcUnary(address, "/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema, {
      service: "nexus.auth.v1.AuthService",
    });
    expect(one.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    await expect(
      grpcUnary(address, "/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema, { service: "nope.Service" }),
    ).rejects.toMatchObject({ code: 5 /* NOT_FOUND */ });
  });

  it("serves reflection v1 and v1alpha, listing every service and returning their descriptors", async () => {
    const [listed, file] = await grpcBidi(
      address,
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      ServerReflectionRequestSchema,
      ServerReflectionResponseSchema,
      [
        { messageRequest: { case: "listServices", value: "" } },
        { messageRequest: { case: "fileContainingSymbol", value: "nexus.retrieval.v1.RetrievalService.Search" } },
      ],
    );
    const names = listed?.messageResponse.case === "listServicesResponse" ? listed.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(expect.arrayContaining([...MESH_SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]));
    expect(file?.messageResponse.case).toBe("fileDescriptorResponse");
    const protos =
      file?.messageResponse.case === "fileDescriptorResponse"
        ? file.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b))
        : [];
    const svcFile = protos.find((p) => p.name === "nexus/retrieval/v1/retrieval_service.proto");
    expect(svcFile?.service[0]?.method.map((m) => m.name)).toContain("Search");
    // Dependencies come along, so clients need no .proto files.
    expect(protos.map((p) => p.name)).toContain("buf/validate/validate.proto");

    const [alpha] = await grpcBidi(
      address,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      v1alpha.ServerReflectionRequestSchema,
      v1alpha.ServerReflectionResponseSchema,
      [{ messageRequest: { case: "listServices", value: "" } }],
    );
    expect(alpha?.messageResponse.case).toBe("listServicesResponse");
  });

  it("speaks Connect JSON over plain HTTP/1.1 on the same port (curl without --http2-prior-knowledge)", async () => {
    const res = await fetch(`${nexus.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "nexus.metering.v1.MeteringService" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(await res.json()).toEqual({ status: "SERVING" });
  });

  it("rejects invalid requests with INVALID_ARGUMENT naming the fields, never INTERNAL", async () => {
    const res = await fetch(`${nexus.url}/nexus.retrieval.v1.RetrievalService/Search`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ownerKey}` },
      body: JSON.stringify({ corpusId: "c1", query: "hello", topK: 51 }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string; details: Array<{ type: string; debug?: { reason?: string } }> };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("top_k");
    expect(body.details.find((d) => d.type === "google.rpc.ErrorInfo")?.debug?.reason).toBe("VALIDATION_FAILED");
  });

  it("is reachable through the TypeScript SDK over Connect and over gRPC, with typed errors", async () => {
    for (const protocol of ["connect", "grpc"] as const) {
      const nexus_ = createNexusClient({ baseUrl: nexus.url, protocol, apiKey: ownerKey });
      const err = await nexus_.retrieval.search({ corpusId: "c1", query: "q", topK: 0 }).catch((e: unknown) => e);
      expect(err, protocol).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code, protocol).toBe(Code.InvalidArgument);
      expect(errorReason(err), protocol).toBe("VALIDATION_FAILED");
    }
  });

  it("refuses the same calls without an API key, and the SDK's whoAmI names the demo tenant's owner", async () => {
    const anonymous = await createNexusClient({ baseUrl: nexus.url })
      .retrieval.search({ corpusId: "c1", query: "q", topK: 5 })
      .catch((e: unknown) => e);
    expect((anonymous as ConnectError).code).toBe(Code.Unauthenticated);
    const me = await createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey }).auth.whoAmI({});
    expect(me.principal?.tenantSlug).toBe("demo");
  });

  it("exports RED metrics for the calls it served on /metrics", async () => {
    await fetch(`${nexus.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const text = await (await fetch(`${nexus.url}/metrics`)).text();
    expect(text).toMatch(/nexus_rpc_requests_total\{service="grpc\.health\.v1\.Health",method="Check",code="ok"\} [1-9]/);
    expect(text).toContain("nexus_rpc_duration_seconds_bucket");
  });

  it("drains on SIGTERM and exits 0", async () => {
    const code = await nexus.stop("SIGTERM");
    expect(code).toBe(0);
  });
});
