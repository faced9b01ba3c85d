import type { JsonObject } from "@bufbuild/protobuf";
import type { Queryable, Tx } from "../../../kernel/db/ports.js";
import { readableSql } from "../../retrieval/adapters/postgres-document-access.js";
import type { DocumentState, DocumentStatusName } from "../document.js";
import { DOCUMENTS_CHANNEL } from "../migrations.js";
import type { DocumentKey, DocumentPage, DocumentRepository } from "../ports.js";

interface DocumentRow {
  seq: bigint;
  tenant_id: string;
  document_id: string;
  corpus_id: string;
  filename: string;
  media_type: string;
  size_bytes: bigint;
  content_sha256: string;
  metadata: JsonObject;
  status: DocumentStatusName;
  failure_reason: string;
  failure_message: string;
  version: bigint;
  chunk_count: number;
  chunk_size: number;
  chunk_overlap: number;
  attempts: number;
  dead_lettered: boolean;
  progress_done: number;
  progress_total: number;
  created_at: Date;
  updated_at: Date;
  queued_at: Date;
  completed_at: Date | null;
}

const COLUMNS = `seq, tenant_id, document_id, corpus_id, filename, media_type, size_bytes, content_sha256, metadata, status,
  failure_reason, failure_message, version, chunk_count, chunk_size, chunk_overlap, attempts, dead_lettered, progress_done,
  progress_total, created_at, updated_at, queued_at, completed_at`;

function toState(r: DocumentRow): DocumentState {
  return {
    tenantId: r.tenant_id,
    documentId: r.document_id,
    corpusId: r.corpus_id,
    filename: r.filename,
    mediaType: r.media_type,
    sizeBytes: Number(r.size_bytes),
    contentSha256: r.content_sha256,
    metadata: r.metadata ?? {},
    status: r.status,
    failureReason: r.failure_reason,
    failureMessage: r.failure_message,
    version: BigInt(r.version),
    chunkCount: r.chunk_count,
    chunking: { size: r.chunk_size, overlap: r.chunk_overlap },
    attempts: r.attempts,
    deadLettered: r.dead_lettered,
    progressDone: r.progress_done,
    progressTotal: r.progress_total,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    queuedAt: r.queued_at,
    completedAt: r.completed_at ?? undefined,
  };
}

/** Wakes WatchDocument streams of every process (a hint: watchers also poll). */
async function notify(q: Queryable, key: DocumentKey): Promise<void> {
  await q.query("SELECT pg_notify($1, $2)", [DOCUMENTS_CHANNEL, `${key.tenantId}/${key.documentId}`]);
}

/** `ingestion.documents` on PostgreSQL or PGlite; every change NOTIFYs {@link DOCUMENTS_CHANNEL}. */
export function createPgDocumentRepository(): DocumentRepository {
  return {
    async get(q, key, lock) {
      const { rows } = await q.query<DocumentRow>(
        `SELECT ${COLUMNS} FROM ingestion.documents WHERE tenant_id = $1 AND document_id = $2${lock === "update" ? " FOR UPDATE" : ""}`,
        [key.tenantId, key.documentId],
      );
      return rows[0] ? toState(rows[0]) : undefined;
    },
    async list(q, tenantId, page: DocumentPage) {
      const params: unknown[] = [tenantId, page.beforeSeq ?? 9_223_372_036_854_775_807n, page.limit];
      let where = "tenant_id = $1 AND seq < $2";
      if (page.corpusId) {
        params.push(page.corpusId);
        where += ` AND corpus_id = $${params.length}`;
      }
      if (page.statuses && page.statuses.length > 0) {
        params.push([...page.statuses]);
        where += ` AND status = ANY($${params.length}::text[])`;
      }
      if (page.access) where += ` AND ${readableSql(page.access, (v) => `$${params.push(v)}`)}`;
      const { rows } = await q.query<DocumentRow>(
        `SELECT ${COLUMNS} FROM ingestion.documents c WHERE ${where} ORDER BY seq DESC LIMIT $3`,
        params,
      );
      return rows.map((r) => ({ seq: BigInt(r.seq), document: toState(r) }));
    },
    async insert(tx: Tx, d: DocumentState) {
      await tx.query(
        `INSERT INTO ingestion.documents (tenant_id, document_id, corpus_id, filename, media_type, size_bytes, content_sha256,
           metadata, status, failure_reason, failure_message, version, chunk_count, chunk_size, chunk_overlap, attempts,
           dead_lettered, progress_done, progress_total, created_at, updated_at, queued_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
        [
          d.tenantId,
          d.documentId,
          d.corpusId,
          d.filename,
          d.mediaType,
          d.sizeBytes,
          d.contentSha256,
          JSON.stringify(d.metadata),
          d.status,
          d.failureReason,
          d.failureMessage,
          d.version,
          d.chunkCount,
          d.chunking.size,
          d.chunking.overlap,
          d.attempts,
          d.deadLettered,
          d.progressDone,
          d.progressTotal,
          d.createdAt,
          d.updatedAt,
          d.queuedAt,
          d.completedAt ?? null,
        ],
      );
      await notify(tx, d);
    },
    async update(tx: Tx, d: DocumentState) {
      await tx.query(
        `UPDATE ingestion.documents SET corpus_id = $3, filename = $4, media_type = $5, size_bytes = $6, content_sha256 = $7,
           metadata = $8::jsonb, status = $9, failure_reason = $10, failure_message = $11, version = $12, chunk_count = $13,
           chunk_size = $14, chunk_overlap = $15, attempts = $16, dead_lettered = $17, progress_done = $18,
           progress_total = $19, updated_at = $20, queued_at = $21, completed_at = $22
         WHERE tenant_id = $1 AND document_id = $2`,
        [
          d.tenantId,
          d.documentId,
          d.corpusId,
          d.filename,
          d.mediaType,
          d.sizeBytes,
          d.contentSha256,
          JSON.stringify(d.metadata),
          d.status,
          d.failureReason,
          d.failureMessage,
          d.version,
          d.chunkCount,
          d.chunking.size,
          d.chunking.overlap,
          d.attempts,
          d.deadLettered,
          d.progressDone,
          d.progressTotal,
          d.updatedAt,
          d.queuedAt,
          d.completedAt ?? null,
        ],
      );
      await notify(tx, d);
    },
    async delete(tx, key) {
      await tx.query("DELETE FROM ingestion.documents WHERE tenant_id = $1 AND document_id = $2", [key.tenantId, key.documentId]);
      await notify(tx, key);
    },
    async markProcessing(q, key, version) {
      const { rows } = await q.query<{ attempts: number }>(
        `UPDATE ingestion.documents SET status = 'processing', progress_done = 0, progress_total = 0, updated_at = now(),
           -- A failed version that is processed again was replayed from the dead-letter queue: count afresh.
           attempts = CASE WHEN status = 'failed' THEN 1 ELSE attempts + 1 END, dead_lettered = false
         WHERE tenant_id = $1 AND document_id = $2 AND version = $3 AND status <> 'succeeded'
         RETURNING attempts`,
        [key.tenantId, key.documentId, version],
      );
      if (rows[0] === undefined) return undefined;
      await notify(q, key);
      return rows[0].attempts;
    },
    async reportProgress(q, key, version, done, total) {
      const { rowCount } = await q.query(
        `UPDATE ingestion.documents SET progress_done = $4, progress_total = $5, updated_at = now()
         WHERE tenant_id = $1 AND document_id = $2 AND version = $3 AND status = 'processing'`,
        [key.tenantId, key.documentId, version, done, total],
      );
      if (rowCount > 0) await notify(q, key);
    },
    async markRetrying(q, key, version, attempt) {
      const { rowCount } = await q.query(
        `UPDATE ingestion.documents SET status = 'queued', attempts = greatest(attempts, $4), progress_done = 0,
           progress_total = 0, updated_at = now()
         WHERE tenant_id = $1 AND document_id = $2 AND version = $3 AND status = 'processing'`,
        [key.tenantId, key.documentId, version, attempt],
      );
      if (rowCount > 0) await notify(q, key);
    },
    async listPending(q, before, limit) {
      const { rows } = await q.query<{ tenant_id: string; document_id: string; version: bigint }>(
        `SELECT tenant_id, document_id, version FROM ingestion.documents
         WHERE status IN ('queued', 'processing') AND updated_at < $1 ORDER BY updated_at LIMIT $2`,
        [before, limit],
      );
      return rows.map((r) => ({ tenantId: r.tenant_id, documentId: r.document_id, version: BigInt(r.version) }));
    },
    async listByCorpus(q, tenantId, corpusId) {
      const { rows } = await q.query<DocumentRow>(
        `SELECT ${COLUMNS} FROM ingestion.documents WHERE tenant_id = $1 AND corpus_id = $2 ORDER BY seq`,
        [tenantId, corpusId],
      );
      return rows.map(toState);
    },
  };
}
