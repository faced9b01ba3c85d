import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A LOCAL STAND-IN for a cloud LLM: a small OpenAI-compatible Chat Completions server
 * (POST /v1/chat/completions, `stream: true` answered as text/event-stream) that tests script
 * to stream chunks, fail, or stall. It is not OpenAI and runs no model; it lets the agent's
 * `openai` provider be tested over real HTTP without network access or a key.
 */

/** What the stand-in does with the next request. */
export type StandinBehaviour =
  | {
      kind: "answer";
      /** The answer, streamed in `chunks` pieces (default: split into words). */
      text: string;
      /** Delay before each chunk (default 0). */
      chunkDelayMs?: number;
      /** Usage to report in the final chunk; `null` reports none (default: counts of words). */
      usage?: { prompt_tokens: number; completion_tokens: number; gpu_seconds?: number } | null;
      finishReason?: string;
    }
  | { kind: "status"; status: number; body?: string; headers?: Record<string, string> }
  | {
      /** Streams `text`'s first `afterChunks` words, then keeps the connection open and silent. */
      kind: "stall";
      text: string;
      afterChunks: number;
    }
  | {
      /** Streams `afterChunks` words of `text`, then an error chunk, then ends. */
      kind: "midstream_error";
      text: string;
      afterChunks: number;
      message: string;
    }
  | {
      /** Streams `text` forever-ish, one word every `chunkDelayMs`, until the client goes away. */
      kind: "endless";
      text: string;
      chunkDelayMs: number;
    }
  | {
      /**
       * Chat Completions tool calling: streams the calls as `delta.tool_calls` pieces (id and
       * name first, then the arguments in two halves) and ends with finish_reason "tool_calls".
       */
      kind: "tool_calls";
      calls: Array<{ id: string; name: string; arguments: string }>;
    }
  | {
      /** A non-streamed answer (`stream: false` requests): one choice whose message content is `content`. */
      kind: "message";
      content: string;
    };

/** One request the stand-in received. */
export interface StandinRequest {
  body: {
    model?: string;
    messages?: Array<{ role: string; content: string | null; tool_call_id?: string; tool_calls?: unknown[] }>;
    tools?: Array<{ type: string; function: { name: string; description?: string; parameters?: unknown } }>;
    stream?: boolean;
    temperature?: number;
    max_tokens?: number;
  };
  authorization: string | undefined;
  /** Chunks written to the client. */
  chunksSent: number;
  /** True once the client closed the connection before the stand-in finished. */
  clientAborted: boolean;
  /** True once the stand-in finished its answer normally. */
  finished: boolean;
}

/** A running stand-in. */
export interface OpenAiStandin {
  /** Base URL including /v1, for NEXUS_OPENAI_BASE_URL. */
  baseUrl: string;
  /** Every request so far, oldest first. */
  requests: StandinRequest[];
  /** Queues behaviours for the next requests (first in, first used). */
  enqueue(...behaviours: StandinBehaviour[]): void;
  /** Used when the queue is empty. Default: answer "Nexus answers from passage [1]." */
  setDefault(behaviour: StandinBehaviour): void;
  close(): Promise<void>;
}

function words(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

function chunk(model: string, content: string | undefined, finish: string | null, usage?: unknown): string {
  const payload = {
    id: "chatcmpl-standin",
    object: "chat.completion.chunk",
    created: 0,
    model,
    choices:
      content === undefined && finish === null
        ? []
        : [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }],
    ...(usage !== undefined ? { usage } : {}),
  };
  return `data: ${JSON.stringify(payload)}\n\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the stand-in on 127.0.0.1 (a free port). */
export async function startOpenAiStandin(): Promise<OpenAiStandin> {
  const queue: StandinBehaviour[] = [];
  let fallback: StandinBehaviour = { kind: "answer", text: "Nexus answers from passage [1]." };
  const requests: StandinRequest[] = [];
  const open = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found" } }));
      return;
    }
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (raw += c));
    req.on("end", () => {
      const record: StandinRequest = {
        body: JSON.parse(raw || "{}") as StandinRequest["body"],
        authorization: req.headers.authorization,
        chunksSent: 0,
        clientAborted: false,
        finished: false,
      };
      requests.push(record);
      open.add(res);
      res.on("close", () => {
        open.delete(res);
        if (!record.finished) record.clientAborted = true;
      });
      void respond(queue.shift() ?? fallback, record, res);
    });
  });

  async function respond(b: StandinBehaviour, record: StandinRequest, res: http.ServerResponse): Promise<void> {
    const model = record.body.model ?? "standin";
    if (b.kind === "status") {
      res.writeHead(b.status, { "content-type": "application/json", ...(b.headers ?? {}) });
      res.end(b.body ?? JSON.stringify({ error: { message: `stand-in says ${b.status}` } }));
      record.finished = true;
      return;
    }
    if (b.kind === "message") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: "chatcmpl-standin",
          object: "chat.completion",
          model,
          choices: [{ index: 0, message: { role: "assistant", content: b.content }, finish_reason: "stop" }],
        }),
      );
      record.finished = true;
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const write = (s: string) => {
      if (res.destroyed) return false;
      res.write(s);
      record.chunksSent++;
      return true;
    };
    if (b.kind === "answer") {
      const parts = words(b.text);
      for (const w of parts) {
        if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
        if (!write(chunk(model, w, null))) return;
      }
      write(chunk(model, undefined, b.finishReason ?? "stop"));
      const usage = b.usage === undefined ? { prompt_tokens: 42, completion_tokens: parts.length } : b.usage;
      if (usage !== null) write(chunk(model, undefined, null, usage));
      write("data: [DONE]\n\n");
      record.finished = true;
      res.end();
      return;
    }
    if (b.kind === "tool_calls") {
      const piece = (delta: unknown, finish: string | null) =>
        `data: ${JSON.stringify({ id: "chatcmpl-standin", object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      for (const [index, c] of b.calls.entries()) {
        const half = Math.floor(c.arguments.length / 2);
        write(piece({ tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: "" } }] }, null));
        write(piece({ tool_calls: [{ index, function: { arguments: c.arguments.slice(0, half) } }] }, null));
        write(piece({ tool_calls: [{ index, function: { arguments: c.arguments.slice(half) } }] }, null));
      }
      write(piece({}, "tool_calls"));
      write(chunk(model, undefined, null, { prompt_tokens: 30, completion_tokens: 5 }));
      write("data: [DONE]\n\n");
      record.finished = true;
      res.end();
      return;
    }
    if (b.kind === "stall") {
      for (const w of words(b.text).slice(0, b.afterChunks)) if (!write(chunk(model, w, null))) return;
      return; // stays open and silent until the client gives up or the server closes
    }
    if (b.kind === "midstream_error") {
      for (const w of words(b.text).slice(0, b.afterChunks)) if (!write(chunk(model, w, null))) return;
      write(`data: ${JSON.stringify({ error: { message: b.message, type: "server_error" } })}\n\n`);
      record.finished = true;
      res.end();
      return;
    }
    const parts = words(b.text);
    for (let i = 0; !res.destroyed; i++) {
      await sleep(b.chunkDelayMs);
      if (!write(chunk(model, parts[i % Math.max(1, parts.length)] ?? "word ", null))) return;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue: (...b) => queue.push(...b),
    setDefault: (b) => (fallback = b),
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
