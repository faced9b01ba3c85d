import { advisoryKey } from "../../kernel/db/advisory-key.js";
import type { Migration } from "../../kernel/db/migrate.js";
import type { Database, Queryable } from "../../kernel/db/ports.js";
import type { SchemaMigrations } from "../../kernel/service/index.js";

/** Schema of the retrieval service: corpora and the chunk index. */
export const RETRIEVAL_SCHEMA = "retrieval";

/** Text search configuration of chunks and queries (stemming, stop words). */
export const TEXT_SEARCH_CONFIG = "english";

/** Dimensions of the default model (hash-256); its HNSW index exists from the start. */
const DEFAULT_DIMENSIONS = 256;

/** pgvector's HNSW index handles `vector` columns up to 2000 dimensions; larger ones are scanned exactly. */
export const MAX_HNSW_DIMENSIONS = 2000;

/**
 * Tables every installation has. Chunks carry a copy of their document's file name and
 * metadata, so search filters and citations need no other service's tables; `tsv` is the
 * full-text vector (GIN-indexed), written from the plaintext (the `text` column holds it sealed
 * when encryption at rest is on).
 */
const BASE: readonly Migration[] = [
  {
    id: "0001_corpora_and_chunks",
    sql: `
CREATE TABLE retrieval.corpora (
  tenant_id text NOT NULL,
  corpus_id text NOT NULL,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  display_name text NOT NULL,
  description text NOT NULL DEFAULT '',
  provider text NOT NULL,
  provider_config jsonb NOT NULL,
  embedding_model text NOT NULL,
  embedding_dimensions int NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, corpus_id)
);
CREATE UNIQUE INDEX corpora_tenant_seq ON retrieval.corpora (tenant_id, seq);

-- The index's state of a corpus, apart from its settings: ingestion workers update it while
-- they hold only a share lock on the settings row (no lock upgrade, no deadlock).
CREATE TABLE retrieval.corpus_index (
  tenant_id text NOT NULL,
  corpus_id text NOT NULL,
  search_model text NOT NULL,
  search_dimensions int NOT NULL,
  reindex_required boolean NOT NULL DEFAULT false,
  document_count bigint NOT NULL DEFAULT 0,
  chunk_count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, corpus_id)
);

CREATE TABLE retrieval.chunks (
  tenant_id text NOT NULL,
  corpus_id text NOT NULL,
  document_id text NOT NULL,
  version bigint NOT NULL,
  ordinal int NOT NULL,
  char_start int NOT NULL,
  char_end int NOT NULL,
  text text NOT NULL,
  filename text NOT NULL DEFAULT '',
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  embedding_model text,
  dims int NOT NULL DEFAULT 0,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('${TEXT_SEARCH_CONFIG}', text)) STORED,
  PRIMARY KEY (tenant_id, document_id, ordinal)
);
CREATE INDEX chunks_tenant_corpus ON retrieval.chunks (tenant_id, corpus_id, embedding_model, dims);
CREATE INDEX chunks_tsv ON retrieval.chunks USING gin (tsv);
CREATE INDEX chunks_metadata ON retrieval.chunks USING gin (metadata jsonb_path_ops);
`,
  },
  {
    // Chunk texts are sealed with the keyring (docs/security.md): the full-text vector is
    // written from the plaintext by the chunk index instead of generated from the column.
    id: "0003_tsv_written",
    sql: "ALTER TABLE retrieval.chunks ALTER COLUMN tsv DROP EXPRESSION;",
  },
];

/** The vector column and the default dimensions' HNSW index (databases with pgvector only). */
const VECTOR: readonly Migration[] = [
  {
    id: "0002_vectors",
    sql: `
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE retrieval.chunks ADD COLUMN embedding vector;
CREATE INDEX chunks_hnsw_${DEFAULT_DIMENSIONS} ON retrieval.chunks
  USING hnsw ((embedding::vector(${DEFAULT_DIMENSIONS})) vector_cosine_ops) WHERE dims = ${DEFAULT_DIMENSIONS};
`,
  },
];

/**
 * Document access (docs/identity.md): a restricted document is read only through its grants.
 * Rows exist only for documents whose access was ever set.
 */
const ACCESS: readonly Migration[] = [
  {
    id: "0003_document_access",
    sql: `
CREATE TABLE retrieval.document_access (
  tenant_id text NOT NULL,
  document_id text NOT NULL,
  restricted boolean NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  PRIMARY KEY (tenant_id, document_id)
);
CREATE TABLE retrieval.document_grants (
  tenant_id text NOT NULL,
  document_id text NOT NULL,
  grantee_kind text NOT NULL CHECK (grantee_kind IN ('user', 'group', 'role', 'tenant')),
  grantee text NOT NULL,
  expires_at timestamptz,
  PRIMARY KEY (tenant_id, document_id, grantee_kind, grantee),
  FOREIGN KEY (tenant_id, document_id) REFERENCES retrieval.document_access (tenant_id, document_id) ON DELETE CASCADE
);
`,
  },
  {
    id: "0004_document_access_settings",
    sql: `
CREATE TABLE retrieval.document_access_settings (
  tenant_id text PRIMARY KEY,
  admins_bypass boolean NOT NULL
);
`,
  },
  {
    id: "0005_document_owner",
    sql: "ALTER TABLE retrieval.document_access ADD COLUMN owner_user_id text NOT NULL DEFAULT '';",
  },
  {
    // Cedar policies, label rules and default deny (docs/identity.md, "Policies"); access lists
    // of documents deleted before this release are dropped (they outlived their documents).
    id: "0006_document_policies",
    sql: `
CREATE TABLE retrieval.policies (
  tenant_id text NOT NULL,
  policy_id text NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  text text NOT NULL,
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  stream_version integer NOT NULL,
  PRIMARY KEY (tenant_id, policy_id)
);
CREATE TABLE retrieval.label_rules (
  tenant_id text PRIMARY KEY,
  version integer NOT NULL CHECK (version >= 1),
  rules jsonb NOT NULL
);
ALTER TABLE retrieval.document_access_settings ADD COLUMN default_deny boolean NOT NULL DEFAULT false;
DO $$ BEGIN
  IF to_regclass('ingestion.documents') IS NOT NULL THEN
    EXECUTE 'DELETE FROM retrieval.document_access a WHERE NOT EXISTS (SELECT 1 FROM ingestion.documents d
      WHERE d.tenant_id = a.tenant_id AND d.document_id = a.document_id)';
  END IF;
END $$;
`,
  },
];

/**
 * The retrieval schema's migrations for this database: with pgvector available, the vector
 * column and index too. A database that gains pgvector later gets them on the next start
 * (migrations are applied by id, so the vector one slots in); its documents then need a
 * reindex to get vectors.
 */
export function retrievalMigrationsFor(db: Database): readonly Migration[] {
  return db.capabilities.vector ? [...BASE, ...VECTOR, ...ACCESS] : [...BASE, ...ACCESS];
}

/** The retrieval schema and its migrations (applied whenever the service runs). */
export const retrievalMigrations: SchemaMigrations = { schema: RETRIEVAL_SCHEMA, migrations: retrievalMigrationsFor };

/** True when the chunks table has the vector column (the database had pgvector at migration time). */
export async function hasVectorColumn(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM information_schema.columns
       WHERE table_schema = 'retrieval' AND table_name = 'chunks' AND column_name = 'embedding') AS present`,
  );
  return rows[0]?.present === true;
}

/**
 * Creates the partial HNSW index for one vector size if it is missing (one per dimension
 * count in use; pgvector indexes a fixed size). Sizes above {@link MAX_HNSW_DIMENSIONS} are
 * searched exactly instead.
 */
export async function ensureVectorIndex(tx: Queryable, dimensions: number): Promise<void> {
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_HNSW_DIMENSIONS) return;
  const present = async () =>
    (await tx.query<{ present: boolean }>(`SELECT to_regclass('retrieval.chunks_hnsw_${dimensions}') IS NOT NULL AS present`)).rows[0]
      ?.present === true;
  if (await present()) return;
  // Concurrent creators queue here; the second one finds the first one's index.
  await tx.query("SELECT pg_advisory_xact_lock($1)", [advisoryKey(`nexus.retrieval.hnsw.${dimensions}`)]);
  await tx.exec(
    `CREATE INDEX IF NOT EXISTS chunks_hnsw_${dimensions} ON retrieval.chunks
       USING hnsw ((embedding::vector(${dimensions})) vector_cosine_ops) WHERE dims = ${dimensions}`,
  );
}
