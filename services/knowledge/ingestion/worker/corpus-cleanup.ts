import type { Logger } from "pino";
import { CorpusDeletedSchema } from "../../../../gen/nexus/events/v1/retrieval_events_pb.js";
import type { Database } from "../../../kernel/db/ports.js";
import { appendToStream } from "../../../kernel/events/event-store.js";
import { payloadOf } from "../../../kernel/events/protobuf-event.js";
import type { EventBus, EventHandler, Subscription } from "../../../kernel/events/ports.js";
import "../../retrieval/corpus-events.js";
import { documentEventToNew, documentStreamId } from "../document-events.js";
import { INGESTION_SCHEMA } from "../migrations.js";
import type { ContentStore, DocumentRepository } from "../ports.js";
import { WORKER_ACTOR } from "./record-outcome.js";

/** Durable consumer that removes the documents of deleted corpora. */
export const CORPUS_CLEANUP_CONSUMER = "ingestion-corpus-cleanup";

/**
 * Handles `retrieval.corpus_deleted`: a forced DeleteCorpus removed the corpus and its chunks
 * in the retrieval schema; this removes its documents and their stored content (one
 * DocumentDeleted each). Idempotent: a second delivery finds nothing left.
 */
export function createCorpusCleanupHandler(deps: { documents: DocumentRepository; contents: ContentStore; logger: Logger }): EventHandler {
  return async (event, tx) => {
    const deleted = payloadOf(CorpusDeletedSchema, event);
    const docs = await deps.documents.listByCorpus(tx, deleted.tenantId, deleted.corpusId);
    for (const d of docs) {
      await deps.documents.delete(tx, d);
      await deps.contents.release(tx, d.tenantId, d.contentSha256);
      await appendToStream(
        tx,
        documentStreamId(d.tenantId, d.documentId),
        "any",
        [documentEventToNew(d.tenantId, d.documentId, { type: "DocumentDeleted", version: d.version }, d)],
        { metadata: { tenantId: d.tenantId, actor: WORKER_ACTOR } },
      );
    }
    if (docs.length > 0) deps.logger.info({ corpusId: deleted.corpusId, documents: docs.length }, "removed the documents of a deleted corpus");
  };
}

/** Subscribes the corpus clean-up consumer. */
export function startCorpusCleanup(options: {
  bus: EventBus;
  db: Database;
  documents: DocumentRepository;
  contents: ContentStore;
  logger: Logger;
  maxDeliver?: number;
}): Promise<Subscription> {
  return options.bus.subscribe({
    name: CORPUS_CLEANUP_CONSUMER,
    subject: "retrieval.corpus_deleted",
    handler: createCorpusCleanupHandler(options),
    db: options.db,
    schema: INGESTION_SCHEMA,
    ...(options.maxDeliver !== undefined ? { maxDeliver: options.maxDeliver } : {}),
  });
}
