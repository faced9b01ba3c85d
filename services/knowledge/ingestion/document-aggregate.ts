import type { Aggregate } from "../../kernel/commands/index.js";
import { domainError } from "../../kernel/errors.js";
import { streamVersion } from "../../kernel/events/event-store.js";
import type { ChunkIndex } from "../retrieval/ports.js";
import { type DocumentCommand, type DocumentEvent, type DocumentState, decide, evolve } from "./document.js";
import { documentEventToNew, documentStreamId } from "./document-events.js";
import type { ContentStore, DocumentKey, DocumentRepository } from "./ports.js";

/**
 * The document aggregate as the kernel's command helper drives it. Its state is
 * `DocumentState | undefined`: a deleted document has none, and saving "none" deletes the row.
 */
export type DocumentAggregate = Aggregate<DocumentState | undefined, DocumentEvent, DocumentCommand, DocumentKey>;

/** The stores a document's state and its consequences live in. */
export interface DocumentStores {
  documents: DocumentRepository;
  contents: ContentStore;
  chunkIndex: ChunkIndex;
}

/**
 * The document aggregate over its stores. `load` locks the document's row; `save` writes the
 * row and what it carries with it in the same transaction — the corpus's document count (a
 * new or deleted document), the chunks of a deleted document, and the stored content a
 * document no longer refers to. Every writer of a document (API, worker, sweeper, corpus
 * clean-up) goes through it, so they all keep one lock order: document → chunks → corpus
 * counters → content → event log.
 *
 * Refusals become domain errors naming the document; "unchanged" (same content ingested
 * again) and "stale" (a worker's outcome for a version that is no longer current) record
 * nothing.
 */
export function documentAggregate(stores: DocumentStores): DocumentAggregate {
  const { documents, contents, chunkIndex } = stores;
  return {
    streamId: (key) => documentStreamId(key.tenantId, key.documentId),
    async load(tx, key) {
      const state = await documents.get(tx, key, "update");
      // The stream outlives its row (a deleted id can be ingested again and continues it), so
      // its version is the event store's, read after the row lock that orders its writers.
      return { state, version: await streamVersion(tx, documentStreamId(key.tenantId, key.documentId)) };
    },
    decide(command, state, key) {
      const decision = decide(command, state);
      switch (decision.kind) {
        case "accepted":
          return decision.events;
        case "unchanged":
        case "stale":
          return [];
        case "rejected":
          throw domainError(decision.reason, decision.message, { document_id: key.documentId, ...decision.metadata });
        default: {
          const _exhaustive: never = decision;
          return _exhaustive;
        }
      }
    },
    evolve: (state, event, key) => evolve(state, event, key),
    async save(tx, key, state, _expectedVersion, _version, before) {
      if (!state) {
        if (!before) return;
        await documents.delete(tx, key);
        await chunkIndex.deleteDocumentChunks(tx, key.tenantId, before.corpusId, key.documentId);
        await chunkIndex.adjustDocumentCount(tx, key.tenantId, before.corpusId, -1);
        await contents.release(tx, key.tenantId, before.contentSha256);
        return;
      }
      if (!before) {
        await documents.insert(tx, state);
        await chunkIndex.adjustDocumentCount(tx, key.tenantId, state.corpusId, 1);
        return;
      }
      await documents.update(tx, state);
      if (before.contentSha256 !== state.contentSha256) await contents.release(tx, key.tenantId, before.contentSha256);
    },
    toEvent: (event, state, key) => documentEventToNew(key.tenantId, key.documentId, event, state),
  };
}
