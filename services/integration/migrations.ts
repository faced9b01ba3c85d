import { processedEventsMigration } from "../kernel/events/index.js";
import type { SchemaMigrations } from "../kernel/service/index.js";

/** The integration service's schema. */
export const INTEGRATION_SCHEMA = "integration";

/**
 * Forward-only migrations of the `integration` schema.
 *
 * - `sender_apps`: apps with the SHA-256 digest of their key (never the key) and their master
 *   secrets sealed with the keyring (`master_secrets`: version → sealed secret).
 * - `destinations`: configuration without secrets (`config`), the secret sealed (`sealed_secret`).
 * - `workflows` / `workflow_versions`: every saved definition is kept (proto JSON); messages
 *   carry the version they were accepted with.
 * - `mqtt_sources`: brokers, topics and the sealed password.
 * - `messages`: the 24 h dedupe window per source (same payload hash or client message id),
 *   `published` once the message is on the bus.
 * - `executions`: the execution log, one row per message and target (fan-out) or step
 *   (sequential); `tick` orders changes for the live tail.
 * - `edge_agents` (0003): registered edge agents, their token digest and assigned apps;
 *   `suspended_tenants`: tenants auth suspended (their edge tokens are refused).
 */
export const integrationMigrations: SchemaMigrations = {
  schema: INTEGRATION_SCHEMA,
  migrations: [
    {
      id: "0001_integration",
      sql: `
CREATE TABLE integration.sender_apps (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  fields jsonb NOT NULL DEFAULT '[]',
  encryption_required boolean NOT NULL DEFAULT false,
  key_digest bytea NOT NULL UNIQUE,
  key_prefix text NOT NULL,
  key_version integer NOT NULL DEFAULT 0,
  retired_before integer NOT NULL DEFAULT 0,
  master_secrets jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE integration.destinations (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('rest', 'sql', 'nats', 'corpus')),
  config jsonb NOT NULL,
  sealed_secret text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE integration.workflows (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  current_version integer NOT NULL,
  kind text NOT NULL,
  source_app_id text,
  source_mqtt_id text,
  retention_hours integer NOT NULL DEFAULT 168,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);
CREATE INDEX workflows_app_idx ON integration.workflows (source_app_id) WHERE source_app_id IS NOT NULL;
CREATE INDEX workflows_mqtt_idx ON integration.workflows (source_mqtt_id) WHERE source_mqtt_id IS NOT NULL;

CREATE TABLE integration.workflow_versions (
  workflow_id text NOT NULL REFERENCES integration.workflows (id) ON DELETE CASCADE,
  version integer NOT NULL,
  definition jsonb NOT NULL,
  created_by text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, version)
);

CREATE TABLE integration.mqtt_sources (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  url text NOT NULL,
  username text NOT NULL DEFAULT '',
  sealed_password text,
  topics jsonb NOT NULL,
  qos integer NOT NULL,
  format text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE integration.messages (
  tenant_id text NOT NULL,
  source text NOT NULL,
  dedupe_key text NOT NULL,
  message_id uuid NOT NULL,
  accepted_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, source, dedupe_key)
);
CREATE INDEX messages_accepted_idx ON integration.messages (accepted_at);

CREATE SEQUENCE integration.execution_ticks;
CREATE TABLE integration.executions (
  id uuid PRIMARY KEY,
  tenant_id text NOT NULL,
  message_id uuid NOT NULL,
  workflow_id text NOT NULL,
  workflow_version integer NOT NULL,
  target text NOT NULL,
  destination_id text NOT NULL DEFAULT '',
  step text NOT NULL DEFAULT '',
  status text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  latency_ms integer NOT NULL DEFAULT 0,
  error text NOT NULL DEFAULT '',
  detail jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  tick bigint NOT NULL DEFAULT nextval('integration.execution_ticks'),
  UNIQUE (message_id, workflow_id, target)
);
CREATE INDEX executions_tenant_idx ON integration.executions (tenant_id, updated_at DESC, id);
CREATE INDEX executions_tick_idx ON integration.executions (tick);
`,
    },
    processedEventsMigration(INTEGRATION_SCHEMA),
    {
      // Ingress publishes accepted messages straight to the bus: a claim is written first
      // (published = false) and marked once the bus holds the message, so a retry of a message
      // whose publish failed publishes it again instead of answering "duplicate" for nothing.
      // Workflows can be paused (enabled = false: their messages wait on the bus); paused_by
      // names a tenant offboarding saga that paused them (its compensation resumes only those).
      id: "0002_direct_ingress",
      sql: `
ALTER TABLE integration.messages ADD COLUMN published boolean NOT NULL DEFAULT true;
ALTER TABLE integration.workflows ADD COLUMN enabled boolean NOT NULL DEFAULT true;
ALTER TABLE integration.workflows ADD COLUMN paused_by text;
`,
    },
    {
      // Edge agents (docs/edge.md): the SHA-256 digest of the token (never the token), the
      // sender apps assigned, and what the agent last reported (`status`, `last_seen_at`).
      // A name is unique among the tenant's active (not revoked) agents.
      id: "0003_edge_agents",
      sql: `
CREATE TABLE integration.edge_agents (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  token_digest bytea NOT NULL UNIQUE,
  token_prefix text NOT NULL,
  app_ids text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  last_seen_at timestamptz,
  status jsonb
);
CREATE UNIQUE INDEX edge_agents_name_idx ON integration.edge_agents (tenant_id, name) WHERE revoked_at IS NULL;
CREATE INDEX edge_agents_tenant_idx ON integration.edge_agents (tenant_id, name);
-- Tenants suspended (auth's TenantSuspended, cleared by TenantResumed): their edge tokens are refused.
CREATE TABLE integration.suspended_tenants (
  tenant_id text PRIMARY KEY,
  suspended_at timestamptz NOT NULL
);
`,
    },
    {
      // Objects declared by a Kubernetes resource (Workflow, Destination, SenderApp of the Nexus
      // operator): the resource's name, "" when not managed. Edits through the API are refused.
      id: "0004_integration_kubernetes_managed",
      sql: `
ALTER TABLE integration.sender_apps ADD COLUMN kubernetes_resource text NOT NULL DEFAULT '';
ALTER TABLE integration.destinations ADD COLUMN kubernetes_resource text NOT NULL DEFAULT '';
ALTER TABLE integration.workflows ADD COLUMN kubernetes_resource text NOT NULL DEFAULT '';
`,
    },
  ],
};
