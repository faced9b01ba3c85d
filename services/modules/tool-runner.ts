import type { JsonObject } from "@bufbuild/protobuf";
import { type HttpOperation, ModuleKind, type ModuleManifest } from "../../gen/nexus/modules/v1/module_pb.js";
import { callGrpcOperation } from "./grpc-tool.js";
import type { ModulesSettings } from "./modules-settings.js";
import { createEgressBroker, redactSecrets } from "./sandbox/egress-broker.js";
import {
  EgressRefused,
  runInSandbox,
  type SandboxCall,
  type SandboxFailureReason,
  type SandboxOutcome,
} from "./sandbox/quickjs-sandbox.js";
import { hasProtoKey, schemaViolations } from "./tool-schemas.js";

/** Runs a sandboxed call: in this thread ({@link runInSandbox}) or on a worker pool (sandbox-pool.ts). */
export type SandboxRunner = (call: SandboxCall) => Promise<SandboxOutcome>;

/** Why a tool call failed, as CallTool's error reason. */
export type ToolFailureReason = SandboxFailureReason | "TOOL_INPUT_INVALID" | "TOOL_OUTPUT_INVALID";

/** What one tool call did. */
export type ToolOutcome =
  | { kind: "ok"; output: JsonObject; durationMs: number }
  | { kind: "failed"; reason: ToolFailureReason; message: string; durationMs: number };

/** One tool call of a given module version. */
export interface ToolInvocation {
  manifest: ModuleManifest;
  code: string;
  tool: string;
  input: JsonObject;
  /** The manifest's credentials, opened (the broker injects them; results are scrubbed of them). */
  credentials: ReadonlyMap<string, string>;
}

/**
 * Calls one tool of one module version: the input checked against the tool's input schema,
 * the code run in the QuickJS sandbox (or the HTTP operation made) through an egress broker
 * limited to the manifest's hosts, the output checked against the output schema. Credential
 * values never come back: any occurrence in an output or error message is `[REDACTED]`.
 */
export async function invokeTool(
  call: ToolInvocation,
  settings: ModulesSettings,
  sandbox: SandboxRunner = runInSandbox,
): Promise<ToolOutcome> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const secrets = [...call.credentials.values()];
  const fail = (reason: ToolFailureReason, message: string): ToolOutcome => ({
    kind: "failed",
    reason,
    message: redactSecrets(message, secrets),
    durationMs: elapsed(),
  });
  const tool = call.manifest.tools.find((t) => t.name === call.tool);
  if (!tool)
    return fail(
      "TOOL_INPUT_INVALID",
      `module ${call.manifest.name} has no tool ${call.tool} (it offers ${call.manifest.tools.map((t) => t.name).join(", ")})`,
    );
  const inputProblem = schemaViolations(tool.inputSchema, call.input);
  if (inputProblem) return fail("TOOL_INPUT_INVALID", `input of ${call.manifest.name}.${call.tool}: ${inputProblem}`);
  const l = call.manifest.limits;
  const limits = {
    timeoutMs: l?.timeoutMs || settings.timeoutMs,
    cpuMs: l?.cpuMs || settings.cpuMs,
    memoryBytes: Number(l?.memoryBytes ?? 0n) || settings.memoryBytes,
  };
  const broker = createEgressBroker({
    hosts: call.manifest.egressHosts,
    credentials: call.credentials,
    maxRequests: l?.maxRequests || settings.maxRequests,
    maxResponseBytes: settings.maxResponseBytes,
    allowPrivate: settings.egressAllowPrivate,
  });
  let output: unknown;
  if (call.manifest.kind === ModuleKind.GRPC) {
    if (!tool.grpc) return fail("MODULE_ERROR", `tool ${call.tool} has no grpc operation`);
    const r = await callGrpcOperation(
      tool.grpc,
      call.input,
      { hosts: call.manifest.egressHosts, allowPrivate: settings.egressAllowPrivate, credentials: call.credentials },
      limits.timeoutMs,
    );
    if (r.kind === "failed") return fail(r.reason, r.message);
    output = r.output;
  } else if (call.manifest.kind === ModuleKind.HTTP) {
    if (!tool.http) return fail("MODULE_ERROR", `tool ${call.tool} has no http operation`);
    const r = await callHttpOperation(tool.http, call.input, broker, limits.timeoutMs);
    if (r.kind === "failed") return fail(r.reason, r.message);
    output = r.output;
  } else {
    const r = await sandbox({ code: call.code, tool: call.tool, input: call.input, limits, fetch: broker });
    if (r.kind === "failed") return fail(r.reason, r.message);
    output = r.output;
  }
  if (output === null || typeof output !== "object" || Array.isArray(output)) {
    return fail(
      "TOOL_OUTPUT_INVALID",
      `${call.manifest.name}.${call.tool} returned ${Array.isArray(output) ? "an array" : String(output)}, not an object`,
    );
  }
  if (hasProtoKey(output)) return fail("TOOL_OUTPUT_INVALID", `${call.manifest.name}.${call.tool} returned an object with a __proto__ key`);
  const outputProblem = schemaViolations(tool.outputSchema, output);
  if (outputProblem) return fail("TOOL_OUTPUT_INVALID", `output of ${call.manifest.name}.${call.tool}: ${outputProblem}`);
  const text = JSON.stringify(output);
  const scrubbed = redactSecrets(text, secrets);
  return { kind: "ok", output: (scrubbed === text ? output : JSON.parse(scrubbed)) as JsonObject, durationMs: elapsed() };
}

type HttpResult = { kind: "ok"; output: unknown } | { kind: "failed"; reason: SandboxFailureReason; message: string };

/** An HTTP tool: the operation's URL filled from the input, sent through the broker, the JSON answer as output. */
async function callHttpOperation(
  op: HttpOperation,
  input: JsonObject,
  broker: ReturnType<typeof createEgressBroker>,
  timeoutMs: number,
): Promise<HttpResult> {
  const url = op.url.replace(/\{([A-Za-z0-9_]+)\}/g, (_m, field: string) => {
    const v = input[field];
    return v === undefined || v === null ? "" : encodeURIComponent(typeof v === "object" ? JSON.stringify(v) : String(v));
  });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const text = await broker(
      url,
      {
        method: op.method || "GET",
        headers: { accept: "application/json", ...op.headers, ...(op.jsonBody ? { "content-type": "application/json" } : {}) },
        ...(op.jsonBody ? { body: JSON.stringify(input) } : {}),
      },
      abort.signal,
    );
    const response = JSON.parse(text) as { status: number; body: string };
    if (response.status < 200 || response.status >= 300) {
      return {
        kind: "failed",
        reason: "MODULE_ERROR",
        message: `the API answered HTTP ${response.status}: ${response.body.slice(0, 300)}`,
      };
    }
    try {
      const body = JSON.parse(response.body) as unknown;
      return { kind: "ok", output: body !== null && typeof body === "object" && !Array.isArray(body) ? body : { value: body } };
    } catch {
      return { kind: "ok", output: { text: response.body } };
    }
  } catch (e) {
    if (e instanceof EgressRefused) return { kind: "failed", reason: "MODULE_EGRESS_DENIED", message: e.message };
    if (abort.signal.aborted) return { kind: "failed", reason: "MODULE_TIMEOUT", message: `the call ran past its ${timeoutMs} ms timeout` };
    return { kind: "failed", reason: "MODULE_ERROR", message: `the request failed: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    clearTimeout(timer);
  }
}
