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
    {
      // Data-subject requests (subject-requests.ts): the job, each service's part of it, the
      // tenant's setting for erase approval, and the leases that keep replicas from doing the
      // same governance work at once (leases.ts).
      id: "0002_gov_subject_requests",
      sql: `
CREATE TABLE platform.governance_settings (
  tenant_id text PRIMARY KEY,
  erase_requires_approval boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE platform.subject_requests (
  request_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('export', 'erase')),
  scope text NOT NULL CHECK (scope IN ('user', 'session', 'key')),
  subject_id text NOT NULL CHECK (subject_id <> ''),
  status text NOT NULL CHECK (status IN ('awaiting_approval', 'running', 'done', 'failed')),
  requested_by text NOT NULL,
  requested_by_user text NOT NULL DEFAULT '',
  approval_required boolean NOT NULL DEFAULT false,
  approved_by text NOT NULL DEFAULT '',
  parts_expected text[] NOT NULL,
  error text NOT NULL DEFAULT '',
  summary jsonb NOT NULL DEFAULT '{}'::jsonb,
  archive text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX subject_requests_tenant ON platform.subject_requests (tenant_id, created_at DESC);
CREATE INDEX subject_requests_running ON platform.subject_requests (created_at) WHERE status = 'running';

CREATE TABLE platform.subject_request_parts (
  request_id text NOT NULL REFERENCES platform.subject_requests (request_id) ON DELETE CASCADE,
  part text NOT NULL,
  items text NOT NULL DEFAULT '',
  item_count integer NOT NULL DEFAULT 0,
  removed integer NOT NULL DEFAULT 0,
  kept integer NOT NULL DEFAULT 0,
  note text NOT NULL DEFAULT '',
  done_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, part)
);

CREATE TABLE platform.governance_leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  until timestamptz NOT NULL
);
`,
    },
    {
      // Bounded retries of data-subject request parts (subject-requests.ts): each failure of a
      // part counts an attempt and waits with backoff; the last allowed failure fails the
      // request. \`subject_actors\`: for a user subject, every principal id that acts as the user
      // (its access token, its sign-in sessions, the API keys it owns), resolved by auth when
      // the request is made.
      id: "0003_govf_subject_request_retries",
      sql: `
ALTER TABLE platform.subject_requests ADD COLUMN subject_actors text[] NOT NULL DEFAULT '{}';
CREATE TABLE platform.subject_request_attempts (
  request_id text NOT NULL REFERENCES platform.subject_requests (request_id) ON DELETE CASCADE,
  part text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  last_error text NOT NULL DEFAULT '',
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, part)
);
`,
    },
  ],
};
