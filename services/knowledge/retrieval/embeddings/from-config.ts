import type { NexusConfig } from "../../../kernel/config.js";
import { createEmbeddingModels } from "./embedding-models.js";
import type { EmbeddingModels } from "./ports.js";

/** The installation's embedding models from NEXUS_EMBEDDING_* and NEXUS_EMBEDDINGS_* variables. */
export function embeddingModelsFromConfig(config: NexusConfig): EmbeddingModels {
  return createEmbeddingModels({
    defaultModel: config.embeddingModel,
    ...(config.embeddingDimensions !== undefined ? { defaultDimensions: config.embeddingDimensions } : {}),
    ...(config.embeddingsUrl
      ? {
          remote: {
            baseUrl: config.embeddingsUrl,
            ...(config.embeddingsApiKey ? { apiKey: config.embeddingsApiKey } : {}),
            batchSize: config.embeddingsBatchSize,
            timeoutMs: config.embeddingsTimeoutMs,
          },
        }
      : {}),
  });
}
