import type { SchemaMigrations } from "../kernel/service/index.js";

/**
 * Forward-only migrations of the `modules` schema.
 *
 * - `modules`: one row per (tenant, module), the module aggregate's state (every version with
 *   its code, manifest, tests and review) and its stream version; `active_version` is kept in
 *   its own column because every CallTool on every replica reads it.
 * - `credentials`: one row per tenant, its credential set; values are keyring-sealed text.
 */
export const modulesMigrations: SchemaMigrations = {
  schema: "modules",
  migrations: [
    {
      id: "0001_modules",
      sql: `
CREATE TABLE modules.modules (
  tenant_id text NOT NULL,
  name text NOT NULL,
  stream_version integer NOT NULL,
  active_version text NOT NULL DEFAULT '',
  state jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);
CREATE TABLE modules.credentials (
  tenant_id text PRIMARY KEY,
  stream_version integer NOT NULL,
  entries jsonb NOT NULL
);
`,
    },
  ],
};
