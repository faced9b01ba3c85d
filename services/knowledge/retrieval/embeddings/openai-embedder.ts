import {
  type BreakerPermit,
  CircuitBreaker,
  type CircuitBreakerOptions,
  retryPolicy,
  TimeoutError,
  withTimeout,
} from "../../../kernel/resilience/index.js";
import { type Embedder, EmbeddingError, type EmbedOptions } from "./ports.js";

/** Options of {@link createOpenAiEmbedder}. */
export interface OpenAiEmbedderOptions {
  /** API base URL including the version, e.g. "https://api.openai.com/v1"; requests go to `<baseUrl>/embeddings`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set. */
  apiKey?: string;
  /** Model name, e.g. "text-embedding-3-small". */
  model: string;
  /** Vector length; sent as `dimensions` and checked on every returned vector. */
  dimensions: number;
  /** Inputs per request. Default 64. */
  batchSize?: number;
  /** Per-request timeout. Default 30 000 ms. */
  timeoutMs?: number;
  /** Retries of one batch after a retryable failure (network, timeout, 408, 409, 429, 5xx). Default 3. */
  maxRetries?: number;
  /** First retry delay; doubles each retry (with jitter), capped at 10 s. `Retry-After` wins when longer. Default 500 ms. */
  retryBaseMs?: number;
  /** Shared breaker of this endpoint (one per base URL); default a new one with {@link breakerOptions}. */
  breaker?: CircuitBreaker;
  /** Options of the default breaker (dependency "embeddings"). */
  breakerOptions?: EmbeddingsBreakerOptions;
  /** fetch implementation (default the global one). */
  fetch?: typeof fetch;
}

/** Options of the embeddings server's circuit breaker (its dependency name is "embeddings"). */
export type EmbeddingsBreakerOptions = Omit<CircuitBreakerOptions, "dependency">;

/** The circuit breaker of one embeddings server. */
export function embeddingsBreaker(options: EmbeddingsBreakerOptions = {}): CircuitBreaker {
  return new CircuitBreaker({ dependency: "embeddings", ...options });
}

interface EmbeddingsResponse {
  data?: Array<{ index?: number; embedding?: unknown }>;
}

const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);
const MAX_RETRY_DELAY_MS = 10_000;

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function toUnit(values: readonly number[]): Float32Array {
  const v = Float32Array.from(values);
  let norm = 0;
  for (const x of v) norm += x * x;
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < v.length; i++) v[i]! *= inv;
  }
  return v;
}

/**
 * The `openai` embeddings adapter: any server speaking OpenAI's `POST /v1/embeddings`
 * (OpenAI, Azure-compatible gateways, vLLM, Ollama, LiteLLM…). Inputs go in batches of
 * `batchSize`; each request has a timeout; retryable failures are retried with exponential
 * backoff and jitter (honouring `Retry-After`); a circuit breaker stops calling a server that
 * keeps failing and lets one trial through after its cooldown. Vectors are checked for the
 * expected length and normalised to unit length.
 */
export function createOpenAiEmbedder(options: OpenAiEmbedderOptions): Embedder {
  const url = `${options.baseUrl.replace(/\/+$/, "")}/embeddings`;
  const batchSize = options.batchSize ?? 64;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxRetries = options.maxRetries ?? 3;
  const retryBaseMs = options.retryBaseMs ?? 500;
  const breaker = options.breaker ?? embeddingsBreaker(options.breakerOptions);
  const doFetch = options.fetch ?? fetch;
  const retries = retryPolicy({
    maxRetries,
    initialMs: retryBaseMs,
    maxMs: MAX_RETRY_DELAY_MS,
    retryWhen: (err) => err instanceof RetryableFailure,
    retryAfterMs: (err) => (err instanceof RetryableFailure ? err.retryAfterMs : undefined),
  });

  async function attempt(batch: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    try {
      return await withTimeout(timeoutMs, (deadline) => request(batch, deadline), signal);
    } catch (err) {
      if (err instanceof TimeoutError)
        throw new RetryableFailure(`embeddings request to ${url} timed out after ${timeoutMs} ms`, undefined, err);
      throw err;
    }
  }

  /** One request; `signal` aborts at the deadline or when the caller gives up. */
  async function request(batch: readonly string[], signal: AbortSignal): Promise<Float32Array[]> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    let res: Response;
    try {
      res = await doFetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify({ model: options.model, input: batch, dimensions: options.dimensions, encoding_format: "float" }),
        signal,
      });
    } catch (err) {
      // An abort (deadline or caller) is turned into the right error by attempt().
      if (signal.aborted) throw err;
      throw new RetryableFailure(`embeddings request to ${url} failed: ${(err as Error).message}`, undefined, err);
    }
    if (!res.ok) {
      const body = (await res.text().catch(() => "")).slice(0, 300);
      const message = `embeddings server answered HTTP ${res.status}${body ? `: ${body}` : ""}`;
      if (RETRYABLE_STATUS.has(res.status)) throw new RetryableFailure(message, retryAfterMs(res.headers.get("retry-after")));
      throw new EmbeddingError(message, false);
    }
    let json: EmbeddingsResponse;
    try {
      json = (await res.json()) as EmbeddingsResponse;
    } catch (err) {
      throw new RetryableFailure(`embeddings server sent a body that is not JSON`, undefined, err);
    }
    const data = Array.isArray(json.data) ? json.data : [];
    if (data.length !== batch.length) {
      throw new EmbeddingError(`embeddings server returned ${data.length} vectors for ${batch.length} inputs`, false);
    }
    const out: Float32Array[] = new Array(batch.length);
    data.forEach((d, i) => {
      const index = typeof d.index === "number" ? d.index : i;
      const e = d.embedding;
      if (!Array.isArray(e) || !e.every((x) => typeof x === "number")) {
        throw new EmbeddingError("embeddings server returned a vector that is not a list of numbers", false);
      }
      if (e.length !== options.dimensions) {
        throw new EmbeddingError(
          `embeddings server returned ${e.length}-dimensional vectors for model ${options.model}; the corpus expects ${options.dimensions}`,
          false,
        );
      }
      out[index] = toUnit(e as number[]);
    });
    return out;
  }

  /** One attempt behind the breaker: an open breaker fails at once (retryable, not retried here). */
  async function guardedAttempt(batch: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    let permit: BreakerPermit;
    try {
      permit = breaker.acquire();
    } catch (err) {
      const left = Math.ceil(breaker.retryInMs() / 1000);
      throw new EmbeddingError(`embeddings server ${url} is failing; circuit open for another ${left} s`, true, { cause: err });
    }
    try {
      const vectors = await attempt(batch, signal);
      permit.succeed();
      return vectors;
    } catch (err) {
      if (signal?.aborted) permit.release();
      else if (err instanceof RetryableFailure) permit.fail();
      // The server answered clearly (4xx, wrong shape): it is up, the request is wrong.
      else permit.succeed();
      throw err;
    }
  }

  async function embedBatch(batch: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    let attempts = 0;
    try {
      return await retries.execute(() => {
        attempts += 1;
        return guardedAttempt(batch, signal);
      }, signal);
    } catch (err) {
      if (err instanceof RetryableFailure) throw new EmbeddingError(`${err.message} (after ${attempts} attempts)`, true, { cause: err });
      throw err;
    }
  }

  return {
    model: options.model,
    dimensions: options.dimensions,
    async embed(texts: readonly string[], embedOptions: EmbedOptions = {}) {
      const out: Float32Array[] = [];
      for (let i = 0; i < texts.length; i += batchSize) {
        out.push(...(await embedBatch(texts.slice(i, i + batchSize), embedOptions.signal)));
        await embedOptions.onProgress?.(out.length);
      }
      return out;
    },
  };
}

/** A failure another attempt may fix. */
class RetryableFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(message, { cause });
  }
}
