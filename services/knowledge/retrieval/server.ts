import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { Database } from "../../kernel/db/ports.js";
import type { ServiceModule } from "../../kernel/server/service-module.js";
import { defineService } from "../../runtime/define-service.js";
import type { ServiceDeps } from "../../runtime/service-deps.js";
import { createPgCorpusRepository } from "./adapters/postgres-corpus-repository.js";
import { createPgSearchIndex } from "./adapters/postgres-search-index.js";
import { embeddingModelsFromConfig } from "./embeddings/from-config.js";
import { migrateRetrieval } from "./migrations.js";
import { RetrievalHandler } from "./retrieval-handler.js";
import { vectorSearchEnabled } from "./vector-mode.js";

/**
 * The retrieval service (`nexus.retrieval.v1.RetrievalService`): corpora and hybrid search.
 * Fails at start-up on a PostgreSQL without pgvector unless NEXUS_LEXICAL_ONLY=true.
 */
export function build(deps: ServiceDeps): ServiceModule {
  const vectors = vectorSearchEnabled(deps.config, deps.db);
  const handler = new RetrievalHandler({
    db: deps.db,
    corpora: createPgCorpusRepository(),
    searchIndex: createPgSearchIndex({ vectors }),
    models: embeddingModelsFromConfig(deps.config),
    vectors,
    clock: deps.clock,
    logger: deps.logger,
  });
  deps.logger.info({ search: vectors ? "hybrid (pgvector + full-text)" : "lexical only (full-text)" }, "retrieval ready");
  return defineService(RetrievalService, handler);
}

/** Applies the retrieval schema's migrations. */
export async function migrate(db: Database): Promise<void> {
  await migrateRetrieval(db);
}
