import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../../../gen/google/rpc/error_details_pb.js";
import { type OpenAiStandin, startOpenAiStandin } from "../../../../tests/support/openai-standin.js";
import { domainError, errorReason } from "../../../kernel/errors.js";
import { CpuMeter } from "../../run/cpu-meter.js";
import type { GenerationChunk, GenerationRequest, Passage } from "../ports.js";
import { createOpenAiProvider } from "./openai-provider.js";

// The model server here is a LOCAL STAND-IN for a cloud LLM (tests/support/openai-standin.ts).

const passages: Passage[] = [
  {
    documentId: "keys",
    chunkOrdinal: 0,
    charStart: 0,
    charEnd: 30,
    text: "Rotate keys with nexus keys rotate.",
    score: 0.9,
    filename: "keys.md",
  },
  {
    documentId: "quotas",
    chunkOrdinal: 2,
    charStart: 100,
    charEnd: 140,
    text: "Quotas limit runs per day.",
    score: 0.4,
    filename: "quotas.md",
  },
];

function request(signal = new AbortController().signal, model = "standin-model"): GenerationRequest {
  return {
    question: "How do I rotate a key?",
    history: [
      { role: "user", text: "Hi" },
      { role: "assistant", text: "Hello" },
    ],
    passages,
    model,
    temperature: 0.2,
    maxTokens: 100,
    signal,
    cpu: new CpuMeter(),
  };
}

async function collect(gen: AsyncIterable<GenerationChunk>): Promise<GenerationChunk[]> {
  const out: GenerationChunk[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

async function failure(gen: AsyncIterable<GenerationChunk>): Promise<ConnectError> {
  try {
    await collect(gen);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the generation to fail");
}

async function until(probe: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (probe()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("openai provider against the local stand-in server", () => {
  let standin: OpenAiStandin;
  beforeAll(async () => {
    standin = await startOpenAiStandin();
  });
  afterAll(async () => {
    await standin.close();
  });

  it("streams the answer, reports usage and turns [n] markers into citations", async () => {
    standin.enqueue({
      kind: "answer",
      text: "Use nexus keys rotate [1]. See also [7] and [1].",
      usage: { prompt_tokens: 120, completion_tokens: 9, gpu_seconds: 0.25 },
    });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x", apiKey: "sk-test" });
    const chunks = await collect(provider.generate(request()));
    const deltas = chunks.filter((c) => c.kind === "delta").map((c) => (c.kind === "delta" ? c.text : ""));
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.join("")).toBe("Use nexus keys rotate [1]. See also [7] and [1].");
    const end = chunks.at(-1);
    expect(end?.kind).toBe("end");
    if (end?.kind !== "end") return;
    expect(end.usage).toEqual({ inputTokens: 120, outputTokens: 9, estimated: false, gpuSeconds: 0.25 });
    expect(end.citations).toEqual([{ passage: 0, start: 0, end: [...passages[0]!.text].length }]);
    expect(end.finishReason).toBe("stop");

    const sent = standin.requests.at(-1)!;
    expect(sent.authorization).toBe("Bearer sk-test");
    expect(sent.body.model).toBe("standin-model");
    expect(sent.body.stream).toBe(true);
    expect(sent.body.temperature).toBe(0.2);
    expect(sent.body.max_tokens).toBe(100);
    expect(sent.body.messages?.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
    expect(sent.body.messages?.[0]?.content).toContain("[2] (quotas.md)\nQuotas limit runs per day.");
    expect(sent.body.messages?.at(-1)?.content).toBe("How do I rotate a key?");
  });

  it("counts characters when the server reports no usage", async () => {
    standin.enqueue({ kind: "answer", text: "Short answer.", usage: null });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x" });
    const end = (await collect(provider.generate(request()))).at(-1);
    expect(end?.kind === "end" && end.usage.estimated).toBe(true);
    expect(end?.kind === "end" && end.usage.outputTokens).toBe("Short answer.".length);
    expect(standin.requests.at(-1)?.authorization).toBeUndefined();
  });

  it("maps 503 with Retry-After to UNAVAILABLE DEPENDENCY_UNAVAILABLE with RetryInfo", async () => {
    standin.enqueue({
      kind: "status",
      status: 503,
      headers: { "retry-after": "7" },
      body: JSON.stringify({ error: { message: "overloaded" } }),
    });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x" });
    const err = await failure(provider.generate(request()));
    expect(err.code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("DEPENDENCY_UNAVAILABLE");
    expect(err.rawMessage).toContain("overloaded");
    expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(7n);
  });

  it("maps a refused request (unknown model) to FAILED_PRECONDITION", async () => {
    standin.enqueue({ kind: "status", status: 404, body: JSON.stringify({ error: { message: "model nope does not exist" } }) });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x" });
    const err = await failure(provider.generate(request(undefined, "nope")));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("model nope does not exist");
  });

  it("abandons a stalled stream with UNAVAILABLE and closes the connection", async () => {
    standin.enqueue({ kind: "stall", text: "This will never finish", afterChunks: 2 });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x", timeoutMs: 200 });
    const err = await failure(provider.generate(request()));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("sent nothing for 200 ms");
    const record = standin.requests.at(-1)!;
    await until(() => record.clientAborted, "the stand-in to see the client go away");
  });

  it("fails on an error chunk in the middle of the stream", async () => {
    standin.enqueue({ kind: "midstream_error", text: "Partial answer here", afterChunks: 2, message: "GPU fell over" });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x" });
    const err = await failure(provider.generate(request()));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("GPU fell over");
  });

  it("aborting the signal stops the upstream stream at once", async () => {
    standin.enqueue({ kind: "endless", text: "tick tock ", chunkDelayMs: 5 });
    const provider = createOpenAiProvider({ baseUrl: standin.baseUrl, defaultModel: "x" });
    const controller = new AbortController();
    const reason = domainError("CANCELLED", "client went away");
    const seen: string[] = [];
    let caught: unknown;
    try {
      for await (const c of provider.generate(request(controller.signal))) {
        if (c.kind === "delta") seen.push(c.text);
        if (seen.length === 3) controller.abort(reason);
      }
    } catch (err) {
      caught = err;
    }
    expect(caught).toBe(reason);
    const record = standin.requests.at(-1)!;
    await until(() => record.clientAborted, "the stand-in to see the client go away");
    const sentAtAbort = record.chunksSent;
    await new Promise((r) => setTimeout(r, 50));
    expect(record.chunksSent).toBe(sentAtAbort);
  });

  it("reports an unreachable server as UNAVAILABLE", async () => {
    const provider = createOpenAiProvider({ baseUrl: "http://127.0.0.1:1/v1", defaultModel: "x" });
    const err = await failure(provider.generate(request()));
    expect(err.code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("DEPENDENCY_UNAVAILABLE");
  });
});
