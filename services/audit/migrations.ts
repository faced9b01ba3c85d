import type { Migration } from "../kernel/db/migrate.js";
import type { SchemaMigrations } from "../kernel/service/index.js";

/** The audit log's schema. */
export const AUDIT_SCHEMA = "audit";

/**
 * Forward-only migrations of the `audit` schema.
 *
 * - `entries`: the hash-chained trail, one chain per tenant ('' = installation-wide). UPDATE,
 *   DELETE and TRUNCATE are refused by triggers: the database itself keeps it append-only.
 *   Unique (tenant, sequence) and unique source event make a double append impossible.
 * - `actors`: API keys as the trail has seen them issued (kind, name, role), to name actors.
 */
export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_audit",
    sql: `
CREATE TABLE audit.entries (
  id uuid PRIMARY KEY,
  tenant_id text NOT NULL,
  sequence bigint NOT NULL CHECK (sequence >= 1),
  occurred_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  event_type text NOT NULL,
  actor_kind text NOT NULL,
  actor_key_id text NOT NULL DEFAULT '',
  actor_name text NOT NULL DEFAULT '',
  actor_role text NOT NULL DEFAULT '',
  action text NOT NULL DEFAULT '',
  resource_type text NOT NULL DEFAULT '',
  resource_id text NOT NULL DEFAULT '',
  outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
  request_id text NOT NULL DEFAULT '',
  correlation_id text NOT NULL DEFAULT '',
  before jsonb,
  after jsonb,
  metadata jsonb,
  source_event_id text NOT NULL DEFAULT '',
  prev_hash text NOT NULL,
  hash text NOT NULL,
  CONSTRAINT entries_chain_sequence_key UNIQUE (tenant_id, sequence)
);
CREATE UNIQUE INDEX entries_source_event_key ON audit.entries (source_event_id) WHERE source_event_id <> '';
CREATE INDEX entries_tenant_time_idx ON audit.entries (tenant_id, occurred_at);
CREATE INDEX entries_tenant_type_idx ON audit.entries (tenant_id, event_type, sequence);

CREATE FUNCTION audit.refuse_entry_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit.entries is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'Audit entries are evidence; they are never changed or removed.';
END
$fn$;

CREATE TRIGGER entries_append_only
  BEFORE UPDATE OR DELETE ON audit.entries
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_entry_change();

CREATE TRIGGER entries_no_truncate
  BEFORE TRUNCATE ON audit.entries
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_entry_change();

CREATE TABLE audit.actors (
  key_id text PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('platform', 'tenant')),
  name text NOT NULL DEFAULT '',
  role text NOT NULL DEFAULT '',
  tenant_id text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    // Retention of the audit trail (docs/governance.md#retention): entries older than the
    // tenant's window are summarized into a checkpoint — the last removed entry's sequence and
    // hash, counts per event type, signed by the keyring — and only then removed. The kept
    // chain verifies from the checkpoint. The append-only trigger lets a DELETE through only
    // inside a retention transaction (nexus.audit_retention = 'on') and only for entries at or
    // below a checkpoint of the tenant; UPDATE and TRUNCATE stay refused.
    id: "0002_gov_checkpoints",
    sql: `
CREATE TABLE audit.checkpoints (
  tenant_id text NOT NULL,
  sequence bigint NOT NULL CHECK (sequence >= 1),
  hash text NOT NULL,
  entries_removed integer NOT NULL,
  first_occurred_at timestamptz NOT NULL,
  last_occurred_at timestamptz NOT NULL,
  event_types jsonb NOT NULL DEFAULT '{}'::jsonb,
  signature text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sequence)
);

CREATE OR REPLACE FUNCTION audit.refuse_entry_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF current_setting('nexus.audit_retention', true) = 'on'
       AND OLD.sequence <= (SELECT max(c.sequence) FROM audit.checkpoints c WHERE c.tenant_id = OLD.tenant_id) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit.entries is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'Audit entries are evidence; only retention removes them, behind a signed checkpoint.';
END
$fn$;
`,
  },
];

/** The audit schema and its migrations (applied whenever the service runs). */
export const auditMigrations: SchemaMigrations = { schema: AUDIT_SCHEMA, migrations: AUDIT_MIGRATIONS };
