import type { TenantRole } from "../../kernel/context.js";
import { PG_ERRORS, pgErrorCode, pgErrorConstraint } from "../../kernel/db/pg-error.js";
import type { Database, Queryable } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import type { IdentityProviderConfig } from "../domain/identity-provider.js";
import type { Session } from "../domain/session.js";
import type { Tenant } from "../domain/tenant.js";
import type { Membership, User } from "../domain/user.js";
import type { MemberQuery, SignInAttempt, StateRepository } from "../ports.js";

/**
 * People and identity providers on PostgreSQL/PGlite (schema `auth`): the user aggregate's row
 * with its memberships (rewritten with the row), and each tenant's OpenID Connect provider.
 */

interface UserRow {
  id: string;
  email: string;
  display_name: string;
  platform_operator: boolean;
  created_at: Date;
  version: number;
  memberships: { tenant_id: string; role: TenantRole; joined_at: string }[] | null;
}

interface ProviderRow {
  tenant_id: string;
  issuer: string;
  audience: string;
  client_id: string;
  client_secret_sealed: string;
  scopes: string[];
  allowed_redirect_hosts: string[];
  clock_skew_seconds: number;
  user_claim: string;
  groups_claim: string;
  jit_enabled: boolean;
  default_role: TenantRole;
  group_roles: Record<string, TenantRole>;
  enabled: boolean;
  jwks_uri: string;
  authorization_endpoint: string;
  token_endpoint: string;
  updated_at: Date;
  version: number;
}

const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

const USER_SELECT = `SELECT u.id, u.email, u.display_name, u.platform_operator, u.created_at, u.version,
  (SELECT json_agg(json_build_object('tenant_id', m.tenant_id, 'role', m.role, 'joined_at', m.joined_at) ORDER BY m.tenant_id)
     FROM auth.memberships m WHERE m.user_id = u.id) AS memberships
  FROM auth.users u`;

const PROVIDER_COLUMNS =
  "tenant_id, issuer, audience, client_id, client_secret_sealed, scopes, allowed_redirect_hosts, clock_skew_seconds, " +
  "user_claim, groups_claim, jit_enabled, default_role, group_roles, enabled, jwks_uri, authorization_endpoint, token_endpoint, updated_at, version";

function toUser(r: UserRow): User {
  const memberships: Membership[] = (r.memberships ?? []).map((m) => ({
    tenantId: m.tenant_id,
    role: m.role,
    joinedAt: date(m.joined_at),
  }));
  return {
    id: r.id,
    email: r.email,
    displayName: r.display_name,
    platformOperator: r.platform_operator,
    createdAt: date(r.created_at),
    memberships,
  };
}

function toProvider(r: ProviderRow): IdentityProviderConfig {
  return {
    tenantId: r.tenant_id,
    issuer: r.issuer,
    audience: r.audience,
    clientId: r.client_id,
    clientSecretSealed: r.client_secret_sealed,
    scopes: r.scopes,
    allowedRedirectHosts: r.allowed_redirect_hosts,
    clockSkewSeconds: r.clock_skew_seconds,
    userClaim: r.user_claim,
    groupsClaim: r.groups_claim,
    jitEnabled: r.jit_enabled,
    defaultRole: r.default_role,
    groupRoles: r.group_roles,
    enabled: r.enabled,
    jwksUri: r.jwks_uri,
    authorizationEndpoint: r.authorization_endpoint,
    tokenEndpoint: r.token_endpoint,
    updatedAt: date(r.updated_at),
  };
}

/** User rows: `auth.users` plus the user's `auth.memberships`, `version` = its stream's version. */
export const userRows: StateRepository<User> = {
  async load(tx, userId) {
    const { rows } = await tx.query<{ version: number }>("SELECT version FROM auth.users WHERE id = $1 FOR UPDATE", [userId]);
    if (!rows[0]) return { state: undefined, version: 0 };
    const user = await readUser(tx, userId);
    return { state: user, version: rows[0].version };
  },
  async save(tx, u, expectedVersion, version) {
    try {
      const { rowCount } = await tx.query(
        `INSERT INTO auth.users (id, email, display_name, platform_operator, created_at, version)
         VALUES ($1, $2, $3, $4, $5::timestamptz, $6)
         ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name, platform_operator = EXCLUDED.platform_operator,
           version = EXCLUDED.version
         WHERE auth.users.version = $7`,
        [u.id, u.email, u.displayName, u.platformOperator, u.createdAt, version, expectedVersion],
      );
      if (rowCount === 0) {
        throw domainError("CONCURRENCY_CONFLICT", `user-${u.id} changed concurrently: retry`, { stream_id: `user-${u.id}` });
      }
    } catch (err) {
      if (pgErrorCode(err) === PG_ERRORS.UNIQUE_VIOLATION && pgErrorConstraint(err) === "users_email_key") {
        throw domainError("ALREADY_EXISTS", "a user with this e-mail was created at the same moment: retry", {}, { cause: err });
      }
      throw err;
    }
    // The memberships are part of the aggregate's row: rewritten with it.
    await tx.query("DELETE FROM auth.memberships WHERE user_id = $1", [u.id]);
    for (const m of u.memberships) {
      await tx.query("INSERT INTO auth.memberships (tenant_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4::timestamptz)", [
        m.tenantId,
        u.id,
        m.role,
        m.joinedAt,
      ]);
    }
  },
};

async function readUser(q: Queryable, userId: string): Promise<User | undefined> {
  const { rows } = await q.query<UserRow>(`${USER_SELECT} WHERE u.id = $1`, [userId]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

/** Identity provider rows: one per tenant (the aggregate's key is the tenant id). */
export const identityProviderRows: StateRepository<IdentityProviderConfig> = {
  async load(tx, tenantId) {
    const { rows } = await tx.query<ProviderRow>(
      `SELECT ${PROVIDER_COLUMNS} FROM auth.identity_providers WHERE tenant_id = $1 FOR UPDATE`,
      [tenantId],
    );
    const row = rows[0];
    return row ? { state: toProvider(row), version: row.version } : { state: undefined, version: 0 };
  },
  async save(tx, p, expectedVersion, version) {
    await tx.query(
      `INSERT INTO auth.identity_providers (${PROVIDER_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16, $17, $18::timestamptz, $19)
       ON CONFLICT (tenant_id) DO UPDATE SET issuer = EXCLUDED.issuer, audience = EXCLUDED.audience, client_id = EXCLUDED.client_id,
         client_secret_sealed = EXCLUDED.client_secret_sealed, scopes = EXCLUDED.scopes,
         allowed_redirect_hosts = EXCLUDED.allowed_redirect_hosts, clock_skew_seconds = EXCLUDED.clock_skew_seconds,
         user_claim = EXCLUDED.user_claim, groups_claim = EXCLUDED.groups_claim, jit_enabled = EXCLUDED.jit_enabled,
         default_role = EXCLUDED.default_role, group_roles = EXCLUDED.group_roles, enabled = EXCLUDED.enabled,
         jwks_uri = EXCLUDED.jwks_uri, authorization_endpoint = EXCLUDED.authorization_endpoint,
         token_endpoint = EXCLUDED.token_endpoint, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
       WHERE auth.identity_providers.version = $20`,
      [
        p.tenantId,
        p.issuer,
        p.audience,
        p.clientId,
        p.clientSecretSealed,
        [...p.scopes],
        [...p.allowedRedirectHosts],
        p.clockSkewSeconds,
        p.userClaim,
        p.groupsClaim,
        p.jitEnabled,
        p.defaultRole,
        JSON.stringify(p.groupRoles),
        p.enabled,
        p.jwksUri,
        p.authorizationEndpoint,
        p.tokenEndpoint,
        p.updatedAt,
        version,
        expectedVersion,
      ],
    );
  },
};

/** Reads of people and providers outside transactions. */
export function identityQueries(db: Database, tenantOf: (id: string) => Promise<Tenant | undefined>) {
  return {
    getUser: (userId: string) => readUser(db, userId),
    async getUserByEmail(email: string) {
      const { rows } = await db.query<UserRow>(`${USER_SELECT} WHERE u.email = $1`, [email]);
      return rows[0] ? toUser(rows[0]) : undefined;
    },
    async directoryGroupsOf(tenantId: string, userId: string) {
      const { rows } = await db.query<{ names: string[] | null }>(
        `SELECT (SELECT array_agg(n ORDER BY n) FROM auth.scim_group_members m
                   JOIN auth.scim_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                   CROSS JOIN LATERAL unnest(array_remove(ARRAY[g.display_name, g.external_id], NULL)) n
                  WHERE m.tenant_id = u.tenant_id AND m.user_id = u.user_id) AS names
         FROM auth.scim_users u WHERE u.tenant_id = $1 AND u.user_id = $2`,
        [tenantId, userId],
      );
      const row = rows[0];
      return row ? [...new Set(row.names ?? [])] : undefined;
    },
    async listMembers(q: MemberQuery) {
      const params: unknown[] = [q.tenantId];
      let after = "";
      if (q.after) {
        const e = params.push(q.after.email);
        const i = params.push(q.after.id);
        after = `AND (u.email, u.id) > ($${e}, $${i})`;
      }
      const limit = params.push(q.pageSize);
      const { rows } = await db.query<UserRow>(
        `${USER_SELECT} WHERE u.id IN (SELECT user_id FROM auth.memberships WHERE tenant_id = $1) ${after}
         ORDER BY u.email, u.id LIMIT $${limit}`,
        params,
      );
      return rows.map(toUser);
    },
    async getIdentityProvider(tenantId: string) {
      const { rows } = await db.query<ProviderRow>(`SELECT ${PROVIDER_COLUMNS} FROM auth.identity_providers WHERE tenant_id = $1`, [
        tenantId,
      ]);
      return rows[0] ? toProvider(rows[0]) : undefined;
    },
    async identityProvidersByIssuer(issuer: string) {
      const { rows } = await db.query<ProviderRow>(
        `SELECT ${PROVIDER_COLUMNS} FROM auth.identity_providers WHERE issuer = $1 AND enabled ORDER BY tenant_id LIMIT 20`,
        [issuer],
      );
      const out: { provider: IdentityProviderConfig; tenant: Tenant }[] = [];
      for (const row of rows) {
        const tenant = await tenantOf(row.tenant_id);
        if (tenant) out.push({ provider: toProvider(row), tenant });
      }
      return out;
    },
  };
}

/** Transaction reads the people use cases need. */
export function identityTransactionReads(tx: Queryable) {
  return {
    async userIdByEmail(email: string) {
      const { rows } = await tx.query<{ id: string }>("SELECT id FROM auth.users WHERE email = $1", [email]);
      return rows[0]?.id;
    },
    async ownedUnrevokedKeyIds(userId: string, tenantId: string) {
      const { rows } = await tx.query<{ id: string }>(
        "SELECT id FROM auth.api_keys WHERE owner_user_id = $1 AND tenant_id = $2 AND revoked_at IS NULL ORDER BY id",
        [userId, tenantId],
      );
      return rows.map((r) => r.id);
    },
    async liveSessionIds(userId: string, tenantId: string, now: Date) {
      const { rows } = await tx.query<{ id: string }>(
        "SELECT id FROM auth.sessions WHERE tenant_id = $1 AND user_id = $2 AND ended_at IS NULL AND expires_at > $3::timestamptz ORDER BY id",
        [tenantId, userId, now],
      );
      return rows.map((r) => r.id);
    },
  };
}

interface SessionRow {
  id: string;
  tenant_id: string;
  user_id: string;
  groups: string[];
  secret_sha256: Uint8Array;
  created_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  version: number;
}

const SESSION_COLUMNS = "id, tenant_id, user_id, groups, secret_sha256, created_at, expires_at, ended_at, version";

function toSession(r: SessionRow): Session {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    userId: r.user_id,
    groups: r.groups,
    digest: new Uint8Array(r.secret_sha256),
    createdAt: date(r.created_at),
    expiresAt: date(r.expires_at),
    endedAt: r.ended_at === null ? undefined : date(r.ended_at),
  };
}

/** Session rows: one per sign-in, `version` = its stream's version. */
export const sessionRows: StateRepository<Session> = {
  async load(tx, sessionId) {
    const { rows } = await tx.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM auth.sessions WHERE id = $1 FOR UPDATE`, [sessionId]);
    const row = rows[0];
    return row ? { state: toSession(row), version: row.version } : { state: undefined, version: 0 };
  },
  async save(tx, s, expectedVersion, version) {
    await tx.query(
      `INSERT INTO auth.sessions (${SESSION_COLUMNS})
       VALUES ($1, $2, $3, $4::text[], $5, $6::timestamptz, $7::timestamptz, $8::timestamptz, $9)
       ON CONFLICT (id) DO UPDATE SET ended_at = EXCLUDED.ended_at, version = EXCLUDED.version
       WHERE auth.sessions.version = $10`,
      [
        s.id,
        s.tenantId,
        s.userId,
        [...s.groups],
        Buffer.from(s.digest),
        s.createdAt,
        s.expiresAt,
        s.endedAt ?? null,
        version,
        expectedVersion,
      ],
    );
  },
};

/** Reads and sign-in scratch of sessions. */
export function sessionQueries(db: Database) {
  return {
    async getSession(sessionId: string) {
      const { rows } = await db.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM auth.sessions WHERE id = $1`, [sessionId]);
      return rows[0] ? toSession(rows[0]) : undefined;
    },
    async saveSignInAttempt(a: SignInAttempt) {
      // Expired attempts of anyone are swept on the way (the table stays small without a task).
      await db.query("DELETE FROM auth.sign_in_attempts WHERE expires_at < now() - interval '1 hour'");
      await db.query(
        `INSERT INTO auth.sign_in_attempts (state, tenant_id, nonce, code_verifier, callback_uri, return_to, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz)`,
        [a.state, a.tenantId, a.nonce, a.codeVerifier, a.callbackUri, a.returnTo, a.expiresAt],
      );
    },
    async takeSignInAttempt(state: string, now: Date) {
      const { rows } = await db.query<{
        state: string;
        tenant_id: string;
        nonce: string;
        code_verifier: string;
        callback_uri: string;
        return_to: string;
        expires_at: Date;
      }>(
        "DELETE FROM auth.sign_in_attempts WHERE state = $1 RETURNING state, tenant_id, nonce, code_verifier, callback_uri, return_to, expires_at",
        [state],
      );
      const r = rows[0];
      if (!r || date(r.expires_at) <= now) return undefined;
      return {
        state: r.state,
        tenantId: r.tenant_id,
        nonce: r.nonce,
        codeVerifier: r.code_verifier,
        callbackUri: r.callback_uri,
        returnTo: r.return_to,
        expiresAt: date(r.expires_at),
      };
    },
  };
}
