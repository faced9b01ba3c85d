import { createHashEmbedder, hashModelDimensions, hashModelName, isHashModel } from "./hash-embedder.js";
import { createOpenAiEmbedder, type EmbeddingsBreakerOptions, embeddingsBreaker } from "./openai-embedder.js";
import { type Embedder, EmbeddingError, type EmbeddingModels } from "./ports.js";

/** Where OpenAI-compatible models are served. */
export interface RemoteEmbeddingsOptions {
  /** API base URL including the version, e.g. "https://api.openai.com/v1". */
  baseUrl: string;
  apiKey?: string;
  /** Inputs per request. Default 64. */
  batchSize?: number;
  /** Per-request timeout. Default 30 000 ms. */
  timeoutMs?: number;
  /** Retries per batch. Default 3. */
  maxRetries?: number;
  /** First retry delay. Default 500 ms. */
  retryBaseMs?: number;
  /** Options of the server's circuit breaker. */
  breaker?: EmbeddingsBreakerOptions;
}

/** Options of {@link createEmbeddingModels}. */
export interface EmbeddingModelsOptions {
  /** Default model of new corpora. Default "hash-256". */
  defaultModel?: string;
  /** Dimensions of the default model (default: hash-<n> → n, other models 1536). */
  defaultDimensions?: number;
  /** The OpenAI-compatible server; without it only hash models are available. */
  remote?: RemoteEmbeddingsOptions;
  fetch?: typeof fetch;
}

/**
 * The installation's embedding models: `hash-<n>` always (offline), any other model name on
 * the OpenAI-compatible server when one is configured. Embedders are cached per (model,
 * dimensions); all remote models share one circuit breaker, since they share one server.
 */
export function createEmbeddingModels(options: EmbeddingModelsOptions = {}): EmbeddingModels {
  const defaultModel = options.defaultModel ?? "hash-256";
  const remoteDefaultDims = 1536;
  const cache = new Map<string, Embedder>();
  const breaker = options.remote ? embeddingsBreaker(options.remote.breaker) : undefined;

  const models: EmbeddingModels = {
    defaultModel,
    defaultDimensions(model) {
      if (model === defaultModel && options.defaultDimensions !== undefined) return options.defaultDimensions;
      return isHashModel(model) ? hashModelDimensions(model) : remoteDefaultDims;
    },
    canonicalModel(model, dimensions) {
      return isHashModel(model) ? hashModelName(dimensions) : model;
    },
    available(model) {
      return isHashModel(model) || options.remote !== undefined;
    },
    embedder(model, dimensions) {
      const key = `${models.canonicalModel(model, dimensions)}@${dimensions}`;
      let embedder = cache.get(key);
      if (embedder) return embedder;
      if (isHashModel(model)) {
        embedder = createHashEmbedder(dimensions);
      } else if (options.remote) {
        const r = options.remote;
        embedder = createOpenAiEmbedder({
          baseUrl: r.baseUrl,
          ...(r.apiKey ? { apiKey: r.apiKey } : {}),
          model,
          dimensions,
          ...(r.batchSize !== undefined ? { batchSize: r.batchSize } : {}),
          ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
          ...(r.maxRetries !== undefined ? { maxRetries: r.maxRetries } : {}),
          ...(r.retryBaseMs !== undefined ? { retryBaseMs: r.retryBaseMs } : {}),
          ...(breaker ? { breaker } : {}),
          ...(options.fetch ? { fetch: options.fetch } : {}),
        });
      } else {
        throw new EmbeddingError(
          `embedding model "${model}" needs an OpenAI-compatible server: set NEXUS_EMBEDDINGS_URL (hash-<dimensions> models work offline)`,
          false,
        );
      }
      cache.set(key, embedder);
      return embedder;
    },
  };
  return models;
}
