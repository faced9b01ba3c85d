import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { createIngestionRuntime } from "./ingestion/ingestion-runtime.js";
import { ingestionRoutes } from "./ingestion/routes.js";
import { createPgCorpusRepository } from "./retrieval/adapters/postgres-corpus-repository.js";
import { createPgSearchIndex } from "./retrieval/adapters/postgres-search-index.js";
import { embeddingModelsFromConfig } from "./retrieval/embeddings/from-config.js";
import { RetrievalHandler } from "./retrieval/retrieval-handler.js";
import { retrievalRoutes } from "./retrieval/routes.js";
import { vectorSearchEnabled } from "./retrieval/vector-mode.js";

/**
 * Assembles the knowledge service for the roles this process hosts: the retrieval handler, and
 * with the ingestion role the ingestion handler, its change feed (a start/stop part) and the
 * background parts the kernel runs — the ingestion worker and the corpus clean-up as durable
 * consumers (every process hosting ingestion joins the shared worker consumer) and the
 * dead-letter sweep as a periodic task.
 */
export function createKnowledgeParts(ctx: ServiceContext): ServiceParts {
  const { config } = ctx;
  const vectors = vectorSearchEnabled(config, ctx.db);
  const models = embeddingModelsFromConfig(config);
  const retrieval = new RetrievalHandler({
    db: ctx.db,
    corpora: createPgCorpusRepository(),
    searchIndex: createPgSearchIndex({ vectors, efSearch: config.searchEfSearch }),
    models,
    vectors,
    clock: ctx.clock,
    logger: ctx.logger,
  });
  if (ctx.roles.has("retrieval")) {
    ctx.logger.info({ search: vectors ? "hybrid (pgvector + full-text)" : "lexical only (full-text)" }, "retrieval ready");
  }
  if (!ctx.roles.has("ingestion")) return { handlers: [retrievalRoutes(retrieval)] };
  const ingestion = createIngestionRuntime({
    db: ctx.db,
    bus: ctx.bus,
    logger: ctx.logger,
    clock: ctx.clock,
    models,
    vectors,
    maxDeliver: ctx.consumerDefaults?.maxDeliver ?? config.maxDeliver,
    concurrency: config.ingestConcurrency,
    ackWaitMs: config.ingestAckWaitMs,
    sweepIntervalMs: config.ingestSweepIntervalMs,
    maxUploadBytes: config.maxUploadBytes,
    ...(ctx.consumerDefaults?.backoff ? { backoff: ctx.consumerDefaults.backoff } : {}),
  });
  // The feed never fails (without LISTEN, watchers poll); readiness waits for it all the same.
  const feed = ingestion.startFeed();
  return {
    handlers: [ingestionRoutes(ingestion.handler), retrievalRoutes(retrieval)],
    consumers: ingestion.consumers,
    tasks: ingestion.tasks,
    async readiness() {
      await feed;
      return { ready: true };
    },
    shutdown: () => ingestion.feed.stop(),
  };
}
