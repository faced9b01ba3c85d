import { ModuleKind, type ModuleManifest } from "../../gen/nexus/modules/v1/module_pb.js";
import { domainError } from "../kernel/errors.js";
import type { ModulesSettings } from "./modules-settings.js";
import { hostAllowed } from "./sandbox/egress-broker.js";
import { schemaProblem } from "./tool-schemas.js";

/**
 * The checks a manifest passes before its version is tested, beyond the proto's shape rules:
 * the kind matches the code, tool names are unique, every schema compiles (and an input
 * schema describes an object), tests name existing tools, HTTP tools reach only declared
 * hosts and name only declared credentials, and limits stay within the installation's caps.
 * A failure is INVALID_ARGUMENT MANIFEST_INVALID naming the field.
 */
export function checkManifest(manifest: ModuleManifest, code: string, caps: ModulesSettings): void {
  const bad = (field: string, message: string): never => {
    throw domainError("MANIFEST_INVALID", `manifest.${field}: ${message}`, { field: `manifest.${field}` });
  };
  if (manifest.kind === ModuleKind.CODE && code.trim() === "") bad("kind", "a code module needs its code");
  if (manifest.kind === ModuleKind.HTTP && code !== "")
    bad("kind", "an HTTP module has no code: describe each tool's http operation instead");
  if (manifest.kind === ModuleKind.GRPC && code !== "")
    bad("kind", "a gRPC module has no code: describe each tool's grpc operation instead");
  const names = new Set<string>();
  manifest.tools.forEach((tool, i) => {
    if (names.has(tool.name)) bad(`tools[${i}].name`, `tool ${tool.name} is declared twice`);
    names.add(tool.name);
    for (const [field, schema] of [
      ["input_schema", tool.inputSchema],
      ["output_schema", tool.outputSchema],
    ] as const) {
      if (!schema) continue;
      const problem = schemaProblem(schema);
      if (problem) bad(`tools[${i}].${field}`, `not a valid JSON Schema: ${problem}`);
    }
    if (tool.inputSchema?.type !== undefined && tool.inputSchema.type !== "object")
      bad(`tools[${i}].input_schema`, "must describe an object (type: object)");
    if (manifest.kind === ModuleKind.GRPC) {
      if (!tool.grpc) return bad(`tools[${i}].grpc`, "a gRPC module's tool needs its grpc operation");
      let url: URL;
      try {
        url = new URL(tool.grpc.target);
      } catch {
        return bad(`tools[${i}].grpc.target`, "not a URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") bad(`tools[${i}].grpc.target`, "must be http or https");
      if (!hostAllowed(url, manifest.egressHosts)) bad(`tools[${i}].grpc.target`, `host ${url.host} is not among egress_hosts`);
      if (!/^[A-Za-z_][A-Za-z0-9_.]*\/[A-Za-z_][A-Za-z0-9_]*$/.test(tool.grpc.method))
        bad(`tools[${i}].grpc.method`, 'must be "package.Service/Method"');
      for (const [h, v] of Object.entries(tool.grpc.metadata)) {
        for (const m of v.matchAll(/\{\{credential:([A-Za-z0-9_]*)\}\}/g)) {
          if (!manifest.credentials.includes(m[1] ?? ""))
            bad(`tools[${i}].grpc.metadata.${h}`, `credential ${m[1]} is not declared in credentials`);
        }
      }
    }
    if (manifest.kind === ModuleKind.HTTP) {
      if (!tool.http) return bad(`tools[${i}].http`, "an HTTP module's tool needs its http operation");
      let url: URL;
      try {
        url = new URL(tool.http.url.replace(/\{[A-Za-z0-9_]+\}/g, "x"));
      } catch {
        return bad(`tools[${i}].http.url`, "not a URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") bad(`tools[${i}].http.url`, "must be http or https");
      if (!hostAllowed(url, manifest.egressHosts)) bad(`tools[${i}].http.url`, `host ${url.host} is not among egress_hosts`);
      for (const [h, v] of Object.entries(tool.http.headers)) {
        for (const m of v.matchAll(/\{\{credential:([A-Za-z0-9_]*)\}\}/g)) {
          if (!manifest.credentials.includes(m[1] ?? ""))
            bad(`tools[${i}].http.headers.${h}`, `credential ${m[1]} is not declared in credentials`);
        }
      }
    }
  });
  manifest.tests.forEach((t, i) => {
    if (!names.has(t.tool)) bad(`tests[${i}].tool`, `no tool named ${t.tool}`);
  });
  const l = manifest.limits;
  if (l) {
    if (l.timeoutMs > caps.timeoutMs) bad("limits.timeout_ms", `at most ${caps.timeoutMs} (NEXUS_MODULES_TIMEOUT_MS)`);
    if (l.cpuMs > caps.cpuMs) bad("limits.cpu_ms", `at most ${caps.cpuMs} (NEXUS_MODULES_CPU_MS)`);
    if (Number(l.memoryBytes) > caps.memoryBytes) bad("limits.memory_bytes", `at most ${caps.memoryBytes} (NEXUS_MODULES_MEMORY_BYTES)`);
    if (l.maxRequests > caps.maxRequests) bad("limits.max_requests", `at most ${caps.maxRequests} (NEXUS_MODULES_MAX_REQUESTS)`);
  }
}
