import type { Migration } from "../kernel/db/migrate.js";
import type { SchemaMigrations } from "../kernel/service/index.js";

/** The auth service's own schema. */
export const AUTH_SCHEMA = "auth";

/**
 * Migrations of the `auth` schema. Forward-only: never edit a released entry, append one.
 *
 * - `tenants`: one row per tenant aggregate (its current state; `version` is the version of
 *   its event stream `tenant-<id>` in platform.events).
 * - `api_keys`: one row per key aggregate (`api_key-<id>`). Only the SHA-256 digest of a key
 *   is stored (`secret_sha256`, 32 bytes), never the plaintext. `last_used_at` is written by
 *   authentication at most about once a minute and is not an event.
 * - `console_sessions`: signed-in browsers of the web console (docs/console.md): the SHA-256
 *   of the session token (never the token), the key it was opened with, and its end. Sign-out
 *   deletes the row; a session is ephemeral access state like `last_used_at`, not an aggregate.
 * - `installation`: one-time installation facts (e.g. that `nexus dev` bootstrapped its demo
 *   tenant), so first-start work happens once.
 * - `users` (stream `user-<id>`), `memberships` (the users' roles per tenant, written with the
 *   user row) and `identity_providers` (stream `identity_provider-<tenant id>`, the client
 *   secret sealed by the keyring); `api_keys.owner_user_id` names the user a key dies with.
 * - `sessions` (stream `session-<id>`): sign-ins through a tenant's OpenID provider, only the
 *   SHA-256 of the token kept. `sign_in_attempts`: the state, nonce and PKCE verifier of a sign-in
 *   in flight — protocol scratch, not domain state: used once (deleted on the callback) or
 *   expired, never an event.
 */
export const AUTH_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_tenants_and_api_keys",
    sql: `
CREATE TABLE auth.tenants (
  id text PRIMARY KEY,
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  display_name text NOT NULL,
  plan text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
  status text NOT NULL CHECK (status IN ('active', 'suspended')),
  overrides jsonb NOT NULL DEFAULT '{"features": []}'::jsonb,
  suspension_reason text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  suspended_at timestamptz,
  version integer NOT NULL CHECK (version >= 1),
  CONSTRAINT tenants_slug_key UNIQUE (slug)
);
CREATE INDEX tenants_created_idx ON auth.tenants (created_at, id);

CREATE TABLE auth.api_keys (
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9-]{1,64}$'),
  kind text NOT NULL CHECK (kind IN ('platform', 'tenant')),
  tenant_id text REFERENCES auth.tenants (id),
  name text NOT NULL,
  role text CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
  secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  last_used_at timestamptz,
  reactivated_at timestamptz,
  revoked_at timestamptz,
  revocation_reason text NOT NULL DEFAULT '',
  successor_key_id text NOT NULL DEFAULT '',
  predecessor_key_id text NOT NULL DEFAULT '',
  grace_ends_at timestamptz,
  created_by_key_id text NOT NULL DEFAULT '',
  version integer NOT NULL CHECK (version >= 1),
  CONSTRAINT api_keys_kind_shape CHECK (
    (kind = 'tenant' AND tenant_id IS NOT NULL AND role IS NOT NULL) OR
    (kind = 'platform' AND tenant_id IS NULL AND role IS NULL)
  )
);
CREATE INDEX api_keys_tenant_idx ON auth.api_keys (tenant_id, created_at DESC, id DESC);
CREATE INDEX api_keys_platform_idx ON auth.api_keys (created_at DESC, id DESC) WHERE kind = 'platform';
CREATE INDEX api_keys_rotation_due_idx ON auth.api_keys (grace_ends_at) WHERE revoked_at IS NULL AND grace_ends_at IS NOT NULL;

CREATE TABLE auth.installation (
  name text PRIMARY KEY,
  done_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    id: "0002_console_sessions",
    sql: `
CREATE TABLE auth.console_sessions (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
  key_id text NOT NULL REFERENCES auth.api_keys (id),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON auth.console_sessions (expires_at);
`,
  },
  {
    id: "0003_users_memberships_identity_providers",
    sql: `
ALTER TABLE auth.api_keys ADD COLUMN owner_user_id text NOT NULL DEFAULT '';
CREATE INDEX api_keys_owner_idx ON auth.api_keys (owner_user_id, tenant_id) WHERE owner_user_id <> '';

CREATE TABLE auth.users (
  id text PRIMARY KEY,
  email text NOT NULL CHECK (email = lower(email)),
  display_name text NOT NULL,
  platform_operator boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE auth.memberships (
  tenant_id text NOT NULL REFERENCES auth.tenants (id),
  user_id text NOT NULL REFERENCES auth.users (id),
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
  joined_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON auth.memberships (user_id);

CREATE TABLE auth.identity_providers (
  tenant_id text PRIMARY KEY REFERENCES auth.tenants (id),
  issuer text NOT NULL,
  audience text NOT NULL,
  client_id text NOT NULL,
  client_secret_sealed text NOT NULL DEFAULT '',
  scopes text[] NOT NULL,
  allowed_redirect_hosts text[] NOT NULL,
  clock_skew_seconds integer NOT NULL CHECK (clock_skew_seconds BETWEEN 0 AND 600),
  user_claim text NOT NULL,
  groups_claim text NOT NULL,
  jit_enabled boolean NOT NULL,
  default_role text NOT NULL CHECK (default_role IN ('owner', 'admin', 'editor', 'viewer')),
  group_roles jsonb NOT NULL,
  enabled boolean NOT NULL,
  jwks_uri text NOT NULL,
  authorization_endpoint text NOT NULL,
  token_endpoint text NOT NULL,
  updated_at timestamptz NOT NULL,
  version integer NOT NULL CHECK (version >= 1)
);
CREATE INDEX identity_providers_issuer_idx ON auth.identity_providers (issuer) WHERE enabled;
`,
  },
  {
    id: "0004_sign_in_sessions",
    sql: `
CREATE TABLE auth.sessions (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES auth.tenants (id),
  user_id text NOT NULL REFERENCES auth.users (id),
  groups text[] NOT NULL,
  secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  ended_at timestamptz,
  version integer NOT NULL CHECK (version >= 1)
);
CREATE INDEX sessions_user_idx ON auth.sessions (user_id, tenant_id) WHERE ended_at IS NULL;

CREATE TABLE auth.sign_in_attempts (
  state text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES auth.tenants (id),
  nonce text NOT NULL,
  code_verifier text NOT NULL,
  callback_uri text NOT NULL,
  return_to text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX sign_in_attempts_expiry_idx ON auth.sign_in_attempts (expires_at);
`,
  },
  {
    id: "0005_scim_provisioning",
    sql: `
-- The tenant's SCIM bearer token (one per tenant; only its SHA-256 is kept). token_id is NULL
-- after a revocation.
CREATE TABLE auth.scim_tokens (
  tenant_id text PRIMARY KEY REFERENCES auth.tenants (id),
  token_id text UNIQUE,
  secret_sha256 bytea CHECK (secret_sha256 IS NULL OR length(secret_sha256) = 32),
  created_at timestamptz NOT NULL,
  version integer NOT NULL CHECK (version >= 1)
);

-- Provisioning data of the people a tenant's directory manages (the user and membership rows
-- stay the truth for access): the SCIM attributes as the directory sent them.
CREATE TABLE auth.scim_users (
  tenant_id text NOT NULL REFERENCES auth.tenants (id),
  user_id text NOT NULL REFERENCES auth.users (id),
  user_name text NOT NULL,
  external_id text,
  active boolean NOT NULL,
  attributes jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  PRIMARY KEY (tenant_id, user_id)
);
CREATE UNIQUE INDEX scim_users_user_name_key ON auth.scim_users (tenant_id, lower(user_name));
CREATE INDEX scim_users_external_id_idx ON auth.scim_users (tenant_id, external_id);

CREATE TABLE auth.scim_groups (
  tenant_id text NOT NULL REFERENCES auth.tenants (id),
  id text NOT NULL,
  display_name text NOT NULL,
  external_id text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX scim_groups_display_name_key ON auth.scim_groups (tenant_id, lower(display_name));

CREATE TABLE auth.scim_group_members (
  tenant_id text NOT NULL,
  group_id text NOT NULL,
  user_id text NOT NULL,
  PRIMARY KEY (tenant_id, group_id, user_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES auth.scim_groups (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, user_id) REFERENCES auth.scim_users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX scim_group_members_user_idx ON auth.scim_group_members (tenant_id, user_id);
`,
  },
];

/** The auth schema and its migrations (applied whenever the service runs). */
export const authMigrations: SchemaMigrations = { schema: AUTH_SCHEMA, migrations: AUTH_MIGRATIONS };
