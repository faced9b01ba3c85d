import type { Logger } from "pino";
import type { Database } from "../../kernel/db/ports.js";
import type { BackoffOptions, EventBus, Subscription } from "../../kernel/events/ports.js";
import type { FieldCipher } from "../../kernel/keyring/index.js";
import type { ConsumerSpec, PeriodicTask } from "../../kernel/service/index.js";
import { createPgChunkIndex } from "../retrieval/adapters/postgres-chunk-index.js";
import type { EmbeddingModels } from "../retrieval/embeddings/ports.js";
import { createPgContentStore } from "./adapters/postgres-content-store.js";
import { createPgDocumentRepository } from "./adapters/postgres-document-repository.js";
import { documentAggregate } from "./document-aggregate.js";
import { DocumentFeed } from "./document-feed.js";
import { IngestionHandler } from "./ingestion-handler.js";
import { corpusCleanupConsumer } from "./worker/corpus-cleanup.js";
import { deadLetterSweepTask } from "./worker/dead-letter-sweeper.js";
import { INGESTION_CONSUMER, ingestionWorkerConsumer } from "./worker/ingestion-worker.js";

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
  /** Seals document contents and chunk texts at rest ("documents" purpose); absent: in the clear. */
  cipher?: FieldCipher;
}

/** The ingestion role's parts, wired. */
export interface IngestionRuntime {
  handler: IngestionHandler;
  feed: DocumentFeed;
  /**
   * The durable consumers of the role: the ingestion worker and the corpus clean-up (none
   * with `workers: false`). The kernel subscribes them when the knowledge service is mounted.
   */
  consumers: readonly ConsumerSpec[];
  /** The periodic dead-letter sweep (none with `workers: false`). */
  tasks: readonly PeriodicTask[];
  /** Starts the change feed: the one part the kernel does not run (start/stop). Idempotent. */
  startFeed(): Promise<void>;
  /**
   * Runs the whole role without the kernel (test harnesses, benchmarks): the feed, then every
   * consumer subscribed, then the tasks. Idempotent.
   */
  start(): Promise<void>;
  /** Stops what {@link start} started (the tasks, then the consumers drain, then the feed). */
  stop(): Promise<void>;
}

/**
 * Wires the ingestion role from explicit options: the RPC handler over the Postgres adapters,
 * the document aggregate every writer shares, the in-process change feed, and the background
 * parts as declarations (ingestion worker and corpus clean-up consumers, dead-letter sweep
 * task). `knowledge-parts.ts` hands the declarations to the kernel; tests and benchmarks
 * run them through {@link IngestionRuntime.start}.
 */
export function createIngestionRuntime(o: IngestionRuntimeOptions): IngestionRuntime {
  const documents = createPgDocumentRepository();
  const contents = createPgContentStore(o.cipher);
  const chunkIndex = createPgChunkIndex({ vectors: o.vectors, ...(o.cipher ? { cipher: o.cipher } : {}) });
  const aggregate = documentAggregate({ documents, contents, chunkIndex });
  const feed = new DocumentFeed(o.db, o.logger);
  const maxDeliver = o.maxDeliver ?? 5;
  const consumerName = o.consumerName ?? INGESTION_CONSUMER;
  const handler = new IngestionHandler({
    db: o.db,
    aggregate,
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
  const workers = o.workers !== false;
  const consumers: ConsumerSpec[] = workers
    ? [
        ingestionWorkerConsumer({
          db: o.db,
          aggregate,
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
        corpusCleanupConsumer({ db: o.db, aggregate, documents, logger: o.logger, maxDeliver }),
      ]
    : [];
  const tasks: PeriodicTask[] = workers
    ? [
        deadLetterSweepTask({
          db: o.db,
          aggregate,
          documents,
          deadLetters: o.bus.deadLetters,
          clock: o.clock,
          logger: o.logger,
          consumerName,
          intervalMs: o.sweepIntervalMs ?? 5_000,
        }),
      ]
    : [];

  let feedStarted: Promise<void> | undefined;
  const startFeed = () => (feedStarted ??= feed.start());
  const subscriptions: Subscription[] = [];
  const loops: Array<{ stop(): Promise<void> }> = [];
  let started: Promise<void> | undefined;
  return {
    handler,
    feed,
    consumers,
    tasks,
    startFeed,
    start() {
      started ??= (async () => {
        await startFeed();
        for (const c of consumers) subscriptions.push(await o.bus.subscribe(c));
        for (const t of tasks) loops.push(runEvery(t, o.logger));
      })();
      return started;
    },
    async stop() {
      await started?.catch(() => undefined);
      await Promise.all(loops.splice(0).map((l) => l.stop()));
      await Promise.allSettled(subscriptions.splice(0).map((s) => s.stop()));
      await feed.stop();
    },
  };
}

/** Runs `task` every `intervalMs` (after the previous run ended) until stopped; failures are logged. */
function runEvery(task: PeriodicTask, logger: Logger): { stop(): Promise<void> } {
  let running = true;
  let current: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (!running) return;
    current = task
      .run()
      .catch((err: unknown) => logger.warn({ err, task: task.name }, `${task.name} failed`))
      .finally(() => {
        if (running) timer = setTimeout(tick, task.intervalMs);
      });
  };
  let timer = setTimeout(tick, task.intervalMs);
  timer.unref?.();
  return {
    async stop() {
      running = false;
      clearTimeout(timer);
      await current;
    },
  };
}
