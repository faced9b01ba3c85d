import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { EVENT_FILES } from "../events/event-files.js";
import { createLogger } from "../logger.js";
import { createReflectionIndex } from "./reflection-index.js";
import { answerReflection } from "./reflection-service.js";
import type { NexusServer } from "./server.js";
import { createServer } from "./server.js";

const index = createReflectionIndex([RetrievalService, IngestionService, Health]);

function names(bytes: Uint8Array[]): string[] {
  return bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

describe("reflection index", () => {
  it("finds the defining file of services, methods, messages, nested types, fields, enums and enum values", () => {
    const file = (symbol: string) => index.fileBySymbol(symbol)?.proto.name;
    expect(file("nexus.retrieval.v1.RetrievalService")).toBe("nexus/retrieval/v1/retrieval_service.proto");
    expect(file("nexus.retrieval.v1.RetrievalService.Search")).toBe("nexus/retrieval/v1/retrieval_service.proto");
    expect(file(".nexus.retrieval.v1.SearchRequest")).toBe("nexus/retrieval/v1/retrieval_service.proto");
    expect(file("nexus.retrieval.v1.SearchRequest.top_k")).toBe("nexus/retrieval/v1/retrieval_service.proto");
    expect(file("nexus.ingestion.v1.Document")).toBe("nexus/ingestion/v1/document.proto");
    expect(file("grpc.health.v1.HealthCheckResponse.ServingStatus")).toBe("grpc/health/v1/health.proto");
    // Enum values are scoped beside their enum.
    expect(file("grpc.health.v1.HealthCheckResponse.SERVING")).toBe("grpc/health/v1/health.proto");
    expect(file("google.protobuf.Timestamp")).toBe("google/protobuf/timestamp.proto");
    expect(file("buf.validate.FieldRules")).toBe("buf/validate/validate.proto");
    expect(file("nexus.retrieval.v1.NoSuchThing")).toBeUndefined();
  });

  it("serves extra files no service imports (the event payloads), with their imports", () => {
    const withEvents = createReflectionIndex([Health], EVENT_FILES);
    expect(withEvents.fileBySymbol("nexus.events.v1.TenantSuspended")?.proto.name).toBe("nexus/events/v1/auth_events.proto");
    expect(withEvents.fileBySymbol("nexus.events.v1.TemporalQueryPerformed")?.proto.name).toBe("nexus/events/v1/eventstore_events.proto");
    expect(withEvents.fileByName("nexus/auth/v1/tenant.proto")).toBeDefined(); // imported by auth_events.proto
    expect(index.fileBySymbol("nexus.events.v1.TenantSuspended")).toBeUndefined();
  });

  it("knows extensions: buf.validate's options on google.protobuf.FieldOptions", () => {
    expect(index.fileByExtension("google.protobuf.FieldOptions", 1159)?.proto.name).toBe("buf/validate/validate.proto");
    expect(index.extensionNumbers("google.protobuf.FieldOptions")).toContain(1159);
    expect(index.extensionNumbers("nexus.retrieval.v1.SearchRequest")).toEqual([]);
    expect(index.extensionNumbers("no.such.Type")).toBeUndefined();
  });

  it("sends a file with its transitive imports, and each import only once per stream", () => {
    const sent = new Set<string>();
    const file = index.fileByName("nexus/retrieval/v1/retrieval_service.proto")!;
    const first = names(index.serializeWithDependencies(file, sent));
    expect(first[0]).toBe("nexus/retrieval/v1/retrieval_service.proto");
    expect(first).toEqual(
      expect.arrayContaining(["buf/validate/validate.proto", "google/protobuf/descriptor.proto", "nexus/retrieval/v1/corpus.proto"]),
    );
    expect(new Set(first).size).toBe(first.length);
    // Asking again on the same stream: the requested file again, its imports not.
    expect(names(index.serializeWithDependencies(file, sent))).toEqual(["nexus/retrieval/v1/retrieval_service.proto"]);
    const validate = index.fileByName("buf/validate/validate.proto")!;
    expect(names(index.serializeWithDependencies(validate, sent))).toEqual(["buf/validate/validate.proto"]);
  });

  it("answers unknown names with a NOT_FOUND error response, not a failed stream", () => {
    const res = answerReflection(
      index,
      create(v1.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "nope.Nope" } }),
      new Set(),
    );
    expect(res.messageResponse.case).toBe("errorResponse");
    expect(res.messageResponse.case === "errorResponse" && res.messageResponse.value.errorCode).toBe(Code.NotFound);
    const ext = answerReflection(
      index,
      create(v1.ServerReflectionRequestSchema, {
        messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.FieldOptions" },
      }),
      new Set(),
    );
    expect(ext.messageResponse.case).toBe("allExtensionNumbersResponse");
  });
});

describe("grpc.reflection.v1alpha over HTTP/2 (what older grpcurl and grpcio versions use)", () => {
  let server: NexusServer;
  let client: grpc.Client;

  beforeAll(async () => {
    server = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      services: [{ name: RetrievalService.typeName, register: (r) => r.service(RetrievalService, {}) }],
    });
    const addr = await server.listen({ port: 0, host: "127.0.0.1" });
    client = new grpc.Client(`127.0.0.1:${addr.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("lists services and returns descriptors by file name", async () => {
    const responses = await new Promise<v1alpha.ServerReflectionResponse[]>((resolve, reject) => {
      const out: v1alpha.ServerReflectionResponse[] = [];
      const call = client.makeBidiStreamRequest(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        (m: v1alpha.ServerReflectionRequest) => Buffer.from(toBinary(v1alpha.ServerReflectionRequestSchema, m)),
        (b: Buffer) => fromBinary(v1alpha.ServerReflectionResponseSchema, b),
      );
      call.on("data", (m: v1alpha.ServerReflectionResponse) => out.push(m));
      call.on("error", reject);
      call.on("end", () => resolve(out));
      call.write(create(v1alpha.ServerReflectionRequestSchema, { host: "h", messageRequest: { case: "listServices", value: "*" } }));
      call.write(
        create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" } }),
      );
      call.end();
    });
    const [list, file] = responses;
    expect(list?.validHost).toBe("h");
    expect(list?.messageResponse.case === "listServicesResponse" && list.messageResponse.value.service.map((s) => s.name)).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "nexus.retrieval.v1.RetrievalService",
    ]);
    expect(file?.originalRequest?.messageRequest.case).toBe("fileByFilename");
    expect(file?.messageResponse.case === "fileDescriptorResponse" && names(file.messageResponse.value.fileDescriptorProto)[0]).toBe(
      "grpc/health/v1/health.proto",
    );
  });
});
