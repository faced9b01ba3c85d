import type { Queryable, Tx } from "../../../kernel/db/ports.js";
import type { FieldCipher } from "../../../kernel/keyring/index.js";
import { TEXT_SEARCH_CONFIG } from "../migrations.js";
import type { ChunkIndex, CorpusEmbedding, ReplaceChunksInput } from "../ports.js";

/** Options of {@link createPgChunkIndex}. */
export interface PgChunkIndexOptions {
  /** Store vectors (the chunks table has the pgvector column and lexical-only mode is off). */
  vectors: boolean;
  /** Rows per INSERT statement. Default 500. */
  batchSize?: number;
  /** Seals chunk texts ("documents" purpose); absent: stored in the clear. */
  cipher?: FieldCipher;
}

/** pgvector's text form of a vector, with 7 significant digits (float4 precision). */
export function vectorLiteral(v: Float32Array): string {
  let out = "[";
  for (let i = 0; i < v.length; i++) {
    if (i > 0) out += ",";
    out += Number(v[i]!.toPrecision(7)).toString();
  }
  return `${out}]`;
}

async function lookup(q: Queryable, tenantId: string, corpusId: string, lock: string): Promise<CorpusEmbedding | undefined> {
  const { rows } = await q.query<{ embedding_model: string; embedding_dimensions: number }>(
    `SELECT embedding_model, embedding_dimensions FROM retrieval.corpora WHERE tenant_id = $1 AND corpus_id = $2${lock}`,
    [tenantId, corpusId],
  );
  const r = rows[0];
  return r ? { corpusId, embeddingModel: r.embedding_model, embeddingDimensions: r.embedding_dimensions } : undefined;
}

/**
 * The chunk index on PostgreSQL or PGlite. Chunks are written with one multi-row
 * `INSERT … SELECT FROM unnest(arrays)` per batch: few round trips and few parameters
 * however many chunks a document has.
 */
export function createPgChunkIndex(options: PgChunkIndexOptions): ChunkIndex {
  const batchSize = options.batchSize ?? 500;
  return {
    vectors: options.vectors,
    lookupCorpusSettings: (q, tenantId, corpusId) => lookup(q, tenantId, corpusId, ""),
    lookupCorpus: (tx, tenantId, corpusId) => lookup(tx, tenantId, corpusId, " FOR SHARE"),
    async adjustDocumentCount(tx, tenantId, corpusId, delta) {
      await tx.query(
        `UPDATE retrieval.corpus_index SET document_count = greatest(0, document_count + $3)
         WHERE tenant_id = $1 AND corpus_id = $2`,
        [tenantId, corpusId, delta],
      );
    },
    async replaceChunks(tx: Tx, input: ReplaceChunksInput) {
      const { tenantId, corpusId, documentId } = input;
      const removed = await tx.query("DELETE FROM retrieval.chunks WHERE tenant_id = $1 AND document_id = $2", [tenantId, documentId]);
      const withVectors = options.vectors && input.embeddingModel !== undefined && input.dimensions !== undefined;
      const model = withVectors ? input.embeddingModel! : null;
      const dims = withVectors ? input.dimensions! : 0;
      const metadata = JSON.stringify(input.metadata);
      for (let start = 0; start < input.chunks.length; start += batchSize) {
        const batch = input.chunks.slice(start, start + batchSize);
        const ordinals = batch.map((c) => c.ordinal);
        const starts = batch.map((c) => c.charStart);
        const ends = batch.map((c) => c.charEnd);
        const plain = batch.map((c) => c.text);
        // The full-text vector comes from the plaintext; the column keeps the sealed text.
        const texts = options.cipher ? await options.cipher.sealTexts(tenantId, plain, tx) : plain;
        if (withVectors) {
          const vectors = batch.map((c) => {
            if (!c.embedding || c.embedding.length !== dims) throw new Error(`chunk ${c.ordinal} has no ${dims}-dimensional embedding`);
            return vectorLiteral(c.embedding);
          });
          await tx.query(
            `INSERT INTO retrieval.chunks (tenant_id, corpus_id, document_id, version, ordinal, char_start, char_end, text,
               filename, metadata, embedding_model, dims, embedding, tsv)
             SELECT $1, $2, $3, $4, u.o, u.s, u.e, u.t, $5, $6::jsonb, $7, $8, u.v::vector, to_tsvector('${TEXT_SEARCH_CONFIG}', u.p)
             FROM unnest($9::int[], $10::int[], $11::int[], $12::text[], $13::text[], $14::text[]) AS u(o, s, e, t, v, p)`,
            [
              tenantId,
              corpusId,
              documentId,
              input.version,
              input.filename,
              metadata,
              model,
              dims,
              ordinals,
              starts,
              ends,
              texts,
              vectors,
              plain,
            ],
          );
        } else {
          await tx.query(
            `INSERT INTO retrieval.chunks (tenant_id, corpus_id, document_id, version, ordinal, char_start, char_end, text,
               filename, metadata, embedding_model, dims, tsv)
             SELECT $1, $2, $3, $4, u.o, u.s, u.e, u.t, $5, $6::jsonb, NULL, 0, to_tsvector('${TEXT_SEARCH_CONFIG}', u.p)
             FROM unnest($7::int[], $8::int[], $9::int[], $10::text[], $11::text[]) AS u(o, s, e, t, p)`,
            [tenantId, corpusId, documentId, input.version, input.filename, metadata, ordinals, starts, ends, texts, plain],
          );
        }
        await input.onBatch?.(start + batch.length);
      }
      const { rows } = await tx.query<{ reindex_required: boolean }>(
        `UPDATE retrieval.corpus_index SET chunk_count = greatest(0, chunk_count + $3) WHERE tenant_id = $1 AND corpus_id = $2
         RETURNING reindex_required`,
        [tenantId, corpusId, input.chunks.length - removed.rowCount],
      );
      if (rows[0]?.reindex_required) {
        // A pending reindex is done once no chunk of the corpus carries vectors of other settings.
        await tx.query(
          `UPDATE retrieval.corpus_index i SET reindex_required = false, search_model = c.embedding_model,
             search_dimensions = c.embedding_dimensions
           FROM retrieval.corpora c
           WHERE i.tenant_id = $1 AND i.corpus_id = $2 AND c.tenant_id = i.tenant_id AND c.corpus_id = i.corpus_id
             AND NOT EXISTS (
               SELECT 1 FROM retrieval.chunks k
               WHERE k.tenant_id = $1 AND k.corpus_id = $2 AND k.embedding_model IS NOT NULL
                 AND (k.embedding_model <> c.embedding_model OR k.dims <> c.embedding_dimensions))`,
          [tenantId, corpusId],
        );
      }
    },
    async deleteDocumentChunks(tx, tenantId, corpusId, documentId) {
      const removed = await tx.query("DELETE FROM retrieval.chunks WHERE tenant_id = $1 AND document_id = $2", [tenantId, documentId]);
      if (removed.rowCount > 0) {
        await tx.query(
          `UPDATE retrieval.corpus_index SET chunk_count = greatest(0, chunk_count - $3) WHERE tenant_id = $1 AND corpus_id = $2`,
          [tenantId, corpusId, removed.rowCount],
        );
      }
      return removed.rowCount;
    },
  };
}
