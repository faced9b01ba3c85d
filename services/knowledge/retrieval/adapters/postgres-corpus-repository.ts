import type { JsonObject } from "@bufbuild/protobuf";
import type { Queryable, Tx } from "../../../kernel/db/ports.js";
import type { CorpusState } from "../corpus.js";
import type { CorpusRepository } from "../ports.js";
import type { Provider } from "../provider-config.js";
import { storedProviderConfig } from "../provider-config.js";

interface CorpusRow {
  seq: bigint;
  tenant_id: string;
  corpus_id: string;
  display_name: string;
  description: string;
  provider: string;
  provider_config: JsonObject;
  embedding_model: string;
  embedding_dimensions: number;
  search_model: string;
  search_dimensions: number;
  reindex_required: boolean;
  document_count: bigint;
  chunk_count: bigint;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `c.seq, c.tenant_id, c.corpus_id, c.display_name, c.description, c.provider, c.provider_config,
  c.embedding_model, c.embedding_dimensions, i.search_model, i.search_dimensions, i.reindex_required, i.document_count,
  i.chunk_count, c.created_at, c.updated_at`;
const FROM = "retrieval.corpora c JOIN retrieval.corpus_index i ON i.tenant_id = c.tenant_id AND i.corpus_id = c.corpus_id";

function toState(r: CorpusRow): CorpusState {
  const config = storedProviderConfig(r.provider_config);
  return {
    tenantId: r.tenant_id,
    corpusId: r.corpus_id,
    displayName: r.display_name,
    description: r.description,
    providerConfig: config.json,
    provider: r.provider as Provider,
    topKDefault: config.topKDefault,
    embeddingModel: r.embedding_model,
    embeddingDimensions: r.embedding_dimensions,
    searchModel: r.search_model,
    searchDimensions: r.search_dimensions,
    reindexRequired: r.reindex_required,
    documentCount: Number(r.document_count),
    chunkCount: Number(r.chunk_count),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** `retrieval.corpora` on PostgreSQL or PGlite. */
export function createPgCorpusRepository(): CorpusRepository {
  return {
    async get(q: Queryable, tenantId: string, corpusId: string, lock?: "update" | "share") {
      // Only the settings row is locked: the index row is the chunk index's to update.
      const suffix = lock === "update" ? " FOR UPDATE OF c" : lock === "share" ? " FOR SHARE OF c" : "";
      const { rows } = await q.query<CorpusRow>(`SELECT ${COLUMNS} FROM ${FROM} WHERE c.tenant_id = $1 AND c.corpus_id = $2${suffix}`, [
        tenantId,
        corpusId,
      ]);
      return rows[0] ? toState(rows[0]) : undefined;
    },
    async list(q, tenantId, page) {
      const { rows } = await q.query<CorpusRow>(
        `SELECT ${COLUMNS} FROM ${FROM} WHERE c.tenant_id = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3`,
        [tenantId, page.afterSeq ?? 0n, page.limit],
      );
      return rows.map((r) => ({ seq: BigInt(r.seq), corpus: toState(r) }));
    },
    async insert(tx: Tx, c: CorpusState) {
      await tx.query(
        `INSERT INTO retrieval.corpora (tenant_id, corpus_id, display_name, description, provider, provider_config,
           embedding_model, embedding_dimensions, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)`,
        [
          c.tenantId,
          c.corpusId,
          c.displayName,
          c.description,
          c.provider,
          JSON.stringify(c.providerConfig),
          c.embeddingModel,
          c.embeddingDimensions,
          c.createdAt,
          c.updatedAt,
        ],
      );
      await tx.query(
        `INSERT INTO retrieval.corpus_index (tenant_id, corpus_id, search_model, search_dimensions, reindex_required)
         VALUES ($1, $2, $3, $4, $5)`,
        [c.tenantId, c.corpusId, c.searchModel, c.searchDimensions, c.reindexRequired],
      );
    },
    async update(tx: Tx, c: CorpusState) {
      // Counters belong to the chunk index (ingestion); settings and the reindex flag to UpdateCorpus.
      await tx.query(
        `UPDATE retrieval.corpora SET display_name = $3, description = $4, provider = $5, provider_config = $6::jsonb,
           embedding_model = $7, embedding_dimensions = $8, updated_at = $9
         WHERE tenant_id = $1 AND corpus_id = $2`,
        [
          c.tenantId,
          c.corpusId,
          c.displayName,
          c.description,
          c.provider,
          JSON.stringify(c.providerConfig),
          c.embeddingModel,
          c.embeddingDimensions,
          c.updatedAt,
        ],
      );
      await tx.query(
        `UPDATE retrieval.corpus_index SET search_model = $3, search_dimensions = $4, reindex_required = $5
         WHERE tenant_id = $1 AND corpus_id = $2`,
        [c.tenantId, c.corpusId, c.searchModel, c.searchDimensions, c.reindexRequired],
      );
    },
    async delete(tx: Tx, tenantId: string, corpusId: string) {
      await tx.query("DELETE FROM retrieval.chunks WHERE tenant_id = $1 AND corpus_id = $2", [tenantId, corpusId]);
      await tx.query("DELETE FROM retrieval.corpus_index WHERE tenant_id = $1 AND corpus_id = $2", [tenantId, corpusId]);
      await tx.query("DELETE FROM retrieval.corpora WHERE tenant_id = $1 AND corpus_id = $2", [tenantId, corpusId]);
    },
  };
}
