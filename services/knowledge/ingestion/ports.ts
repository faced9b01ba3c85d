import type { Queryable, Tx } from "../../kernel/db/ports.js";
import type { AccessFilter } from "../retrieval/adapters/postgres-document-access.js";
import type { DocumentState, DocumentStatusName } from "./document.js";

/** A document's identity. */
export interface DocumentKey {
  tenantId: string;
  documentId: string;
}

/** Filters and position of a ListDocuments page. */
export interface DocumentPage {
  corpusId?: string;
  statuses?: readonly DocumentStatusName[];
  /** Only documents older than this position (newest first). */
  beforeSeq?: bigint;
  limit: number;
  /** Only documents this filter's reader may read (document access and policies, docs/identity.md). */
  access?: AccessFilter;
}

/** Documents as stored (`ingestion.documents`). */
export interface DocumentRepository {
  get(q: Queryable, key: DocumentKey, lock?: "update"): Promise<DocumentState | undefined>;
  list(q: Queryable, tenantId: string, page: DocumentPage): Promise<Array<{ seq: bigint; document: DocumentState }>>;
  insert(tx: Tx, document: DocumentState): Promise<void>;
  update(tx: Tx, document: DocumentState): Promise<void>;
  delete(tx: Tx, key: DocumentKey): Promise<void>;
  /**
   * A worker starts (or restarts) a version: PROCESSING, one more attempt, progress reset.
   * Only while that version is current and not finished. Returns the attempt number, or
   * undefined when nothing changed (the version is stale). Counting here, committed before
   * the work starts, survives a worker that is killed mid-document.
   */
  markProcessing(q: Queryable, key: DocumentKey, version: bigint): Promise<number | undefined>;
  /** Chunk progress of the version being processed. */
  reportProgress(q: Queryable, key: DocumentKey, version: bigint, done: number, total: number): Promise<void>;
  /** A transient failure: back to QUEUED (a retry is scheduled) with the attempt count. */
  markRetrying(q: Queryable, key: DocumentKey, version: bigint, attempt: number): Promise<void>;
  /** Documents QUEUED or PROCESSING that have not changed since `before` (sweeper candidates). */
  listPending(q: Queryable, before: Date, limit: number): Promise<Array<DocumentKey & { version: bigint }>>;
  /** Every document of a corpus (for a forced corpus delete). */
  listByCorpus(q: Queryable, tenantId: string, corpusId: string): Promise<DocumentState[]>;
}

/** Original content of documents, by tenant and SHA-256 (`ingestion.contents`). */
export interface ContentStore {
  /** Stores the bytes unless the tenant already has this content. */
  put(tx: Tx, tenantId: string, sha256: string, bytes: Uint8Array): Promise<void>;
  get(q: Queryable, tenantId: string, sha256: string): Promise<Uint8Array | undefined>;
  /** Deletes the content when no document of the tenant refers to it any more. */
  release(tx: Tx, tenantId: string, sha256: string): Promise<void>;
}
