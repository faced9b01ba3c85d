import type { SchemaMigrations } from "../service/define-service.js";

/**
 * Governance tables in the platform schema (docs/governance.md#retention-and-legal-holds):
 * legal holds (one row per hold; released holds stay for the record), per-tenant retention
 * policies per category, and the report of every retention run.
 */
export const governanceMigrations: SchemaMigrations = {
  schema: "platform",
  migrations: [
    {
      id: "governance_0001_holds_retention",
      sql: `
CREATE TABLE platform.legal_holds (
  hold_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  scope text NOT NULL CHECK (scope IN ('tenant', 'document', 'session', 'user', 'key')),
  subject_id text NOT NULL DEFAULT '',
  reason text NOT NULL DEFAULT '',
  placed_by text NOT NULL DEFAULT '',
  placed_at timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz,
  released_by text NOT NULL DEFAULT '',
  CHECK ((scope = 'tenant') = (subject_id = ''))
);
CREATE INDEX legal_holds_active ON platform.legal_holds (tenant_id, scope, subject_id) WHERE released_at IS NULL;

CREATE TABLE platform.retention_policies (
  tenant_id text NOT NULL,
  category text NOT NULL CHECK (category IN ('sessions', 'documents', 'audit', 'usage')),
  max_age_days integer NOT NULL CHECK (max_age_days >= 1),
  action text NOT NULL DEFAULT 'delete' CHECK (action IN ('delete', 'anonymize')),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, category)
);

CREATE TABLE platform.retention_reports (
  report_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id text NOT NULL,
  category text NOT NULL,
  target text NOT NULL,
  action text NOT NULL,
  cutoff timestamptz NOT NULL,
  expired integer NOT NULL,
  removed integer NOT NULL,
  held integer NOT NULL,
  held_by text[] NOT NULL DEFAULT '{}',
  skipped_reason text NOT NULL DEFAULT '',
  ran_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retention_reports_tenant ON platform.retention_reports (tenant_id, ran_at DESC);
`,
    },
  ],
};
