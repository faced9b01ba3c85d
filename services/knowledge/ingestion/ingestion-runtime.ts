import type { Logger } from "pino";
import type { Database } from "../../kernel/db/ports.js";
import type { BackoffOptions, EventBus, Subscription } from "../../kernel/events/ports.js";
import { createPgChunkIndex } from "../retrieval/adapters/postgres-chunk-index.js";
import type { EmbeddingModels } from "../retrieval/embeddings/ports.js";
import { createPgContentStore } from "./adapters/postgres-content-store.js";
import { createPgDocumentRepository } from "./adapters/postgres-document-repository.js";
import { DocumentFeed } from "./document-feed.js";
import { IngestionHandler } from "./ingestion-handler.js";
import { startCorpusCleanup } from "./worker/corpus-cleanup.js";
import { startDeadLetterSweeper } from "./worker/dead-letter-sweeper.js";
import { INGESTION_CONSUMER, startIngestionWorker } from "./worker/ingestion-worker.js";

/** Options of {@link createIngestionRuntime}. */
export interface IngestionRuntimeOptions {
  db: Database;
  bus: EventBus;
  logger: Logger;
  clock: () => Date;
  models: EmbeddingModels;
  /** Chunks carry vectors (see vectorSearchEnabled). */
  vectors: boolean;
  /** Run the worker, the corpus clean-up and the sweeper in this process. Default true. */
  workers?: boolean;
  /** Deliveries before a job is dead-lettered. Default 5. */
  maxDeliver?: number;
  /** Documents in flight per process. Default 2. */
  concurrency?: number;
  /** Default 30 000 ms. */
  ackWaitMs?: number;
  /** Retry delays of failed jobs (bus default: 1 s doubling up to 5 min). */
  backoff?: BackoffOptions;
  /** Default 5 000 ms. */
  sweepIntervalMs?: number;
  /** Default 50 MiB. */
  maxUploadBytes?: number;
  /** WatchDocument's poll interval. Default 1 000 ms. */
  watchPollMs?: number;
  /** Worker consumer name. Default "ingestion-worker". */
  consumerName?: string;
}

/** The ingestion service's parts, wired. */
export interface IngestionRuntime {
  handler: IngestionHandler;
  feed: DocumentFeed;
  /** Starts the change feed and (unless disabled) the workers. Idempotent. */
  start(): Promise<void>;
  /** Stops workers, sweeper and feed (in-flight documents finish first). */
  stop(): Promise<void>;
}

/**
 * Wires the ingestion service from explicit options: the RPC handler over the Postgres
 * adapters, the in-process change feed, and the background parts (ingestion worker, corpus
 * clean-up consumer, dead-letter sweeper). `server.ts` feeds it the configuration; tests feed
 * it their own settings.
 */
export function createIngestionRuntime(o: IngestionRuntimeOptions): IngestionRuntime {
  const documents = createPgDocumentRepository();
  const contents = createPgContentStore();
  const chunkIndex = createPgChunkIndex({ vectors: o.vectors });
  const feed = new DocumentFeed(o.db, o.logger);
  const maxDeliver = o.maxDeliver ?? 5;
  const handler = new IngestionHandler({
    db: o.db,
    documents,
    contents,
    chunkIndex,
    deadLetters: o.bus.deadLetters,
    feed,
    clock: o.clock,
    logger: o.logger,
    maxUploadBytes: o.maxUploadBytes ?? 50 * 1024 * 1024,
    ...(o.watchPollMs !== undefined ? { watchPollMs: o.watchPollMs } : {}),
  });
  const subscriptions: Subscription[] = [];
  let sweeper: { stop(): Promise<void> } | undefined;
  let started: Promise<void> | undefined;
  return {
    handler,
    feed,
    start() {
      started ??= (async () => {
        await feed.start();
        if (o.workers === false) return;
        const consumerName = o.consumerName ?? INGESTION_CONSUMER;
        subscriptions.push(
          await startIngestionWorker({
            db: o.db,
            bus: o.bus,
            documents,
            contents,
            chunkIndex,
            models: o.models,
            feed,
            logger: o.logger.child({ component: "ingestion-worker" }),
            clock: o.clock,
            maxDeliver,
            consumerName,
            concurrency: o.concurrency ?? 2,
            ackWaitMs: o.ackWaitMs ?? 30_000,
            ...(o.backoff ? { backoff: o.backoff } : {}),
          }),
          await startCorpusCleanup({ bus: o.bus, db: o.db, documents, contents, logger: o.logger, maxDeliver }),
        );
        sweeper = startDeadLetterSweeper({
          db: o.db,
          documents,
          deadLetters: o.bus.deadLetters,
          clock: o.clock,
          logger: o.logger,
          consumerName,
          intervalMs: o.sweepIntervalMs ?? 5_000,
        });
      })();
      return started;
    },
    async stop() {
      await started?.catch(() => undefined);
      await sweeper?.stop();
      await Promise.allSettled(subscriptions.map((s) => s.stop()));
      subscriptions.length = 0;
      await feed.stop();
    },
  };
}
