import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type EmbeddingsStandIn, startEmbeddingsStandIn } from "../../../../tests/support/rag/embeddings-stand-in.js";
import { CircuitBreaker } from "../../../kernel/resilience/index.js";
import { createEmbeddingModels } from "./embedding-models.js";
import { createHashEmbedder, hashEmbedding } from "./hash-embedder.js";
import { createOpenAiEmbedder } from "./openai-embedder.js";
import { EmbeddingError } from "./ports.js";

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

async function embeddingError(p: Promise<unknown>): Promise<EmbeddingError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof EmbeddingError) return err;
    throw err;
  }
  throw new Error("expected an EmbeddingError");
}

describe("hash embeddings (offline default)", () => {
  it("are deterministic unit vectors that put related wording closer than unrelated text", async () => {
    const a = hashEmbedding("Reindexing the corpus after changing the model", 256);
    expect(Array.from(a)).toEqual(Array.from(hashEmbedding("Reindexing the corpus after changing the model", 256)));
    expect(cosine(a, a)).toBeCloseTo(1, 5);
    const near = hashEmbedding("reindex a corpus when the model changed", 256);
    const far = hashEmbedding("penguins waddle across antarctic ice", 256);
    expect(cosine(a, near)).toBeGreaterThan(cosine(a, far) + 0.2);
    const [v] = await createHashEmbedder(64).embed(["x"]);
    expect(v!.length).toBe(64);
  });

  it("only hash models work without an embeddings server", () => {
    const models = createEmbeddingModels();
    expect(models.defaultModel).toBe("hash-256");
    expect(models.canonicalModel("hash-256", 128)).toBe("hash-128");
    expect(models.available("text-embedding-3-small")).toBe(false);
    expect(() => models.embedder("text-embedding-3-small", 1536)).toThrow(/NEXUS_EMBEDDINGS_URL/);
  });
});

describe("OpenAI-compatible embeddings against a STAND-IN server on 127.0.0.1", () => {
  let standIn: EmbeddingsStandIn;
  beforeAll(async () => {
    standIn = await startEmbeddingsStandIn();
  });
  afterAll(() => standIn?.close());
  beforeEach(() => {
    standIn.behaviour = {};
    standIn.requests.length = 0;
  });

  it("sends inputs in batches and returns one unit vector per input, in order", async () => {
    const embedder = createOpenAiEmbedder({ baseUrl: standIn.baseUrl, model: "m", dimensions: 16, batchSize: 4 });
    const texts = Array.from({ length: 10 }, (_, i) => (i % 2 ? `refund number ${i}` : `parcel delivery ${i}`));
    const progress: number[] = [];
    const vectors = await embedder.embed(texts, { onProgress: (n) => void progress.push(n) });
    expect(standIn.requests.map((r) => r.length)).toEqual([4, 4, 2]);
    expect(standIn.requests.flat()).toEqual(texts);
    expect(progress).toEqual([4, 8, 10]);
    expect(vectors.length).toBe(10);
    for (const v of vectors) expect(cosine(v, v)).toBeCloseTo(1, 5);
    expect(cosine(vectors[0]!, vectors[2]!)).toBeCloseTo(1, 5);
    expect(cosine(vectors[0]!, vectors[1]!)).toBeLessThan(0.5);
  });

  it("retries retryable failures with backoff and then succeeds", async () => {
    standIn.behaviour = { failNext: 2, failWith: 503 };
    const embedder = createOpenAiEmbedder({ baseUrl: standIn.baseUrl, model: "m", dimensions: 8, retryBaseMs: 5, maxRetries: 3 });
    const [v] = await embedder.embed(["refund"]);
    expect(v!.length).toBe(8);
    expect(standIn.requests.length).toBe(3);
  });

  it("gives up after its retries with a retryable error, and does not retry a 400", async () => {
    standIn.behaviour = { failWith: 500 };
    const embedder = createOpenAiEmbedder({
      baseUrl: standIn.baseUrl,
      model: "m",
      dimensions: 8,
      retryBaseMs: 5,
      maxRetries: 2,
      breakerOptions: { failureThreshold: 100 },
    });
    const err = await embeddingError(embedder.embed(["x"]));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/HTTP 500.*after 3 attempts/);
    expect(standIn.requests.length).toBe(3);
    standIn.requests.length = 0;
    standIn.behaviour = { failWith: 400 };
    const bad = await embeddingError(embedder.embed(["x"]));
    expect(bad.retryable).toBe(false);
    expect(standIn.requests.length).toBe(1);
  });

  it("times out a stalled request", async () => {
    standIn.behaviour = { delayMs: 2_000 };
    const embedder = createOpenAiEmbedder({ baseUrl: standIn.baseUrl, model: "m", dimensions: 8, timeoutMs: 100, maxRetries: 0 });
    const err = await embeddingError(embedder.embed(["x"]));
    expect(err.message).toMatch(/timed out after 100 ms/);
    expect(err.retryable).toBe(true);
  });

  it("refuses vectors of the wrong size instead of storing them", async () => {
    const embedder = createOpenAiEmbedder({
      baseUrl: standIn.baseUrl,
      model: "m",
      dimensions: 8,
      fetch: async (url, init) => {
        const res = await fetch(url, { ...init, body: JSON.stringify({ ...JSON.parse(String(init?.body)), dimensions: 4 }) });
        return res;
      },
    });
    const err = await embeddingError(embedder.embed(["x"]));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/4-dimensional/);
  });

  it("opens the circuit after repeated failures, fails fast while open, and closes after a good trial", async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ dependency: "embeddings", failureThreshold: 3, resetTimeoutMs: 10_000, now: () => now });
    const embedder = createOpenAiEmbedder({ baseUrl: standIn.baseUrl, model: "m", dimensions: 8, maxRetries: 0, breaker });
    standIn.behaviour = { failWith: 503 };
    for (let i = 0; i < 3; i++) await embeddingError(embedder.embed(["x"]));
    expect(breaker.state).toBe("open");
    const before = standIn.requests.length;
    const open = await embeddingError(embedder.embed(["x"]));
    expect(open.message).toMatch(/circuit open/);
    expect(standIn.requests.length).toBe(before);
    now += 10_000;
    expect(breaker.state).toBe("half_open");
    standIn.behaviour = {};
    await embedder.embed(["x"]);
    expect(breaker.state).toBe("closed");
  });
});
