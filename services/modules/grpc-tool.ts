import {
  create,
  createFileRegistry,
  type DescMethod,
  fromBinary,
  fromJson,
  type JsonObject,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ServerReflection, type ServerReflectionRequest } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { GrpcOperation } from "../../gen/nexus/modules/v1/module_pb.js";
import { admitUrl, allowsPrivate, type EgressPolicy, fillCredentials, guardedLookup } from "./sandbox/egress-broker.js";
import { EgressRefused, type SandboxFailureReason } from "./sandbox/quickjs-sandbox.js";

type GrpcResult =
  | { kind: "ok"; output: unknown }
  | { kind: "failed"; reason: SandboxFailureReason | "TOOL_INPUT_INVALID"; message: string };

/** Most descriptor files one reflection lookup gathers (the service's file and its imports). */
const MAX_FILES = 128;

/** One reflection request on its own stream; the descriptor files it returns. */
async function ask(
  transport: Transport,
  request: ServerReflectionRequest["messageRequest"],
  signal: AbortSignal,
): Promise<FileDescriptorProto[]> {
  const client = createClient(ServerReflection, transport);
  async function* one() {
    yield { messageRequest: request };
  }
  for await (const res of client.serverReflectionInfo(one(), { signal })) {
    const m = res.messageResponse;
    if (m.case === "errorResponse") throw new ReflectionFailed(`reflection: ${m.value.errorMessage || "not found"}`);
    if (m.case === "fileDescriptorResponse") return m.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    break;
  }
  return [];
}

/**
 * Asks the target's server reflection (grpc.reflection.v1) for the file of `service` and then
 * for every import it did not send, by file name, until the set is complete.
 */
async function reflect(transport: Transport, service: string, signal: AbortSignal) {
  const files = new Map<string, FileDescriptorProto>();
  const add = (list: FileDescriptorProto[]) => {
    for (const f of list) files.set(f.name, f);
  };
  add(await ask(transport, { case: "fileContainingSymbol", value: service }, signal));
  if (files.size === 0) throw new ReflectionFailed(`reflection returned no descriptor for ${service}`);
  for (;;) {
    const missing = [...files.values()].flatMap((f) => f.dependency).find((d) => !files.has(d));
    if (missing === undefined) break;
    if (files.size >= MAX_FILES) throw new ReflectionFailed(`${service} needs more than ${MAX_FILES} descriptor files`);
    const got = await ask(transport, { case: "fileByFilename", value: missing }, signal);
    if (!got.some((f) => f.name === missing)) throw new ReflectionFailed(`reflection did not return ${missing}`);
    add(got);
  }
  // Imports first: the registry resolves each file's imports from the files before it.
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (f: FileDescriptorProto) => {
    if (placed.has(f.name)) return;
    placed.add(f.name);
    for (const d of f.dependency) {
      const dep = files.get(d);
      if (dep) place(dep);
    }
    ordered.push(f);
  };
  for (const f of files.values()) place(f);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

class ReflectionFailed extends Error {}

/**
 * A gRPC tool: the target (a declared egress host, past the SSRF check) is asked by server
 * reflection for the method's service; the tool's JSON input becomes the request message
 * (proto3 JSON mapping), the unary call carries the metadata (credentials filled in here,
 * never in module code), and the response message, as JSON, is the output.
 */
export async function callGrpcOperation(
  op: GrpcOperation,
  input: JsonObject,
  policy: Pick<EgressPolicy, "hosts" | "allowPrivate" | "credentials">,
  timeoutMs: number,
): Promise<GrpcResult> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const [service = "", methodName = ""] = op.method.split("/");
  try {
    const url = await admitUrl(op.target, policy);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(op.metadata)) headers[k] = fillCredentials(v, policy.credentials);
    // The connection checks the addresses it connects to (DNS rebinding), as the HTTP broker does.
    const lookup = guardedLookup(allowsPrivate(url, policy.allowPrivate ?? []));
    const transport = createGrpcTransport({ baseUrl: url.origin, nodeOptions: { lookup } });
    const registry = await reflect(transport, service, abort.signal);
    const desc = registry.getService(service);
    const method: DescMethod | undefined = desc?.methods.find((m) => m.name === methodName);
    if (!desc || !method) return { kind: "failed", reason: "MODULE_ERROR", message: `the target has no method ${op.method}` };
    if (method.methodKind !== "unary") return { kind: "failed", reason: "MODULE_ERROR", message: `${op.method} is not a unary method` };
    let request: ReturnType<typeof fromJson>;
    try {
      request = fromJson(method.input, input as JsonValue, { registry });
    } catch (e) {
      return {
        kind: "failed",
        reason: "TOOL_INPUT_INVALID",
        message: `the input is not a ${method.input.typeName}: ${e instanceof Error ? e.message : String(e)}`,
      };
    }
    const client = createClient(desc, transport) as unknown as Record<
      string,
      (req: unknown, o: { headers: Record<string, string>; signal: AbortSignal }) => Promise<unknown>
    >;
    const call = client[method.localName];
    if (!call) return { kind: "failed", reason: "MODULE_ERROR", message: `no client for ${op.method}` };
    const response = await call(request, { headers, signal: abort.signal });
    return { kind: "ok", output: toJson(method.output, response as never, { registry }) };
  } catch (e) {
    if (e instanceof EgressRefused) return { kind: "failed", reason: "MODULE_EGRESS_DENIED", message: e.message };
    if (abort.signal.aborted) return { kind: "failed", reason: "MODULE_TIMEOUT", message: `the call ran past its ${timeoutMs} ms timeout` };
    if (e instanceof ReflectionFailed) return { kind: "failed", reason: "MODULE_ERROR", message: e.message };
    const err = ConnectError.from(e);
    return { kind: "failed", reason: "MODULE_ERROR", message: `${op.method} failed: ${err.rawMessage} (${Code[err.code]})` };
  } finally {
    clearTimeout(timer);
  }
}
