import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { SpanKind } from "@opentelemetry/api";
import { ToolCallSchema, ToolResultSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { ConfigError } from "../../kernel/config.js";
import { domainError } from "../../kernel/errors.js";
import type { ModelTool, ToolResultForModel } from "../providers/ports.js";
import { GEN_AI, GEN_AI_OPERATION } from "../telemetry/gen-ai-attributes.js";
import { newId, type RunContext } from "./run-context.js";
import { publicError, runErrorEvent } from "./run-errors.js";

/** Timeout of a tool call when the settings name none. */
const DEFAULT_TOOL_TIMEOUT_MS = 15_000;

/** One tool call of a run. */
export interface RunToolCall {
  module: string;
  tool: string;
  input: JsonObject;
  /** "request" (RunRequest.tool_calls) or "model". */
  chosenBy: "request" | "model";
}

/**
 * Makes one tool call for the run (modules CallTool, with the caller's key): streams
 * `tool_call`, counts it as a tool call of the run (run units), traces it as an
 * `execute_tool <module>.<tool>` span, bounds it by NEXUS_AGENT_TOOL_TIMEOUT_MS and the run's
 * deadline, and streams `tool_result`. A failure is the tool_result's `error` and what the
 * model is told — never the run's failure; only the run's own cancellation ends the run.
 */
export async function callRunTool(ctx: RunContext, call: RunToolCall): Promise<ToolResultForModel> {
  const { deps, control, telemetry, tally, events } = ctx;
  const callId = newId("call");
  const name = `${call.module}.${call.tool}`;
  events.push({
    case: "toolCall",
    value: create(ToolCallSchema, { callId, module: call.module, tool: call.tool, input: call.input, chosenBy: call.chosenBy }),
  });
  tally.toolCalls += 1;
  const started = performance.now();
  const base = { callId, module: call.module, tool: call.tool };
  try {
    const out = await telemetry.span(
      `${GEN_AI_OPERATION.EXECUTE_TOOL} ${name}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.EXECUTE_TOOL, [GEN_AI.TOOL_NAME]: name, [GEN_AI.TOOL_CALL_ID]: callId },
      },
      async () => {
        if (!deps.tools) throw domainError("FAILED_PRECONDITION", "this agent has no tool gateway", {});
        return deps.tools.call(call, control.peerCall(deps.settings.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS));
      },
      telemetry.context,
    );
    tally.toolCallUsage.push({
      module: call.module,
      tool: call.tool,
      moduleVersion: out.moduleVersion,
      listingId: out.listingId ?? "",
      cached: out.cached,
    });
    events.push({
      case: "toolResult",
      value: create(ToolResultSchema, {
        ...base,
        moduleVersion: out.moduleVersion,
        output: out.output,
        cached: out.cached,
        duration: durationFromMs(Math.round(performance.now() - started)),
      }),
    });
    return { name, result: JSON.stringify(out.output) };
  } catch (err) {
    if (control.signal.aborted) throw control.abortError();
    const error = publicError(toolError(err), ctx.input.runId);
    const event = runErrorEvent(error);
    ctx.log.info({ tool: name, reason: event.reason }, "tool call failed");
    events.push({
      case: "toolResult",
      value: create(ToolResultSchema, { ...base, error: event, duration: durationFromMs(Math.round(performance.now() - started)) }),
    });
    return { name, result: JSON.stringify({ error: { reason: event.reason, message: event.message } }) };
  }
}

/** A modules service this agent cannot locate is a set-up problem the user can act on. */
function toolError(err: unknown): unknown {
  if (err instanceof ConfigError) {
    return domainError("DEPENDENCY_UNAVAILABLE", "the modules service cannot be reached from this agent: set NEXUS_MODULES_URL", {
      dependency: "modules",
    });
  }
  return err;
}

/** The functions a model may call for `names` ("module.tool"): `<module>__<tool>`, each described by its module's active version. */
export async function modelTools(
  ctx: RunContext,
  names: readonly string[],
): Promise<{ tools: ModelTool[]; byName: Map<string, { module: string; tool: string }> }> {
  const tools: ModelTool[] = [];
  const byName = new Map<string, { module: string; tool: string }>();
  const modules = new Map<string, string[]>();
  for (const n of names) {
    const [module = "", tool = ""] = n.split(".");
    modules.set(module, [...(modules.get(module) ?? []), tool]);
  }
  for (const [module, wanted] of modules) {
    if (!ctx.deps.tools) break;
    let described: Awaited<ReturnType<NonNullable<typeof ctx.deps.tools>["describe"]>>;
    try {
      described = await ctx.deps.tools.describe(module, ctx.control.peerCall(ctx.deps.settings.peerTimeoutMs));
    } catch (err) {
      if (ctx.control.signal.aborted) throw ctx.control.abortError();
      ctx.log.info({ module, err: err instanceof Error ? err.message : String(err) }, "module not offered to the model");
      continue;
    }
    for (const d of described.filter((x) => wanted.includes(x.tool))) {
      const fn = `${module}__${d.tool}`.slice(0, 64);
      tools.push({ name: fn, description: d.description, parameters: d.inputSchema ?? { type: "object" } });
      byName.set(fn, { module, tool: d.tool });
    }
  }
  return { tools, byName };
}
