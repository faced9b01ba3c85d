import type { Migration } from "../../kernel/db/migrate.js";
import type { SchemaMigrations } from "../../kernel/service/index.js";

/** Schema of the ingestion service: documents and their original content. */
export const INGESTION_SCHEMA = "ingestion";

/** NOTIFY channel carrying `<tenant>/<document>` whenever a document's row changes. */
export const DOCUMENTS_CHANNEL = "ingestion_documents";

/** The ingestion schema's migrations. */
export const INGESTION_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_documents",
    sql: `
CREATE TABLE ingestion.documents (
  tenant_id text NOT NULL,
  document_id text NOT NULL,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  corpus_id text NOT NULL,
  filename text NOT NULL DEFAULT '',
  media_type text NOT NULL,
  size_bytes bigint NOT NULL,
  content_sha256 text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL CHECK (status IN ('queued', 'processing', 'succeeded', 'failed')),
  failure_reason text NOT NULL DEFAULT '',
  failure_message text NOT NULL DEFAULT '',
  version bigint NOT NULL,
  chunk_count int NOT NULL DEFAULT 0,
  chunk_size int NOT NULL,
  chunk_overlap int NOT NULL,
  attempts int NOT NULL DEFAULT 0,
  dead_lettered boolean NOT NULL DEFAULT false,
  progress_done int NOT NULL DEFAULT 0,
  progress_total int NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  queued_at timestamptz NOT NULL,
  completed_at timestamptz,
  PRIMARY KEY (tenant_id, document_id)
);
CREATE UNIQUE INDEX documents_tenant_seq ON ingestion.documents (tenant_id, seq DESC);
CREATE INDEX documents_tenant_corpus_seq ON ingestion.documents (tenant_id, corpus_id, seq DESC);
CREATE INDEX documents_pending ON ingestion.documents (updated_at) WHERE status IN ('queued', 'processing');

-- Original bytes, once per tenant and content: re-ingesting the same file stores nothing new.
CREATE TABLE ingestion.contents (
  tenant_id text NOT NULL,
  sha256 text NOT NULL,
  bytes bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sha256)
);
`,
  },
];

/** The ingestion schema and its migrations (applied whenever the service runs). */
export const ingestionMigrations: SchemaMigrations = { schema: INGESTION_SCHEMA, migrations: INGESTION_MIGRATIONS };
