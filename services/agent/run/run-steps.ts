import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { SpanKind } from "@opentelemetry/api";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import {
  MessageFinalSchema,
  RetrievedChunkSchema,
  RunRetrievalSchema,
  TokenDeltaSchema,
} from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { CitationSchema } from "../../../gen/nexus/agent/v1/session_pb.js";
import { domainError, errorMetadata, errorReason, isReason } from "../../kernel/errors.js";
import { letWritesOut } from "../../kernel/events/foreground.js";
import type { GenerationChunk, Passage, ToolResultForModel } from "../providers/ports.js";
import type { StoredCitation } from "../sessions/session-records.js";
import { GEN_AI, GEN_AI_OPERATION } from "../telemetry/gen-ai-attributes.js";
import type { AdmissionParts } from "./run-admission.js";
import type { RunContext } from "./run-context.js";
import { countsAgainstBreaker, publicError } from "./run-errors.js";
import type { Generation, RunRecorder } from "./run-recorder.js";
import { callRunTool, modelTools } from "./run-tools.js";

// The steps of an accepted run, as functions over its (immutable) context: each returns what
// it produced and records what it measured in the run's tally. drive() in run-execution.ts
// calls them as the state machine (run-state.ts) says.

/**
 * Search, on the caller's behalf, inside a GenAI `retrieval <corpus>` span (a child of the
 * run span). Started during the quota check; `prefetch` aborts it when the run is refused.
 * Its outcome counts against the retrieval breaker only when it says retrieval is unwell
 * ({@link countsAgainstBreaker}).
 */
export async function searchPassages(parts: AdmissionParts, prefetch: AbortSignal): Promise<Passage[]> {
  const { deps, input, control, telemetry, tally } = parts;
  const corpusId = input.request.corpusId;
  const permit = deps.breakers.retrieval.acquire();
  const started = performance.now();
  const timeoutMs = control.boundedTimeout(deps.settings.retrievalTimeoutMs);
  tally.toolCalls += 1;
  const aborted = () => control.signal.aborted || prefetch.aborted;
  try {
    return await telemetry.span(
      `${GEN_AI_OPERATION.RETRIEVAL} ${corpusId}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.RETRIEVAL, [GEN_AI.DATA_SOURCE_ID]: corpusId },
        errorOf: (err) => (aborted() ? control.abortError() : retrievalError(err, timeoutMs)),
      },
      async (span) => {
        const topK = input.request.topK;
        const query = { corpusId, query: input.request.message, ...(topK !== undefined ? { topK } : {}) };
        const result = await deps.retriever.search(query, control.peerCall(timeoutMs, prefetch));
        permit.succeed();
        span.setAttribute("nexus.retrieved_chunks", result.passages.length);
        return result.passages;
      },
      telemetry.context,
    );
  } catch (err) {
    if (aborted()) {
      permit.release();
      throw control.signal.aborted ? control.abortError() : err;
    }
    if (countsAgainstBreaker(err)) permit.fail();
    else permit.release();
    throw retrievalError(err, timeoutMs);
  } finally {
    tally.retrievalMs = performance.now() - started;
  }
}

/** The retrieve step: the passages of the Search call started during the quota check, sent as `retrieval`. */
export async function retrieve(ctx: RunContext): Promise<Passage[]> {
  const outcome = await ctx.retrieval;
  if (outcome.kind === "failed") throw outcome.error;
  const passages = outcome.passages;
  ctx.events.push({
    case: "retrieval",
    value: create(RunRetrievalSchema, {
      hits: passages.map((p) =>
        create(RetrievedChunkSchema, {
          documentId: p.documentId,
          chunkOrdinal: p.chunkOrdinal,
          charStart: p.charStart,
          charEnd: p.charEnd,
          score: p.score,
        }),
      ),
    }),
  });
  return passages;
}

/**
 * The generate step: the model streams the answer as `token_delta` events inside a GenAI
 * `chat <model>` span (child of `agent.generate`); a remote provider goes through its breaker.
 * The first token is let out before the rest is framed.
 */
export async function generate(ctx: RunContext, passages: readonly Passage[]): Promise<Generation> {
  const { deps, input, control, telemetry, tally, cpu, events } = ctx;
  const { provider, model } = ctx.selection;
  const options = input.request.options;
  const attributes: Record<string, string | number | boolean> = {
    [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.CHAT,
    [GEN_AI.PROVIDER_NAME]: provider.telemetryName,
    [GEN_AI.SYSTEM]: provider.telemetryName,
    [GEN_AI.REQUEST_MODEL]: model,
    [GEN_AI.REQUEST_STREAM]: true,
    [GEN_AI.CONVERSATION_ID]: ctx.session.sessionId,
  };
  if (options?.temperature !== undefined) attributes[GEN_AI.REQUEST_TEMPERATURE] = options.temperature;
  if (options?.maxTokens !== undefined) attributes[GEN_AI.REQUEST_MAX_TOKENS] = options.maxTokens;
  // The request's own tool calls come first (before the model's permit is taken); their
  // results go to the model with the passages.
  const toolResults: ToolResultForModel[] = [];
  for (const c of input.request.toolCalls) {
    toolResults.push(await callRunTool(ctx, { module: c.module, tool: c.tool, input: c.input ?? {}, chosenBy: "request" }));
  }
  const offered = input.request.tools.length > 0 ? await modelTools(ctx, input.request.tools) : undefined;
  const callTool = async (name: string, argumentsJson: string): Promise<string> => {
    const target = offered?.byName.get(name);
    if (!target) return JSON.stringify({ error: { reason: "NOT_FOUND", message: `no tool named ${name} was offered` } });
    let args: unknown;
    try {
      args = JSON.parse(argumentsJson || "{}");
    } catch {
      return JSON.stringify({ error: { reason: "TOOL_INPUT_INVALID", message: "the arguments are not JSON" } });
    }
    const input = args !== null && typeof args === "object" && !Array.isArray(args) ? (args as JsonObject) : {};
    return (await callRunTool(ctx, { ...target, input, chosenBy: "model" })).result;
  };
  const permit = provider.remote ? deps.breakers.model(provider).acquire() : undefined;
  const started = performance.now();
  try {
    return await telemetry.span(
      `${GEN_AI_OPERATION.CHAT} ${model}`,
      {
        kind: provider.remote ? SpanKind.CLIENT : SpanKind.INTERNAL,
        attributes,
        errorOf: (err) => (control.signal.aborted ? control.abortError() : err),
      },
      async (span) => {
        if (control.signal.aborted) throw control.signal.reason;
        const stream = provider.generate({
          question: input.request.message,
          history: [...ctx.session.history],
          passages: [...passages],
          model,
          ...(options?.temperature !== undefined ? { temperature: options.temperature } : {}),
          ...(options?.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
          signal: control.signal,
          cpu,
          toolResults,
          ...(offered && offered.tools.length > 0 ? { tools: offered.tools, callTool } : {}),
        });
        let end: Extract<GenerationChunk, { kind: "end" }> | undefined;
        for await (const chunk of stream) {
          if (chunk.kind === "end") {
            end = chunk;
            continue;
          }
          tally.answer += chunk.text;
          cpu.measure(() => events.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: chunk.text }) }));
          if (tally.timeToFirstTokenMs === undefined) {
            tally.timeToFirstTokenMs = performance.now() - ctx.acceptedAt;
            span.setAttribute(GEN_AI.RESPONSE_TIME_TO_FIRST_CHUNK, (performance.now() - started) / 1000);
            deps.metrics.timeToFirstToken.observe({ provider: provider.name }, tally.timeToFirstTokenMs / 1000);
            // Let the first token go out before the rest is framed: a local provider has its whole answer at once.
            await letWritesOut();
          }
        }
        if (end === undefined) {
          throw domainError("DEPENDENCY_UNAVAILABLE", `the ${provider.name} provider ended without finishing the answer`, {
            provider: provider.name,
          });
        }
        permit?.succeed();
        const finished = end;
        const citations = cpu.measure(() => mapCitations(finished.citations, passages));
        span.setAttributes({
          [GEN_AI.RESPONSE_MODEL]: finished.responseModel ?? model,
          [GEN_AI.RESPONSE_FINISH_REASONS]: [finished.finishReason],
          [GEN_AI.USAGE_INPUT_TOKENS]: finished.usage.inputTokens,
          [GEN_AI.USAGE_OUTPUT_TOKENS]: finished.usage.outputTokens,
          "nexus.token_counts_estimated": finished.usage.estimated,
        });
        return { answer: tally.answer, citations, usage: finished.usage, finishReason: finished.finishReason, passages: passages.length };
      },
    );
  } catch (err) {
    if (control.signal.aborted) {
      permit?.release();
      throw control.abortError();
    }
    if (countsAgainstBreaker(err)) permit?.fail();
    else permit?.release();
    throw err;
  } finally {
    tally.generationMs = performance.now() - started;
  }
}

/** The provider's citations as exact spans of the ingested documents. */
function mapCitations(
  citations: ReadonlyArray<{ passage: number; start: number; end: number }>,
  passages: readonly Passage[],
): StoredCitation[] {
  return citations.flatMap((c): StoredCitation[] => {
    const p = passages[c.passage];
    if (p === undefined) return [];
    return [
      {
        documentId: p.documentId,
        chunkOrdinal: p.chunkOrdinal,
        charStart: p.charStart + c.start,
        charEnd: p.charStart + c.end,
        score: p.score,
        filename: p.filename,
        quote: codePointSlice(p.text, c.start, c.end),
      },
    ];
  });
}

function codePointSlice(text: string, start: number, end: number): string {
  return [...text].slice(start, end).join("");
}

/**
 * The persist step of a completed run: one transaction stores the question and the answer
 * with RunCompleted, then `message_final` is sent. When it cannot be stored the run fails
 * (its question and RunFailed are then stored, retried until the database is back).
 */
export async function persistCompleted(ctx: RunContext, recorder: RunRecorder, generation: Generation): Promise<void> {
  let stored: { kept: boolean; assistantMessageId: string };
  try {
    stored = await recorder.storeCompleted(generation);
  } catch (err) {
    await recorder.storeEnded({ kind: "failed", failure: publicError(err, ctx.input.runId), failedStep: "persist" });
    throw err;
  }
  if (!stored.kept) ctx.log.info({ session_id: ctx.session.sessionId }, "the session was deleted during the run; its turn was not stored");
  ctx.events.push({
    case: "messageFinal",
    value: create(MessageFinalSchema, {
      messageId: stored.kept ? stored.assistantMessageId : "",
      text: generation.answer,
      citations: generation.citations.map((c) => create(CitationSchema, c)),
      inputTokens: BigInt(Math.round(generation.usage.inputTokens ?? 0)),
      outputTokens: BigInt(Math.round(generation.usage.outputTokens ?? 0)),
      finishReason: generation.finishReason,
    }),
  });
}

/** Retrieval failures as the run reports them: timeouts and outages as DEPENDENCY_UNAVAILABLE. */
function retrievalError(err: unknown, timeoutMs: number): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.DeadlineExceeded) {
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the retrieval service did not answer within ${timeoutMs} ms`,
      { dependency: "retrieval", timeout_ms: timeoutMs },
      { cause: err },
    );
  }
  // The run was not cancelled (the caller checked), so a CANCELLED here is the connection's, and
  // an ABORTED without a reason is too (connect-node's code for a reset or destroyed stream);
  // an ABORTED the retrieval service meant carries its reason and passes through.
  const transportAbort = err.code === Code.Aborted && errorReason(err) === undefined;
  if (
    transportAbort ||
    err.code === Code.Unavailable ||
    err.code === Code.Canceled ||
    err.code === Code.Unimplemented ||
    err.code === Code.Internal ||
    err.code === Code.Unknown
  ) {
    if (isReason(err, "DEPENDENCY_UNAVAILABLE") && errorMetadata(err).dependency === "retrieval") return err;
    const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the retrieval service failed: ${err.rawMessage}`,
      { dependency: "retrieval" },
      { cause: err, ...(retry ? { retryAfterMs: Number(retry.seconds) * 1000 + retry.nanos / 1e6 } : {}) },
    );
  }
  return err;
}
