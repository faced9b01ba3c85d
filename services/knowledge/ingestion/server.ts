import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import type { Database } from "../../kernel/db/ports.js";
import type { ServiceModule } from "../../kernel/server/service-module.js";
import { embeddingModelsFromConfig } from "../retrieval/embeddings/from-config.js";
import { vectorSearchEnabled } from "../retrieval/vector-mode.js";
import { defineService } from "../../runtime/define-service.js";
import type { ServiceDeps } from "../../runtime/service-deps.js";
import { createIngestionRuntime } from "./ingestion-runtime.js";
import { migrateIngestion } from "./migrations.js";

/**
 * The ingestion service (`nexus.ingestion.v1.IngestionService`) and, in the same process, an
 * ingestion worker: every process that hosts ingestion joins the shared durable consumer, so
 * adding replicas adds workers. Also runs the corpus clean-up consumer and the dead-letter
 * sweeper. Fails at start-up on a PostgreSQL without pgvector unless NEXUS_LEXICAL_ONLY=true.
 */
export function build(deps: ServiceDeps): ServiceModule {
  const { config } = deps;
  const runtime = createIngestionRuntime({
    db: deps.db,
    bus: deps.bus,
    logger: deps.logger,
    clock: deps.clock,
    models: embeddingModelsFromConfig(config),
    vectors: vectorSearchEnabled(config, deps.db),
    maxDeliver: config.maxDeliver,
    concurrency: config.ingestConcurrency,
    ackWaitMs: config.ingestAckWaitMs,
    sweepIntervalMs: config.ingestSweepIntervalMs,
    maxUploadBytes: config.maxUploadBytes,
  });
  const started = runtime.start();
  started.catch((err: unknown) => deps.logger.error({ err }, "ingestion workers failed to start"));
  return defineService(IngestionService, runtime.handler, {
    async readiness() {
      try {
        await started;
        return { ready: true };
      } catch (err) {
        return { ready: false, reason: `ingestion workers did not start: ${(err as Error).message}` };
      }
    },
    shutdown: () => runtime.stop(),
  });
}

/** Applies the ingestion schema's migrations (and retrieval's, whose chunk index it writes). */
export async function migrate(db: Database): Promise<void> {
  await migrateIngestion(db);
}
