import type { SchemaMigrations } from "../kernel/service/index.js";

/**
 * Forward-only migrations of the `modules` schema.
 *
 * - `modules`: one row per (tenant, module), the module aggregate's state (every version with
 *   its code, manifest, tests and review) and its stream version; `active_version` is kept in
 *   its own column because every CallTool on every replica reads it.
 * - `credentials`: one row per tenant, its credential set; values are keyring-sealed text.
 * - `listings`: marketplace listings (the listing aggregate's state) with their review status,
 *   install and rating counters and the text search looks in; `revenue_ledger`: one row per paid call,
 *   split 85/15, keyed by `<UsageRecorded event id>/<call index>`
 *   (rows written before metering fed the ledger are keyed by a MarketplaceCallRecorded event id).
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
    {
      id: "0002_marketplace",
      sql: `
CREATE TABLE modules.listings (
  listing_id text PRIMARY KEY,
  creator_tenant_id text NOT NULL,
  name text NOT NULL,
  version text NOT NULL,
  stream_version integer NOT NULL,
  install_count integer NOT NULL DEFAULT 0,
  rating_sum integer NOT NULL DEFAULT 0,
  rating_count integer NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'PENDING_REVIEW',
  search_text text NOT NULL,
  state jsonb NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (creator_tenant_id, name, version)
);
CREATE TABLE modules.revenue_ledger (
  event_id text PRIMARY KEY,
  listing_id text NOT NULL,
  creator_tenant_id text NOT NULL,
  consumer_tenant_id text NOT NULL,
  gross_micros bigint NOT NULL,
  creator_micros bigint NOT NULL,
  platform_micros bigint NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revenue_ledger_creator ON modules.revenue_ledger (creator_tenant_id, listing_id);
`,
    },
  ],
};
