import { createClient, type Transport } from "@connectrpc/connect";
import { ModulesService } from "../../../gen/nexus/modules/v1/modules_service_pb.js";
import { domainError } from "../../kernel/errors.js";
import type { ToolGateway } from "../ports.js";

/**
 * The modules service's CallTool and GetModule over a gRPC transport
 * (`deps.peers.transport("modules")`, resolved at call time), on behalf of the caller: the
 * caller's `authorization` travels with the call, so only the caller's tenant's active,
 * approved module versions run.
 */
export function createGrpcTools(transport: () => Transport): ToolGateway {
  const client = () => createClient(ModulesService, transport());
  const options = (call: { headers: Headers; signal: AbortSignal; timeoutMs?: number }) => ({
    headers: call.headers,
    signal: call.signal,
    ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}),
  });
  return {
    async call(input, call) {
      const res = await client().callTool({ module: input.module, tool: input.tool, input: input.input }, options(call));
      return { output: res.output ?? {}, moduleVersion: res.moduleVersion, cached: res.cached, listingId: res.listingId };
    },
    async describe(module, call) {
      const { module: m } = await client().getModule({ name: module }, options(call));
      const active = m?.versions.find((v) => v.version === m.activeVersion);
      if (!active?.manifest) {
        throw domainError("MODULE_NOT_ACTIVE", `module ${module} has no active version`, { module });
      }
      return active.manifest.tools.map((t) => ({
        tool: t.name,
        description: t.description || active.manifest?.description || "",
        ...(t.inputSchema ? { inputSchema: t.inputSchema } : {}),
      }));
    },
  };
}
