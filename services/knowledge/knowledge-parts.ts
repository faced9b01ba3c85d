import { retentionTask, subjectRequestTask } from "../kernel/governance/index.js";
import { createFieldCipher, reencryptTask, type SealedField } from "../kernel/keyring/index.js";
import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { createPgContentStore } from "./ingestion/adapters/postgres-content-store.js";
import { documentRetention } from "./ingestion/document-retention.js";
import { createIngestionRuntime } from "./ingestion/ingestion-runtime.js";
import { ingestionRoutes } from "./ingestion/routes.js";
import { ingestionSubjectContributor } from "./ingestion/subject-data.js";
import { startAccessCacheInvalidation } from "./retrieval/access-cache.js";
import { createPgCorpusRepository } from "./retrieval/adapters/postgres-corpus-repository.js";
import { accessCache } from "./retrieval/adapters/postgres-policies.js";
import { createPgSearchIndex } from "./retrieval/adapters/postgres-search-index.js";
import { embeddingModelsFromConfig } from "./retrieval/embeddings/from-config.js";
import { RetrievalHandler } from "./retrieval/retrieval-handler.js";
import { retrievalRoutes } from "./retrieval/routes.js";
import { vectorSearchEnabled } from "./retrieval/vector-mode.js";

/** The keyring purpose of document contents and chunk texts. */
export const DOCUMENTS_PURPOSE = "documents";

/** What the knowledge service seals, for the re-encryption job after a key rotation. */
export const KNOWLEDGE_SEALED_FIELDS: readonly SealedField[] = [
  {
    name: "ingestion.contents.bytes",
    purpose: DOCUMENTS_PURPOSE,
    table: "ingestion.contents",
    key: ["sha256"],
    column: "bytes",
    kind: "bytes",
  },
  {
    name: "retrieval.chunks.text",
    purpose: DOCUMENTS_PURPOSE,
    table: "retrieval.chunks",
    key: ["document_id", "ordinal"],
    column: "text",
    kind: "text",
  },
];

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
  // Document contents and chunk texts are sealed at rest (docs/security.md); the full-text
  // vectors and embeddings stay searchable.
  const cipher = createFieldCipher(ctx.keyring, DOCUMENTS_PURPOSE, config.encryptionAtRest);
  const retrieval = new RetrievalHandler({
    db: ctx.db,
    corpora: createPgCorpusRepository(),
    searchIndex: createPgSearchIndex({ vectors, efSearch: config.searchEfSearch, cipher }),
    models,
    vectors,
    clock: ctx.clock,
    logger: ctx.logger,
  });
  if (ctx.roles.has("retrieval")) {
    ctx.logger.info({ search: vectors ? "hybrid (pgvector + full-text)" : "lexical only (full-text)" }, "retrieval ready");
  }
  // Tenants' policies, label rules and access settings are cached per process, dropped by the
  // retrieval events every process observes (retrieval/access-cache.ts).
  const accessFeed = startAccessCacheInvalidation({
    bus: ctx.bus,
    cache: accessCache,
    logger: ctx.logger.child({ component: "access-cache" }),
  });
  accessFeed.catch((err: unknown) =>
    ctx.logger.warn({ err }, "retrieval event feed could not start: tenants' policies are read for every query"),
  );
  const stopAccessFeed = async () => {
    await (await accessFeed.catch(() => undefined))?.stop();
  };
  if (!ctx.roles.has("ingestion")) {
    return {
      handlers: [retrievalRoutes(retrieval)],
      async readiness() {
        await accessFeed.catch(() => undefined);
        return { ready: true };
      },
      shutdown: stopAccessFeed,
    };
  }
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
    cipher,
    ...(ctx.consumerDefaults?.backoff ? { backoff: ctx.consumerDefaults.backoff } : {}),
  });
  // The feed never fails (without LISTEN, watchers poll); readiness waits for it all the same.
  const feed = ingestion.startFeed();
  return {
    handlers: [ingestionRoutes(ingestion.handler), retrievalRoutes(retrieval)],
    consumers: ingestion.consumers,
    // After a rotation of a tenant's "documents" key, ingestion processes re-encrypt its values.
    tasks: [
      ...ingestion.tasks,
      reencryptTask({
        db: ctx.db,
        keyring: ctx.keyring,
        fields: KNOWLEDGE_SEALED_FIELDS,
        mode: config.encryptionAtRest,
        logger: ctx.logger,
      }),
      // The tenants' "documents" retention policies (docs/governance.md#retention).
      retentionTask({
        db: ctx.db,
        targets: [documentRetention(ingestion.handler)],
        intervalMs: config.retentionIntervalMs,
        logger: ctx.logger,
      }),
      // The "documents" part of data-subject requests (docs/governance.md#data-subject-requests).
      subjectRequestTask({
        db: ctx.db,
        keyring: ctx.keyring,
        contributor: ingestionSubjectContributor({ handler: ingestion.handler, contents: createPgContentStore(cipher) }),
        intervalMs: config.subjectRequestIntervalMs,
        logger: ctx.logger,
      }),
    ],
    async readiness() {
      await feed;
      await accessFeed.catch(() => undefined);
      return { ready: true };
    },
    async shutdown() {
      await ingestion.feed.stop();
      await stopAccessFeed();
    },
  };
}
