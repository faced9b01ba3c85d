import type { Logger } from "pino";
import { DocumentQueuedSchema } from "../../../../gen/nexus/events/v1/ingestion_events_pb.js";
import type { Database, Queryable, Tx } from "../../../kernel/db/ports.js";
import type { BackoffOptions, DeliveredEvent, EventHandler } from "../../../kernel/events/ports.js";
import { payloadOf } from "../../../kernel/events/protobuf-event.js";
import type { ConsumerSpec } from "../../../kernel/service/index.js";
import { EmbeddingError, type EmbeddingModels } from "../../retrieval/embeddings/ports.js";
import type { ChunkIndex, ChunkRecord } from "../../retrieval/ports.js";
import { chunkText, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE } from "../chunking/chunker.js";
import type { DocumentAggregate } from "../document-aggregate.js";
import type { DocumentFeed } from "../document-feed.js";
import { INGESTION_SCHEMA } from "../migrations.js";
import { DocumentError } from "../parsers/document-error.js";
import { extractText } from "../parsers/extract-text.js";
import type { SupportedMediaType } from "../parsers/media-types.js";
import type { ContentStore, DocumentKey, DocumentRepository } from "../ports.js";
import { recordOutcome } from "./record-outcome.js";

/** Durable consumer name of the ingestion workers (all replicas share it: work is distributed). */
export const INGESTION_CONSUMER = "ingestion-worker";

/** Ports and settings of the ingestion pipeline. */
export interface IngestionPipeline {
  db: Database;
  /** Records the outcome (the kernel's command helper, in the job's transaction). */
  aggregate: DocumentAggregate;
  documents: DocumentRepository;
  contents: ContentStore;
  chunkIndex: ChunkIndex;
  models: EmbeddingModels;
  feed: DocumentFeed;
  logger: Logger;
  clock: () => Date;
  /** Deliveries before the bus dead-letters a job (NEXUS_MAX_DELIVER). */
  maxDeliver: number;
}

/** A failure another attempt may fix (embedding server down, database hiccup). */
class TransientFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${reason}: ${message}`, options);
  }
}

/** A failure no attempt will fix (corrupt file, rejected model): the document fails at once. */
class PermanentFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function classify(err: unknown): TransientFailure | PermanentFailure {
  if (err instanceof PermanentFailure || err instanceof TransientFailure) return err;
  if (err instanceof DocumentError) return new PermanentFailure(err.reason, err.message);
  if (err instanceof EmbeddingError) {
    return err.retryable ? new TransientFailure(err.reason, err.message, { cause: err }) : new PermanentFailure(err.reason, err.message);
  }
  return new TransientFailure("INGESTION_FAILED", err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * Progress reporting: in-process always; to the database (throttled to one write per 250 ms)
 * when it has spare connections. Those writes are hints for watchers, so they commit without
 * waiting for the WAL flush (synchronous_commit off) and cost the worker almost nothing.
 */
function progressReporter(p: IngestionPipeline, key: DocumentKey, version: bigint, side: Database | undefined) {
  let lastWrite = 0;
  return async (done: number, total: number, force = false): Promise<void> => {
    p.feed.setProgress(key, { version, done, total });
    if (!side) return;
    const now = Date.now();
    if (!force && now - lastWrite < 250) return;
    lastWrite = now;
    await relaxed(side, (q) => p.documents.reportProgress(q, key, version, done, total)).catch((err: unknown) => {
      p.logger.debug({ err }, "progress write failed");
    });
  };
}

/** Runs a bookkeeping write in its own transaction that does not wait for the WAL flush. */
function relaxed<T>(db: Database, fn: (q: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.exec("SET LOCAL synchronous_commit TO OFF");
    return fn(tx);
  });
}

/**
 * The handler of `ingestion.document_queued`: extract → chunk → embed → replace the
 * document's chunks by this version and mark it SUCCEEDED, all in the consumer's transaction,
 * so a worker killed at any point leaves either nothing or the whole version. The bus
 * redelivers an unacknowledged job (to any worker); a redelivery of a finished version does
 * nothing. PROCESSING, attempts and progress are written outside that transaction where the
 * database has spare connections (PostgreSQL), so other processes can watch; PGlite shows
 * progress through the in-process feed instead.
 *
 * Failures: unreadable content and rejected requests fail the document at once (no retry);
 * anything else is retried with backoff by the bus, and the last attempt's failure marks the
 * document FAILED and dead-lettered (on PGlite, and when a worker crashes on its last
 * attempt, the dead-letter sweeper does that).
 */
export function createIngestionHandler(p: IngestionPipeline): EventHandler {
  return async (event: DeliveredEvent, tx: Tx): Promise<void> => {
    const job = payloadOf(DocumentQueuedSchema, event);
    const key: DocumentKey = { tenantId: job.tenantId, documentId: job.documentId };
    const version = job.version;
    const side: Database | undefined = p.db.dialect === "postgres" ? p.db : undefined;
    const doc = await p.documents.get(tx, key);
    if (!doc || doc.version !== version || doc.status === "succeeded") {
      p.logger.debug({ documentId: key.documentId }, "job is stale (document deleted, superseded or done); skipping");
      return;
    }
    // Attempts are counted in the database where the start of an attempt can be committed
    // (JetStream's delivery count does not reliably count deliveries to a worker that died);
    // on PGlite the bus's count is exact, since a crash there takes the whole bus down too.
    let attempt = doc.status === "failed" ? event.deliveryCount : Math.max(event.deliveryCount, doc.attempts + 1);
    if (side) {
      const counted = await relaxed(side, (q) => p.documents.markProcessing(q, key, version));
      if (counted === undefined) return;
      attempt = counted;
    }
    const lastDelivery = event.deliveryCount >= p.maxDeliver;
    const log = p.logger.child({ documentId: key.documentId, tenantId: key.tenantId, version: String(version), attempt });
    const progress = progressReporter(p, key, version, side);
    p.feed.setProgress(key, { version, done: 0, total: 0 });
    let savepoint = false;
    try {
      if (attempt > p.maxDeliver) {
        // Started more often than allowed and never finished: the workers died on it (a kill,
        // an out-of-memory). Fail fast so the bus dead-letters it instead of feeding it to the
        // next worker; the bus alone may not notice, since a dead worker's deliveries are not
        // always counted.
        throw new TransientFailure(
          "INGESTION_ABANDONED",
          `processing started ${attempt - 1} times without finishing (the worker stopped each time); dead-lettering it`,
        );
      }
      const bytes = await p.contents.get(tx, key.tenantId, job.contentSha256);
      if (!bytes) throw new PermanentFailure("DOCUMENT_UNREADABLE", "the document's stored content is missing; upload it again");
      const text = await extractText(job.mediaType as SupportedMediaType, bytes);
      const chunks = chunkText(text, {
        size: job.chunking?.chunkSize ?? DEFAULT_CHUNK_SIZE,
        overlap: job.chunking?.chunkOverlap ?? DEFAULT_CHUNK_OVERLAP,
      });
      await progress(0, chunks.length, true);
      const corpus = await p.chunkIndex.lookupCorpusSettings(tx, key.tenantId, job.corpusId);
      if (!corpus) {
        log.info("the corpus is gone; the corpus clean-up removes the document");
        return;
      }
      const records: ChunkRecord[] = chunks.map((c) => ({ ordinal: c.ordinal, charStart: c.charStart, charEnd: c.charEnd, text: c.text }));
      if (p.chunkIndex.vectors) {
        const embedder = p.models.embedder(corpus.embeddingModel, corpus.embeddingDimensions);
        const vectors = await embedder.embed(
          chunks.map((c) => c.text),
          { onProgress: (done) => progress(done, chunks.length) },
        );
        vectors.forEach((v, i) => (records[i]!.embedding = v));
      }

      // Everything below commits with the job's acknowledgement, or not at all.
      await tx.exec("SAVEPOINT ingest_write");
      savepoint = true;
      const locked = await p.chunkIndex.lookupCorpus(tx, key.tenantId, job.corpusId);
      if (!locked) {
        await tx.exec("ROLLBACK TO SAVEPOINT ingest_write");
        return;
      }
      if (
        p.chunkIndex.vectors &&
        (locked.embeddingModel !== corpus.embeddingModel || locked.embeddingDimensions !== corpus.embeddingDimensions)
      ) {
        throw new TransientFailure(
          "INGESTION_FAILED",
          "the corpus's embedding settings changed while the document was embedded; embedding again",
        );
      }
      await p.chunkIndex.replaceChunks(tx, {
        tenantId: key.tenantId,
        corpusId: job.corpusId,
        documentId: key.documentId,
        version,
        filename: doc.filename,
        metadata: doc.metadata,
        ...(p.chunkIndex.vectors ? { embeddingModel: corpus.embeddingModel, dimensions: corpus.embeddingDimensions } : {}),
        chunks: records,
        ...(p.chunkIndex.vectors ? {} : { onBatch: (stored: number) => progress(stored, records.length) }),
      });
      const done = await recordOutcome(tx, p.aggregate, key, {
        type: "CompleteIngestion",
        version,
        chunkCount: records.length,
        attempts: attempt,
        at: p.clock(),
      });
      if (!done) {
        // Superseded or deleted meanwhile: keep the chunks of the version that is current.
        await tx.exec("ROLLBACK TO SAVEPOINT ingest_write");
        log.info("version superseded while processing; results discarded");
        return;
      }
      log.info({ chunks: records.length }, "document ingested");
    } catch (err) {
      if (savepoint) await tx.exec("ROLLBACK TO SAVEPOINT ingest_write").catch(() => undefined);
      const failure = classify(err);
      if (failure instanceof PermanentFailure) {
        log.warn({ reason: failure.reason, error: failure.message }, "document failed");
        await recordOutcome(tx, p.aggregate, key, {
          type: "FailIngestion",
          version,
          reason: failure.reason,
          message: failure.message,
          attempts: attempt,
          deadLettered: false,
          at: p.clock(),
        });
        return;
      }
      log.warn({ err: failure.cause ?? failure, reason: failure.reason }, "ingestion attempt failed");
      if (side) {
        // The job's transaction rolls back with the throw below; record the outcome beside it.
        if (lastDelivery) {
          await p.db
            .transaction((other) =>
              recordOutcome(other, p.aggregate, key, {
                type: "FailIngestion",
                version,
                reason: failure.reason,
                message: failure.message.replace(`${failure.reason}: `, ""),
                attempts: attempt,
                deadLettered: true,
                at: p.clock(),
              }),
            )
            .catch((e: unknown) => log.warn({ err: e }, "could not mark the document dead-lettered; the sweeper will"));
        } else {
          await relaxed(side, (q) => p.documents.markRetrying(q, key, version, attempt)).catch(() => undefined);
        }
      }
      throw failure;
    } finally {
      p.feed.setProgress(key, undefined);
    }
  };
}

/** Options of {@link ingestionWorkerConsumer}. */
export interface IngestionWorkerOptions extends IngestionPipeline {
  /** Durable consumer name. Default {@link INGESTION_CONSUMER}. */
  consumerName?: string;
  /** Documents in flight per process (NEXUS_INGEST_CONCURRENCY). Default 2. */
  concurrency?: number;
  /** How long the bus waits for a silent worker before redelivering (NEXUS_INGEST_ACK_WAIT_MS). Default 30 000. */
  ackWaitMs?: number;
  backoff?: BackoffOptions;
}

/**
 * The ingestion worker as a durable consumer: every process hosting the ingestion role
 * subscribes it under the same name, so adding replicas adds workers sharing the jobs.
 */
export function ingestionWorkerConsumer(options: IngestionWorkerOptions): ConsumerSpec {
  return {
    name: options.consumerName ?? INGESTION_CONSUMER,
    subject: "ingestion.document_queued",
    handler: createIngestionHandler(options),
    db: options.db,
    schema: INGESTION_SCHEMA,
    concurrency: options.concurrency ?? 2,
    maxDeliver: options.maxDeliver,
    ackWaitMs: options.ackWaitMs ?? 30_000,
    ...(options.backoff ? { backoff: options.backoff } : {}),
  };
}
