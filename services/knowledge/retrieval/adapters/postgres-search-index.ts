import type { JsonObject } from "@bufbuild/protobuf";
import type { Database } from "../../../kernel/db/ports.js";
import type { FieldCipher } from "../../../kernel/keyring/index.js";
import { TEXT_SEARCH_CONFIG } from "../migrations.js";
import { decideAccess, type StoredPolicy } from "../policy-engine.js";
import type { ChunkHit, SearchIndex, SearchQuery } from "../ports.js";
import { vectorLiteral } from "./postgres-chunk-index.js";
import { accessSql, labelsOf, principalOf, stagedParams } from "./postgres-document-access.js";

/** Reciprocal rank fusion constant: score = Σ 1 / (k + rank). 60 is the value of the RRF paper. */
export const RRF_K = 60;

/** Candidates each ranking contributes before fusion: 4 × top_k, at least 50, at most 200. */
export function candidateCount(topK: number): number {
  return Math.min(200, Math.max(50, topK * 4));
}

interface HitRow {
  document_id: string;
  version: bigint;
  ordinal: number;
  char_start: number;
  char_end: number;
  text: string;
  filename: string;
  metadata: JsonObject;
  vector_score: number | null;
  lexical_score: number | null;
  fused_score: number;
  permitted?: boolean;
  owner_user_id?: string;
}

/** A statement and its parameters. */
export interface SearchStatement {
  sql: string;
  params: unknown[];
  /** Policies to decide per candidate document (the statement over-fetched). */
  residual?: StoredPolicy[];
}

/**
 * Builds the search statement. Every ranking is a CTE that starts from
 * `tenant_id = $1 AND corpus_id = $2` (plus the filters), so no row of another tenant or corpus
 * can ever be ranked. The lexical ranking takes chunks containing all the query's lexemes,
 * topped up with chunks containing some of them, each tier ordered by ts_rank_cd; the vector
 * ranking orders by cosine distance on the partial HNSW index of the corpus's vector size;
 * the two are fused by reciprocal rank.
 */
export function buildSearchStatement(q: SearchQuery): SearchStatement {
  const params: unknown[] = [q.tenantId, q.corpusId];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  let filters = "";
  if (q.documentIds && q.documentIds.length > 0) filters += ` AND c.document_id = ANY(${param([...q.documentIds])}::text[])`;
  if (q.metadataEquals && Object.keys(q.metadataEquals).length > 0) {
    const m = param(JSON.stringify(q.metadataEquals));
    // @> narrows with the GIN index; the per-key check makes it equality, not containment.
    filters += ` AND c.metadata @> ${m}::jsonb AND NOT EXISTS (SELECT 1 FROM jsonb_each(${m}::jsonb) f WHERE c.metadata -> f.key IS DISTINCT FROM f.value)`;
  }
  // Document access inside the ranking: top-k is the best k the reader may see. The documents
  // the access lists hide are computed once (a materialized CTE), not once per chunk; compiled
  // policies are predicates on the chunk's labels (metadata), corpus and document.
  const ctes: string[] = [];
  const staged = stagedParams(param);
  const access = q.access ? accessSql(q.access, staged.param) : undefined;
  if (access) {
    ctes.push(...access.ctes);
    filters += ` AND ${access.condition}`;
  }
  const residual = access !== undefined && access.residual.length > 0;
  const candidates = param(candidateCount(residual ? overFetch(q.topK) : q.topK));
  const useLexical = q.ranking !== "vector";
  const useVector = q.ranking !== "lexical";
  if (useLexical) {
    const text = param(q.text);
    const all = `plainto_tsquery('${TEXT_SEARCH_CONFIG}', ${text})`;
    const any = `replace(${all}::text, ' & ', ' | ')::tsquery`;
    const rank = `ts_rank_cd(c.tsv, ${any})::float8`;
    // Chunks with every query term first (selective: the GIN index finds them cheaply); only
    // when those are too few, chunks with some of the terms (ranking every chunk that shares
    // one common word with the query is what makes naive OR full-text search slow).
    ctes.push(
      `lexical_all AS (
        SELECT c.document_id, c.ordinal, ${rank} AS score, 0 AS tier
        FROM retrieval.chunks c
        WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.tsv @@ ${all}${filters}
        ORDER BY score DESC, c.document_id, c.ordinal
        LIMIT ${candidates})`,
      `lexical_any AS (
        SELECT c.document_id, c.ordinal, ${rank} AS score, 1 AS tier
        FROM retrieval.chunks c
        WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.tsv @@ ${any} AND NOT (c.tsv @@ ${all})${filters}
          AND (SELECT count(*) FROM lexical_all) < ${candidates}
        ORDER BY score DESC, c.document_id, c.ordinal
        LIMIT ${candidates})`,
      `lexical_ranked AS (
        SELECT document_id, ordinal, score, row_number() OVER (ORDER BY tier, score DESC, document_id, ordinal) AS rank
        FROM (SELECT * FROM lexical_all UNION ALL SELECT * FROM lexical_any) l)`,
    );
  }
  if (useVector) {
    const dims = q.dimensions ?? 0;
    if (!q.vector || !Number.isInteger(dims) || dims < 1 || q.vector.length !== dims || !q.model) {
      throw new Error("a vector search needs the query vector, its model and its dimensions");
    }
    const vector = param(vectorLiteral(q.vector));
    const model = param(q.model);
    ctes.push(
      `vector AS MATERIALIZED (
        SELECT c.document_id, c.ordinal, (c.embedding::vector(${dims}) <=> ${vector}::vector(${dims}))::float8 AS distance
        FROM retrieval.chunks c
        WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.dims = ${dims} AND c.embedding_model = ${model}${filters}
        ORDER BY c.embedding::vector(${dims}) <=> ${vector}::vector(${dims})
        LIMIT ${candidates})`,
      // Iterative index scans may return slightly out of order: rank on the distance itself.
      `vector_ranked AS (
        SELECT document_id, ordinal, 1 - distance AS score, row_number() OVER (ORDER BY distance, document_id, ordinal) AS rank
        FROM vector)`,
    );
  }
  let fused: string;
  if (useLexical && useVector) {
    fused = `fused AS (
      SELECT coalesce(l.document_id, v.document_id) AS document_id, coalesce(l.ordinal, v.ordinal) AS ordinal,
        v.score AS vector_score, l.score AS lexical_score,
        coalesce(1.0 / (${RRF_K} + l.rank), 0) + coalesce(1.0 / (${RRF_K} + v.rank), 0) AS fused_score
      FROM lexical_ranked l FULL OUTER JOIN vector_ranked v ON v.document_id = l.document_id AND v.ordinal = l.ordinal)`;
  } else if (useLexical) {
    fused = `fused AS (SELECT document_id, ordinal, NULL::float8 AS vector_score, score AS lexical_score, score AS fused_score FROM lexical_ranked)`;
  } else {
    fused = `fused AS (SELECT document_id, ordinal, score AS vector_score, NULL::float8 AS lexical_score, score AS fused_score FROM vector_ranked)`;
  }
  ctes.push(fused);
  // Residual policies are decided per candidate document after the statement: over-fetch
  // (bounded) so that top-k stays full unless more than the over-fetch is withheld.
  const topK = param(residual ? overFetch(q.topK) : q.topK);
  const extra = residual
    ? `, ${access.permitted} AS permitted,
  coalesce((SELECT o.owner_user_id FROM retrieval.document_access o WHERE o.tenant_id = $1 AND o.document_id = c.document_id), '') AS owner_user_id`
    : "";
  const sql = `WITH ${ctes.join(",\n")}
SELECT c.document_id, c.version, c.ordinal, c.char_start, c.char_end, c.text, c.filename, c.metadata,
  f.vector_score::float8 AS vector_score, f.lexical_score::float8 AS lexical_score, f.fused_score::float8 AS fused_score${extra}
FROM fused f JOIN retrieval.chunks c ON c.tenant_id = $1 AND c.corpus_id = $2 AND c.document_id = f.document_id AND c.ordinal = f.ordinal
ORDER BY f.fused_score DESC, c.document_id, c.ordinal
LIMIT ${topK}`;
  return { sql: staged.bind(sql), params, ...(residual ? { residual: access.residual } : {}) };
}

/** Candidates fetched when residual policies decide after the statement: 3 × top_k, at most 150. */
export function overFetch(topK: number): number {
  return Math.min(150, topK * 3);
}

/** Options of {@link createPgSearchIndex}. */
export interface PgSearchIndexOptions {
  /** The database has pgvector (HNSW settings are applied per search). */
  vectors: boolean;
  /** Smallest hnsw.ef_search of a search (NEXUS_SEARCH_EF_SEARCH). Default 100. */
  efSearch?: number;
  /** Opens sealed chunk texts of the hits ("documents" purpose). */
  cipher?: FieldCipher;
}

/** The HNSW candidate list of a search: the configured floor, or more for a large top_k. */
export function efSearchFor(topK: number, floor = 100): number {
  return Math.max(floor, candidateCount(topK));
}

/** Hybrid search on PostgreSQL or PGlite (see {@link buildSearchStatement}). */
export function createPgSearchIndex(options: PgSearchIndexOptions): SearchIndex {
  return {
    async search(db: Database, q: SearchQuery): Promise<ChunkHit[]> {
      const statement = buildSearchStatement(q);
      const rows = await db.transaction(async (tx) => {
        if (options.vectors && q.ranking !== "lexical") {
          // Tenant and corpus filters sit on top of the HNSW scan: keep scanning until enough
          // rows pass them (pgvector ≥ 0.8), rather than returning fewer than asked for.
          const ef = efSearchFor(q.topK, options.efSearch);
          await tx.exec(`SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${ef}`);
        }
        return (await tx.query<HitRow>(statement.sql, statement.params)).rows;
      });
      if (statement.residual && q.access) keepDecided(rows, statement.residual, q);
      // Only the hits are opened, after the ranking (which needs no plaintext: tsv and vectors).
      if (options.cipher && rows.length > 0) {
        const texts = await options.cipher.openTexts(
          q.tenantId,
          rows.map((r) => r.text),
        );
        texts.forEach((t, i) => (rows[i]!.text = t));
      }
      return rows.map((r) => {
        const hit: ChunkHit = {
          documentId: r.document_id,
          version: BigInt(r.version),
          ordinal: r.ordinal,
          charStart: r.char_start,
          charEnd: r.char_end,
          text: r.text,
          filename: r.filename,
          metadata: r.metadata ?? {},
          fusedScore: Number(r.fused_score),
        };
        if (r.vector_score !== null) hit.vectorScore = Number(r.vector_score);
        if (r.lexical_score !== null) hit.lexicalScore = Number(r.lexical_score);
        return hit;
      });
    },
  };
}

/**
 * Decides the over-fetched candidates with Cedar over the residual policies (compiled policies and
 * access lists were applied by the statement; `permitted` says whether a grant or a compiled permit
 * allows the row, for default deny), drops the withheld (recorded in `q.withheld`) and keeps top-k.
 */
function keepDecided(rows: HitRow[], residual: readonly StoredPolicy[], q: SearchQuery): void {
  const access = q.access!;
  const decided = new Map<string, string | undefined>();
  const kept: HitRow[] = [];
  for (const row of rows) {
    if (!decided.has(row.document_id)) {
      const d = decideAccess({
        acl: { allowed: true, explicit: row.permitted === true, rule: "" },
        policies: residual,
        principal: principalOf(access.reader),
        actions: access.actions,
        resource: {
          documentId: row.document_id,
          labels: labelsOf(row.metadata),
          corpusId: q.corpusId,
          ownerUserId: row.owner_user_id ?? "",
        },
        defaultDeny: access.context.defaultDeny,
      });
      decided.set(
        row.document_id,
        d.allowed ? undefined : d.policyIds.length > 0 ? d.policyIds.map((id) => `policy:${id}`).join(",") : "default deny",
      );
    }
    const rule = decided.get(row.document_id);
    if (rule === undefined) kept.push(row);
    else q.withheld?.set(row.document_id, rule);
  }
  rows.splice(0, rows.length, ...kept.slice(0, q.topK));
}

/**
 * The documents matching a search's words (lexically, in its corpus and filters, at most 5,000)
 * that its access filter withholds, counted by deciding rule: what one audit record per call
 * reports. Runs after the answer, off its latency.
 */
export async function withheldByRule(db: Database, q: SearchQuery): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!q.access) return out;
  const params: unknown[] = [q.tenantId, q.corpusId];
  const param = (v: unknown): string => `$${params.push(v)}`;
  const staged = stagedParams(param);
  const access = accessSql(q.access, staged.param);
  let filters = "";
  if (q.documentIds && q.documentIds.length > 0) filters += ` AND c.document_id = ANY(${param([...q.documentIds])}::text[])`;
  if (q.metadataEquals && Object.keys(q.metadataEquals).length > 0)
    filters += ` AND c.metadata @> ${param(JSON.stringify(q.metadataEquals))}::jsonb`;
  const text = param(q.text);
  const { rows } = await db.query<{ rule: string; n: number }>(
    staged.bind(`WITH ${access.ctes.join(",\n")}
     SELECT rule, count(*)::int AS n FROM (
       SELECT DISTINCT ON (c.document_id) c.document_id, ${access.rule} AS rule
       FROM retrieval.chunks c
       WHERE c.tenant_id = $1 AND c.corpus_id = $2${filters}
         AND c.tsv @@ replace(plainto_tsquery('${TEXT_SEARCH_CONFIG}', ${text})::text, ' & ', ' | ')::tsquery
       ORDER BY c.document_id LIMIT 5000) d
     WHERE rule IS NOT NULL GROUP BY rule`),
    params,
  );
  for (const r of rows) out.set(r.rule, r.n);
  for (const rule of q.withheld?.values() ?? []) out.set(rule, (out.get(rule) ?? 0) + 1);
  return out;
}
