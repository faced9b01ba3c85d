import type { SchemaMigrations } from "../service/define-service.js";

/**
 * The keyring's table in the platform schema: one data key per tenant, purpose and version,
 * stored only wrapped (AES-256-GCM under a master key version). `destroyed_at` set and
 * `wrapped` NULL = crypto-shredded: what it encrypted is unreadable for good, backups included.
 */
export const keyringMigrations: SchemaMigrations = {
  schema: "platform",
  migrations: [
    {
      id: "keyring_0001_data_keys",
      sql: `
CREATE TABLE platform.data_keys (
  tenant_id text NOT NULL,
  purpose text NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  kek_version integer NOT NULL,
  wrapped bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  destroyed_at timestamptz,
  PRIMARY KEY (tenant_id, purpose, version),
  CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
CREATE INDEX data_keys_kek_idx ON platform.data_keys (kek_version) WHERE wrapped IS NOT NULL;
`,
    },
    {
      // Re-encryption after a rotation (reencrypt.ts): progress per sealed field, resumable.
      id: "keyring_0002_jobs",
      sql: `
CREATE TABLE platform.keyring_jobs (
  job_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  purpose text NOT NULL,
  target_version integer NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
  phase text NOT NULL DEFAULT 'reseal' CHECK (phase IN ('reseal', 'verify')),
  progress jsonb NOT NULL DEFAULT '{}'::jsonb,
  retired_versions integer[] NOT NULL DEFAULT '{}',
  error text NOT NULL DEFAULT '',
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX keyring_jobs_open ON platform.keyring_jobs (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX keyring_jobs_tenant ON platform.keyring_jobs (tenant_id, created_at);
`,
    },
  ],
};
