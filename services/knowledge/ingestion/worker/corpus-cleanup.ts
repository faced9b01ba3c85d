import type { Logger } from "pino";
import { CorpusDeletedSchema } from "../../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { executeInTransaction } from "../../../kernel/commands/index.js";
import type { Database } from "../../../kernel/db/ports.js";
import type { EventHandler } from "../../../kernel/events/ports.js";
import { payloadOf } from "../../../kernel/events/protobuf-event.js";
import type { ConsumerSpec } from "../../../kernel/service/index.js";
import { dropDocumentAccess } from "../../retrieval/adapters/postgres-document-access.js";
import "../../retrieval/corpus-events.js";
import type { DocumentAggregate } from "../document-aggregate.js";
import { INGESTION_SCHEMA } from "../migrations.js";
import type { DocumentRepository } from "../ports.js";
import { WORKER_ACTOR } from "./record-outcome.js";

/** Durable consumer that removes the documents of deleted corpora. */
export const CORPUS_CLEANUP_CONSUMER = "ingestion-corpus-cleanup";

/** What the corpus clean-up works with. */
export interface CorpusCleanupDeps {
  aggregate: DocumentAggregate;
  documents: DocumentRepository;
  logger: Logger;
}

/**
 * Handles `retrieval.corpus_deleted`: a forced DeleteCorpus removed the corpus and its chunks
 * in the retrieval schema; this purges its documents, their stored content (one
 * DocumentDeleted each) and their access lists, in the consumer's transaction. Idempotent: a second delivery finds
 * nothing left.
 */
export function createCorpusCleanupHandler(deps: CorpusCleanupDeps): EventHandler {
  return async (event, tx) => {
    const deleted = payloadOf(CorpusDeletedSchema, event);
    const docs = await deps.documents.listByCorpus(tx, deleted.tenantId, deleted.corpusId);
    let purged = 0;
    for (const d of docs) {
      const result = await executeInTransaction(
        tx,
        deps.aggregate,
        { tenantId: d.tenantId, documentId: d.documentId },
        { type: "PurgeDocument" },
        {
          metadata: { tenantId: d.tenantId, actor: WORKER_ACTOR },
        },
      );
      purged += result.events.length > 0 ? 1 : 0;
      // The document's access list goes with it (a later document under the id starts afresh).
      await dropDocumentAccess(tx, { tenantId: d.tenantId, documentId: d.documentId });
    }
    if (purged > 0) deps.logger.info({ corpusId: deleted.corpusId, documents: purged }, "removed the documents of a deleted corpus");
  };
}

/** The corpus clean-up as a durable consumer (the kernel or the runtime subscribes it). */
export function corpusCleanupConsumer(deps: CorpusCleanupDeps & { db: Database; maxDeliver?: number }): ConsumerSpec {
  return {
    name: CORPUS_CLEANUP_CONSUMER,
    subject: "retrieval.corpus_deleted",
    handler: createCorpusCleanupHandler(deps),
    db: deps.db,
    schema: INGESTION_SCHEMA,
    ...(deps.maxDeliver !== undefined ? { maxDeliver: deps.maxDeliver } : {}),
  };
}
