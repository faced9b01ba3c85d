import { type EntitlementOverrides, NO_OVERRIDES } from "../../kernel/authz/plans.js";
import type { Versioned } from "../../kernel/commands/index.js";
import type { PlanName, TenantRole } from "../../kernel/context.js";
import { PG_ERRORS, pgErrorCode, pgErrorConstraint } from "../../kernel/db/pg-error.js";
import type { Database, Tx } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import type { ApiKey, KeyKind } from "../domain/api-key.js";
import type { Tenant } from "../domain/tenant.js";
import type {
  ApiKeyQuery,
  AuthStore,
  AuthTransaction,
  ConsoleSession,
  Credentials,
  StateRepository,
  TenantQuery,
  TenantView,
} from "../ports.js";
import {
  identityProviderRows,
  identityQueries,
  identityTransactionReads,
  sessionQueries,
  sessionRows,
  userRows,
} from "./postgres-identity.js";

interface TenantRow {
  id: string;
  slug: string;
  display_name: string;
  plan: PlanName;
  status: Tenant["status"];
  overrides: unknown;
  suspension_reason: string;
  created_at: Date;
  updated_at: Date;
  suspended_at: Date | null;
  version: number;
}

interface ApiKeyRow {
  id: string;
  kind: KeyKind;
  tenant_id: string | null;
  name: string;
  role: TenantRole | null;
  secret_sha256: Uint8Array;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  reactivated_at: Date | null;
  revoked_at: Date | null;
  revocation_reason: string;
  successor_key_id: string;
  predecessor_key_id: string;
  grace_ends_at: Date | null;
  created_by_key_id: string;
  owner_user_id: string;
  version: number;
}

const TENANT_COLUMNS = "id, slug, display_name, plan, status, overrides, suspension_reason, created_at, updated_at, suspended_at, version";
const KEY_COLUMNS =
  "id, kind, tenant_id, name, role, secret_sha256, created_at, expires_at, last_used_at, reactivated_at, revoked_at, " +
  "revocation_reason, successor_key_id, predecessor_key_id, grace_ends_at, created_by_key_id, version, owner_user_id";

interface SessionRow {
  id: string;
  key_id: string;
  created_at: Date;
  expires_at: Date;
}

const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
const optionalDate = (v: Date | string | null): Date | undefined => (v === null ? undefined : date(v));

function toConsoleSession(r: SessionRow): ConsoleSession {
  return { id: r.id, keyId: r.key_id, createdAt: date(r.created_at), expiresAt: date(r.expires_at) };
}

function overridesFromJson(json: unknown): EntitlementOverrides {
  if (typeof json !== "object" || json === null) return NO_OVERRIDES;
  const o = json as Partial<EntitlementOverrides>;
  return {
    features: Array.isArray(o.features) ? o.features : [],
    ...(typeof o.monthlyRunAllowance === "number" ? { monthlyRunAllowance: o.monthlyRunAllowance } : {}),
    ...(o.unlimitedRuns === true ? { unlimitedRuns: true } : {}),
    ...(typeof o.maxActiveApiKeys === "number" ? { maxActiveApiKeys: o.maxActiveApiKeys } : {}),
  };
}

function toTenant(r: TenantRow): Tenant {
  return {
    id: r.id,
    slug: r.slug,
    displayName: r.display_name,
    plan: r.plan,
    status: r.status,
    overrides: overridesFromJson(r.overrides),
    suspensionReason: r.suspension_reason,
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
    suspendedAt: optionalDate(r.suspended_at),
  };
}

function toTenantView(r: TenantRow): TenantView {
  return { ...toTenant(r), version: r.version };
}

function toApiKey(r: ApiKeyRow): ApiKey {
  return {
    id: r.id,
    kind: r.kind,
    tenantId: r.tenant_id ?? "",
    name: r.name,
    role: r.role ?? undefined,
    digest: new Uint8Array(r.secret_sha256),
    createdAt: date(r.created_at),
    expiresAt: optionalDate(r.expires_at),
    lastUsedAt: optionalDate(r.last_used_at),
    reactivatedAt: optionalDate(r.reactivated_at),
    revokedAt: optionalDate(r.revoked_at),
    revocationReason: r.revocation_reason,
    successorKeyId: r.successor_key_id,
    predecessorKeyId: r.predecessor_key_id,
    graceEndsAt: optionalDate(r.grace_ends_at),
    createdByKeyId: r.created_by_key_id,
    ownerUserId: r.owner_user_id ?? "",
  };
}

/**
 * SQL expression of a key's status at `$now` with the inactivity limit `$inactivity_ms`
 * (0 = none); mirrors `keyStatus` in domain/api-key.ts.
 */
function statusSql(now: string, inactivityMs: string): string {
  return `CASE
    WHEN revoked_at IS NOT NULL OR grace_ends_at <= ${now} THEN 'revoked'
    WHEN expires_at <= ${now} THEN 'expired'
    WHEN ${inactivityMs} > 0 AND greatest(created_at, last_used_at, reactivated_at) + ${inactivityMs} * interval '1 millisecond' <= ${now} THEN 'inactive'
    WHEN grace_ends_at IS NOT NULL THEN 'rotating'
    ELSE 'active' END`;
}

/** Tenant state rows: one per tenant, `version` = its stream's version. */
const tenantRows: StateRepository<Tenant> = {
  async load(tx, tenantId) {
    const { rows } = await tx.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM auth.tenants WHERE id = $1 FOR UPDATE`, [tenantId]);
    const row = rows[0];
    return row ? { state: toTenant(row), version: row.version } : { state: undefined, version: 0 };
  },
  async save(tx, t, expectedVersion, version) {
    try {
      await tx.query(
        `INSERT INTO auth.tenants (${TENANT_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::timestamptz, $9::timestamptz, $10::timestamptz, $11)
         ON CONFLICT (id) DO UPDATE SET
           display_name = EXCLUDED.display_name, plan = EXCLUDED.plan, status = EXCLUDED.status,
           overrides = EXCLUDED.overrides, suspension_reason = EXCLUDED.suspension_reason,
           updated_at = EXCLUDED.updated_at, suspended_at = EXCLUDED.suspended_at, version = EXCLUDED.version
         WHERE auth.tenants.version = $12`,
        [
          t.id,
          t.slug,
          t.displayName,
          t.plan,
          t.status,
          JSON.stringify(t.overrides),
          t.suspensionReason,
          t.createdAt,
          t.updatedAt,
          t.suspendedAt ?? null,
          version,
          expectedVersion,
        ],
      );
    } catch (err) {
      if (pgErrorCode(err) === PG_ERRORS.UNIQUE_VIOLATION && pgErrorConstraint(err) === "tenants_slug_key") {
        throw domainError("ALREADY_EXISTS", `a tenant with slug "${t.slug}" already exists`, { slug: t.slug }, { cause: err });
      }
      throw err;
    }
  },
};

/** API key state rows: one per key, `version` = its stream's version. */
const apiKeyRows: StateRepository<ApiKey> = {
  async load(tx, keyId) {
    const { rows } = await tx.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM auth.api_keys WHERE id = $1 FOR UPDATE`, [keyId]);
    const row = rows[0];
    return row ? { state: toApiKey(row), version: row.version } : { state: undefined, version: 0 };
  },
  async save(tx, k, expectedVersion, version) {
    // last_used_at is not event-sourced (authentication touches it); the update leaves it alone.
    await tx.query(
      `INSERT INTO auth.api_keys (${KEY_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz, $9::timestamptz, $10::timestamptz,
               $11::timestamptz, $12, $13, $14, $15::timestamptz, $16, $17, $19)
       ON CONFLICT (id) DO UPDATE SET
         role = EXCLUDED.role, reactivated_at = EXCLUDED.reactivated_at, revoked_at = EXCLUDED.revoked_at,
         revocation_reason = EXCLUDED.revocation_reason, successor_key_id = EXCLUDED.successor_key_id,
         grace_ends_at = EXCLUDED.grace_ends_at, version = EXCLUDED.version
       WHERE auth.api_keys.version = $18`,
      [
        k.id,
        k.kind,
        k.tenantId === "" ? null : k.tenantId,
        k.name,
        k.role ?? null,
        Buffer.from(k.digest),
        k.createdAt,
        k.expiresAt ?? null,
        k.lastUsedAt ?? null,
        k.reactivatedAt ?? null,
        k.revokedAt ?? null,
        k.revocationReason,
        k.successorKeyId,
        k.predecessorKeyId,
        k.graceEndsAt ?? null,
        k.createdByKeyId,
        version,
        expectedVersion,
        k.ownerUserId,
      ],
    );
  },
};

function transactionOf(tx: Tx): AuthTransaction {
  return {
    tx,
    ...identityTransactionReads(tx),
    async countActiveKeys(tenantId, now) {
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM auth.api_keys
         WHERE tenant_id = $1 AND revoked_at IS NULL AND grace_ends_at IS NULL
           AND (expires_at IS NULL OR expires_at > $2::timestamptz)`,
        [tenantId, now],
      );
      return rows[0]?.n ?? 0;
    },
    async markInstallationStep(name) {
      const { rowCount } = await tx.query("INSERT INTO auth.installation (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);
      return rowCount > 0;
    },
    async installationStepDone(name) {
      const { rows } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM auth.installation WHERE name = $1", [name]);
      return (rows[0]?.n ?? 0) > 0;
    },
    async hasUsablePlatformKey(now) {
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM auth.api_keys
         WHERE kind = 'platform' AND revoked_at IS NULL
           AND (grace_ends_at IS NULL OR grace_ends_at > $1::timestamptz)
           AND (expires_at IS NULL OR expires_at > $1::timestamptz)`,
        [now],
      );
      return (rows[0]?.n ?? 0) > 0;
    },
  };
}

/** The auth store on PostgreSQL or PGlite (schema `auth`, events in `platform.events`). */
export function createPostgresAuthStore(db: Database): AuthStore {
  const getTenant = async (tenantId: string) => {
    const { rows } = await db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM auth.tenants WHERE id = $1`, [tenantId]);
    return rows[0] ? toTenantView(rows[0]) : undefined;
  };
  return {
    ...identityQueries(db, getTenant),
    ...sessionQueries(db),
    sessions: sessionRows,
    users: userRows,
    identityProviders: identityProviderRows,
    transaction: (fn) => db.transaction((tx) => fn(transactionOf(tx))),
    tenants: tenantRows,
    apiKeys: apiKeyRows,
    getTenant,
    async getTenantBySlug(slug) {
      const { rows } = await db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM auth.tenants WHERE slug = $1`, [slug]);
      return rows[0] ? toTenantView(rows[0]) : undefined;
    },
    async listTenants(q: TenantQuery) {
      const params: unknown[] = [];
      const where: string[] = [];
      if (q.status) where.push(`status = $${params.push(q.status)}`);
      if (q.plan) where.push(`plan = $${params.push(q.plan)}`);
      if (q.after) {
        const c = params.push(q.after.createdAt);
        const i = params.push(q.after.id);
        where.push(`(created_at, id) > ($${c}::timestamptz, $${i})`);
      }
      const limit = params.push(q.pageSize);
      const { rows } = await db.query<TenantRow>(
        `SELECT ${TENANT_COLUMNS} FROM auth.tenants ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at, id LIMIT $${limit}`,
        params,
      );
      return rows.map(toTenantView);
    },
    async getApiKey(keyId) {
      const { rows } = await db.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM auth.api_keys WHERE id = $1`, [keyId]);
      return rows[0] ? toApiKey(rows[0]) : undefined;
    },
    async listApiKeys(q: ApiKeyQuery) {
      const params: unknown[] = [];
      const where: string[] = q.kind === "platform" ? ["kind = 'platform'"] : [`tenant_id = $${params.push(q.tenantId ?? "")}`];
      if (q.statuses.length > 0) {
        const now = `$${params.push(q.now)}::timestamptz`;
        const inactivity = `$${params.push(q.inactivityMs)}::bigint`;
        where.push(`${statusSql(now, inactivity)} = ANY($${params.push([...q.statuses])}::text[])`);
      }
      if (q.before) {
        const c = params.push(q.before.createdAt);
        const i = params.push(q.before.id);
        where.push(`(created_at, id) < ($${c}::timestamptz, $${i})`);
      }
      const limit = params.push(q.pageSize);
      const { rows } = await db.query<ApiKeyRow>(
        `SELECT ${KEY_COLUMNS} FROM auth.api_keys WHERE ${where.join(" AND ")}
         ORDER BY created_at DESC, id DESC LIMIT $${limit}`,
        params,
      );
      return rows.map(toApiKey);
    },
    async createConsoleSession(session) {
      await db.query("INSERT INTO auth.console_sessions (id, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)", [
        session.id,
        session.keyId,
        session.createdAt,
        session.expiresAt,
      ]);
    },

    async consoleSession(id, now) {
      const { rows } = await db.query<SessionRow>(
        "SELECT id, key_id, created_at, expires_at FROM auth.console_sessions WHERE id = $1 AND expires_at > $2",
        [id, now],
      );
      return rows[0] ? toConsoleSession(rows[0]) : undefined;
    },

    async deleteConsoleSession(id) {
      const { rows } = await db.query<SessionRow>(
        "DELETE FROM auth.console_sessions WHERE id = $1 RETURNING id, key_id, created_at, expires_at",
        [id],
      );
      return rows[0] ? toConsoleSession(rows[0]) : undefined;
    },

    async deleteEndedConsoleSessions(now) {
      const { rowCount } = await db.query("DELETE FROM auth.console_sessions WHERE expires_at <= $1", [now]);
      return rowCount;
    },

    async credentials(keyId): Promise<Credentials> {
      const { rows } = await db.query<ApiKeyRow & { [K in keyof TenantRow as `t_${K}`]: TenantRow[K] | null }>(
        `SELECT k.id, k.kind, k.tenant_id, k.name, k.role, k.secret_sha256, k.created_at, k.expires_at, k.last_used_at,
                k.reactivated_at, k.revoked_at, k.revocation_reason, k.successor_key_id, k.predecessor_key_id,
                k.grace_ends_at, k.created_by_key_id, k.version, k.owner_user_id,
                t.id AS t_id, t.slug AS t_slug, t.display_name AS t_display_name, t.plan AS t_plan,
                t.status AS t_status, t.overrides AS t_overrides, t.suspension_reason AS t_suspension_reason,
                t.created_at AS t_created_at, t.updated_at AS t_updated_at, t.suspended_at AS t_suspended_at,
                t.version AS t_version
         FROM auth.api_keys k LEFT JOIN auth.tenants t ON t.id = k.tenant_id
         WHERE k.id = $1`,
        [keyId],
      );
      const r = rows[0];
      if (!r) return { key: undefined, tenant: undefined };
      const tenant =
        r.t_id === null
          ? undefined
          : toTenant({
              id: r.t_id,
              slug: r.t_slug as string,
              display_name: r.t_display_name as string,
              plan: r.t_plan as PlanName,
              status: r.t_status as Tenant["status"],
              overrides: r.t_overrides,
              suspension_reason: r.t_suspension_reason as string,
              created_at: r.t_created_at as Date,
              updated_at: r.t_updated_at as Date,
              suspended_at: r.t_suspended_at,
              version: r.t_version as number,
            });
      return { key: toApiKey(r), tenant };
    },
    async touchLastUsed(keyId, at, minIntervalMs) {
      await db.query(
        `UPDATE auth.api_keys SET last_used_at = $2::timestamptz
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2::timestamptz - $3::bigint * interval '1 millisecond')`,
        [keyId, at, minIntervalMs],
      );
    },
    async rotationsDue(now, limit) {
      const { rows } = await db.query<{ id: string }>(
        `SELECT id FROM auth.api_keys
         WHERE revoked_at IS NULL AND grace_ends_at IS NOT NULL AND grace_ends_at <= $1::timestamptz
         ORDER BY grace_ends_at LIMIT $2`,
        [now, limit],
      );
      return rows.map((r) => r.id);
    },
  };
}

/** The columns of `auth.tenants`, for projection rebuilds (services/auth/tenant-projection.ts). */
export const TENANT_TABLE_COLUMNS: readonly string[] = TENANT_COLUMNS.split(", ");

/**
 * Writes rebuilt tenant rows into `target` (`auth.tenants` or its rebuild shadow, a trusted
 * identifier): upserts `rows` by id with every column, deletes the ids in `gone`.
 */
export async function writeTenantRows(tx: Tx, target: string, rows: readonly Versioned<Tenant>[], gone: readonly string[]): Promise<void> {
  if (gone.length > 0) await tx.query(`DELETE FROM ${target} WHERE id = ANY($1::text[])`, [[...gone]]);
  const present = rows.filter((r): r is { state: Tenant; version: number } => r.state !== undefined);
  for (let i = 0; i < present.length; i += 500) {
    const params: unknown[] = [];
    const values = present.slice(i, i + 500).map(({ state: t, version }) => {
      const n = params.push(
        t.id,
        t.slug,
        t.displayName,
        t.plan,
        t.status,
        JSON.stringify(t.overrides),
        t.suspensionReason,
        t.createdAt,
        t.updatedAt,
        t.suspendedAt ?? null,
        version,
      );
      const b = n - 11;
      return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}::jsonb, $${b + 7}, $${b + 8}::timestamptz, $${b + 9}::timestamptz, $${b + 10}::timestamptz, $${b + 11})`;
    });
    const update = TENANT_TABLE_COLUMNS.filter((c) => c !== "id").map((c) => `${c} = EXCLUDED.${c}`);
    await tx.query(
      `INSERT INTO ${target} (${TENANT_COLUMNS}) VALUES ${values.join(", ")} ON CONFLICT (id) DO UPDATE SET ${update.join(", ")}`,
      params,
    );
  }
}
