import { ConnectError } from "@connectrpc/connect";
import { domainError } from "../../../kernel/errors.js";
import type { GenerationChunk, GenerationRequest, ModelProvider, ModelUsage } from "../ports.js";
import { chatMessages, citationsFromMarkers } from "./chat-prompt.js";
import { serverSentEvents } from "./server-sent-events.js";

/** Options of {@link createOpenAiProvider}. */
export interface OpenAiProviderOptions {
  /** API base including the version, e.g. "https://api.openai.com/v1" (NEXUS_OPENAI_BASE_URL). */
  baseUrl: string;
  /** Model when neither request nor corpus names one (NEXUS_OPENAI_MODEL). */
  defaultModel: string;
  /** Bearer token (NEXUS_OPENAI_API_KEY); unset for local servers that need none. */
  apiKey?: string;
  /**
   * Longest wait for the response headers, for the first chunk and between chunks
   * (NEXUS_AGENT_MODEL_TIMEOUT_MS). A stalled stream fails with UNAVAILABLE. Default 30 000.
   */
  timeoutMs?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
}

interface ChunkJson {
  model?: string;
  choices?: Array<{
    delta?: {
      content?: string | null;
      tool_calls?: Array<{ index?: number; id?: string; function?: { name?: string; arguments?: string } }>;
    };
    finish_reason?: string | null;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number; gpu_seconds?: number } | null;
  error?: { message?: string; type?: string; code?: string | number };
}

/** Rounds of tool calls a model may make in one run before it must answer. */
export const MAX_TOOL_ROUNDS = 4;

/** Most bytes of an error body kept for the message. */
const ERROR_BODY_LIMIT = 2000;

/**
 * The `openai` provider: any OpenAI-compatible Chat Completions server (OpenAI, vLLM,
 * Ollama, llama.cpp, Gemini's compatible endpoint), streaming (`stream: true` with
 * `stream_options.include_usage`). The passages are numbered in the system message and the
 * model is asked to cite them as [n]; the markers become citations of those passages.
 *
 * Failures: unreachable server, 408/409/429/5xx, 401/403 (the installation's key), a
 * malformed stream or one that stalls longer than the timeout → UNAVAILABLE
 * DEPENDENCY_UNAVAILABLE (with RetryInfo from Retry-After); other 4xx (unknown model,
 * context too long) → FAILED_PRECONDITION. Aborting the request's signal aborts the HTTP
 * request at once, so the server sees the client go away.
 *
 * Tool calling: with `tools` and `callTool`, the functions are offered to the model; when it
 * answers with `tool_calls` (streamed in pieces), each is made through `callTool`, the
 * assistant message and the `tool` results are appended, and the model is asked again — at
 * most {@link MAX_TOOL_ROUNDS} rounds, after which it is asked without tools.
 */
export function createOpenAiProvider(options: OpenAiProviderOptions): ModelProvider {
  const endpoint = `${options.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const doFetch = options.fetch ?? fetch;
  const host = safeHost(options.baseUrl);

  return {
    name: "openai",
    defaultModel: options.defaultModel,
    telemetryName: "openai",
    remote: true,
    rejectModel(model) {
      return /^[A-Za-z0-9._:/@-]{1,200}$/.test(model) ? undefined : "model names are letters, digits and ._:/@- (at most 200)";
    },
    async *generate(request: GenerationRequest): AsyncGenerator<GenerationChunk> {
      const controller = new AbortController();
      const onAbort = () => controller.abort(request.signal.reason);
      if (request.signal.aborted) throw request.signal.reason;
      request.signal.addEventListener("abort", onAbort, { once: true });
      let stalled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          stalled = true;
          controller.abort(stallError(timeoutMs, host));
        }, timeoutMs);
      };
      const fail = (err: unknown): unknown => {
        if (request.signal.aborted) return request.signal.reason;
        if (stalled) return stallError(timeoutMs, host);
        if (err instanceof ConnectError) return err;
        return domainError(
          "DEPENDENCY_UNAVAILABLE",
          `the model server at ${host} could not be reached: ${err instanceof Error ? err.message : String(err)}`,
          { dependency: "model:openai", provider: "openai" },
          { cause: err },
        );
      };

      try {
        // Chat messages, grown by the tool rounds: the model's tool calls and their results.
        const messages: unknown[] = chatMessages(request.question, request.history, request.passages, request.toolResults ?? []);
        const tools = request.callTool ? (request.tools ?? []) : [];
        let text = "";
        let finishReason = "";
        let responseModel: string | undefined;
        let usage: ChunkJson["usage"];
        for (let round = 0; ; round++) {
          // After MAX_TOOL_ROUNDS rounds of calls the model must answer with what it has.
          const offerTools = tools.length > 0 && round < MAX_TOOL_ROUNDS;
          const body = request.cpu.measure(() =>
            JSON.stringify({
              model: request.model,
              messages,
              stream: true,
              stream_options: { include_usage: true },
              ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
              ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
              ...(offerTools
                ? {
                    tools: tools.map((t) => ({
                      type: "function",
                      function: { name: t.name, description: t.description, parameters: t.parameters },
                    })),
                  }
                : {}),
            }),
          );
          arm();
          let res: Response;
          try {
            res = await doFetch(endpoint, {
              method: "POST",
              headers: {
                "content-type": "application/json",
                accept: "text/event-stream",
                ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
              },
              body,
              signal: controller.signal,
            });
          } catch (err) {
            throw fail(err);
          }
          if (!res.ok) {
            const errorText = await res.text().catch(() => "");
            throw httpError(res.status, errorText.slice(0, ERROR_BODY_LIMIT), res.headers.get("retry-after"), host, request.model);
          }
          if (res.body === null) throw fail(new Error("the response has no body"));

          let roundFinish = "";
          let sawDone = false;
          const calls: { id: string; name: string; arguments: string }[] = [];
          try {
            arm();
            for await (const data of serverSentEvents(res.body)) {
              arm();
              if (data === "[DONE]") {
                sawDone = true;
                break;
              }
              const chunk = request.cpu.measure(() => parseChunk(data, host));
              if (chunk.error) {
                throw domainError(
                  "DEPENDENCY_UNAVAILABLE",
                  `the model server at ${host} failed mid-answer: ${chunk.error.message ?? "unknown error"}`,
                  { dependency: "model:openai", provider: "openai" },
                );
              }
              if (chunk.model) responseModel = chunk.model;
              if (chunk.usage) usage = addUsage(usage, chunk.usage);
              const choice = chunk.choices?.[0];
              if (choice?.finish_reason) roundFinish = choice.finish_reason;
              // Tool calls stream in pieces keyed by index: the id and name first, then the arguments.
              for (const t of choice?.delta?.tool_calls ?? []) {
                const i = typeof t.index === "number" ? t.index : calls.length;
                calls[i] ??= { id: "", name: "", arguments: "" };
                const c = calls[i];
                if (t.id) c.id = t.id;
                if (t.function?.name) c.name += t.function.name;
                if (t.function?.arguments) c.arguments += t.function.arguments;
              }
              const delta = choice?.delta?.content;
              if (typeof delta === "string" && delta !== "") {
                text += delta;
                yield { kind: "delta", text: delta };
              }
            }
          } catch (err) {
            throw fail(err);
          }
          if (!sawDone && roundFinish === "") {
            throw domainError("DEPENDENCY_UNAVAILABLE", `the model server at ${host} ended its stream before finishing the answer`, {
              dependency: "model:openai",
              provider: "openai",
            });
          }
          finishReason = roundFinish;
          const chosen = calls.filter((c) => c !== undefined && c.name !== "");
          if (!offerTools || chosen.length === 0 || !request.callTool) break;
          messages.push({
            role: "assistant",
            content: null,
            tool_calls: chosen.map((c, i) => ({
              id: c.id || `call_${round}_${i}`,
              type: "function",
              function: { name: c.name, arguments: c.arguments },
            })),
          });
          for (const [i, c] of chosen.entries()) {
            const result = await request.callTool(c.name, c.arguments);
            messages.push({ role: "tool", tool_call_id: c.id || `call_${round}_${i}`, content: result });
          }
        }
        const citations = request.cpu.measure(() => citationsFromMarkers(text, request.passages));
        yield {
          kind: "end",
          citations,
          usage: usageOf(usage, request, text),
          finishReason: finishReason || "stop",
          ...(responseModel ? { responseModel } : {}),
        };
      } finally {
        clearTimeout(watchdog);
        request.signal.removeEventListener("abort", onAbort);
        // Leaving early (cancel, failure, consumer stopped) must close the HTTP request.
        if (!controller.signal.aborted) controller.abort(domainError("CANCELLED", "generation ended"));
      }
    },
  };
}

function parseChunk(data: string, host: string): ChunkJson {
  try {
    const parsed: unknown = JSON.parse(data);
    if (parsed === null || typeof parsed !== "object") throw new Error("not an object");
    return parsed as ChunkJson;
  } catch (err) {
    throw domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the model server at ${host} sent a malformed stream chunk`,
      { dependency: "model:openai", provider: "openai" },
      { cause: err },
    );
  }
}

/** Usage over several requests (tool rounds): token counts add up. */
function addUsage(a: ChunkJson["usage"], b: NonNullable<ChunkJson["usage"]>): ChunkJson["usage"] {
  if (!a) return b;
  const sum = (x: number | undefined, y: number | undefined) => (x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0));
  const prompt = sum(a.prompt_tokens, b.prompt_tokens);
  const completion = sum(a.completion_tokens, b.completion_tokens);
  const gpu = sum(a.gpu_seconds, b.gpu_seconds);
  return {
    ...(prompt !== undefined ? { prompt_tokens: prompt } : {}),
    ...(completion !== undefined ? { completion_tokens: completion } : {}),
    ...(gpu !== undefined ? { gpu_seconds: gpu } : {}),
  };
}

function usageOf(usage: ChunkJson["usage"], request: GenerationRequest, answer: string): ModelUsage {
  const gpuSeconds = typeof usage?.gpu_seconds === "number" && usage.gpu_seconds >= 0 ? usage.gpu_seconds : 0;
  if (typeof usage?.prompt_tokens === "number" && typeof usage.completion_tokens === "number") {
    return { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens, estimated: false, gpuSeconds };
  }
  const inputChars =
    [...request.question].length +
    request.history.reduce((n, m) => n + [...m.text].length, 0) +
    request.passages.reduce((n, p) => n + [...p.text].length, 0);
  return { inputTokens: inputChars, outputTokens: [...answer].length, estimated: true, gpuSeconds };
}

function stallError(timeoutMs: number, host: string) {
  return domainError("DEPENDENCY_UNAVAILABLE", `the model server at ${host} sent nothing for ${timeoutMs} ms; the answer was abandoned`, {
    dependency: "model:openai",
    provider: "openai",
    timeout_ms: timeoutMs,
  });
}

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function upstreamMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
    if (typeof parsed.error?.message === "string") return parsed.error.message;
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: use the text
  }
  return body.trim().slice(0, 300) || "no details";
}

function httpError(status: number, body: string, retryAfter: string | null, host: string, model: string) {
  const detail = upstreamMessage(body);
  const metadata = { dependency: "model:openai", provider: "openai", upstream_status: status, model };
  if (status === 408 || status === 409 || status === 429 || status >= 500) {
    const wait = retryAfterMs(retryAfter);
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the model server at ${host} answered HTTP ${status}: ${detail}`,
      metadata,
      wait !== undefined ? { retryAfterMs: wait } : {},
    );
  }
  if (status === 401 || status === 403) {
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the model server at ${host} refused the installation's credentials (HTTP ${status}): ${detail}`,
      metadata,
    );
  }
  return domainError("FAILED_PRECONDITION", `the model server at ${host} refused the request (HTTP ${status}): ${detail}`, metadata);
}

function safeHost(baseUrl: string): string {
  try {
    return new URL(baseUrl).host;
  } catch {
    return "the configured address";
  }
}
