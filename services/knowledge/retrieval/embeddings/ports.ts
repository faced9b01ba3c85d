/**
 * The embeddings port: text in, unit vectors out. Two adapters implement it: `hash`
 * (deterministic, offline, the default) and `openai` (any OpenAI-compatible `/v1/embeddings`
 * server). Ingestion workers embed chunks with it, Search embeds the query with it; both
 * resolve the embedder of a corpus's model through {@link EmbeddingModels}.
 */

/** One embedding model at one dimension count. */
export interface Embedder {
  /** Model name as recorded on the corpus and its chunks, e.g. "hash-256". */
  readonly model: string;
  /** Length of every vector it returns. */
  readonly dimensions: number;
  /**
   * Embeds `texts` (any number; adapters batch as they need) and returns one vector per text,
   * in order. Throws {@link EmbeddingError} when the model cannot answer.
   */
  embed(texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>;
}

/** Options of {@link Embedder.embed}. */
export interface EmbedOptions {
  /** Aborts the call (remote adapters stop retrying and waiting). */
  signal?: AbortSignal;
  /** Called after each batch with the number of texts embedded so far (progress). */
  onProgress?: (done: number) => void | Promise<void>;
}

/** Resolves a corpus's (model, dimensions) to an embedder. */
export interface EmbeddingModels {
  /** Default model of new corpora (NEXUS_EMBEDDING_MODEL). */
  readonly defaultModel: string;
  /** Default dimensions of a model when the corpus does not say. */
  defaultDimensions(model: string): number;
  /**
   * The embedder for a model at `dimensions`. Throws {@link EmbeddingError} (not retryable)
   * when the installation cannot serve that model, e.g. an OpenAI-compatible model without
   * NEXUS_EMBEDDINGS_URL.
   */
  embedder(model: string, dimensions: number): Embedder;
  /** Canonical model name for (model, dimensions): `hash-<dimensions>` for the hash family. */
  canonicalModel(model: string, dimensions: number): string;
  /** Whether the model can be served here (used by CreateCorpus/UpdateCorpus up front). */
  available(model: string): boolean;
}

/** Why an embedding call failed; `retryable` tells a worker whether another attempt may help. */
export class EmbeddingError extends Error {
  override readonly name = "EmbeddingError";
  /** Machine-readable reason recorded on failed documents. */
  readonly reason = "EMBEDDING_FAILED";

  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
