import { PG_ERRORS, pgErrorCode } from "../../kernel/db/pg-error.js";
import type { Queryable } from "../../kernel/db/ports.js";
import type { ScimTokenState } from "../domain/scim-token.js";
import type { StateRepository } from "../ports.js";

/**
 * SCIM provisioning data on PostgreSQL/PGlite (schema `auth`, migration 0005): the tenant's
 * SCIM token row (the token aggregate's state), and the users and groups a tenant's directory
 * provisions with the attributes it sent. Memberships, keys and sessions stay in their own
 * aggregates; these rows only remember what the directory said.
 */

const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

interface TokenRow {
  tenant_id: string;
  token_id: string | null;
  secret_sha256: Uint8Array | null;
  created_at: Date;
  version: number;
}

const toToken = (r: TokenRow): ScimTokenState => ({
  tenantId: r.tenant_id,
  tokenId: r.token_id ?? undefined,
  digest: r.secret_sha256 ?? undefined,
  createdAt: date(r.created_at),
});

/** The SCIM token rows: one per tenant, `version` = its stream's version. */
export const scimTokenRows: StateRepository<ScimTokenState> = {
  async load(tx, tenantId) {
    const { rows } = await tx.query<TokenRow>("SELECT * FROM auth.scim_tokens WHERE tenant_id = $1 FOR UPDATE", [tenantId]);
    const row = rows[0];
    return row ? { state: toToken(row), version: row.version } : { state: undefined, version: 0 };
  },
  async save(tx, s, expectedVersion, version) {
    await tx.query(
      `INSERT INTO auth.scim_tokens (tenant_id, token_id, secret_sha256, created_at, version) VALUES ($1, $2, $3, $4::timestamptz, $5)
       ON CONFLICT (tenant_id) DO UPDATE SET token_id = EXCLUDED.token_id, secret_sha256 = EXCLUDED.secret_sha256,
         created_at = EXCLUDED.created_at, version = EXCLUDED.version
       WHERE auth.scim_tokens.version = $6`,
      [s.tenantId, s.tokenId ?? null, s.digest ? Buffer.from(s.digest) : null, s.createdAt, version, expectedVersion],
    );
  },
};

/** A user as the tenant's directory provisioned them. */
export interface ScimUserRecord {
  tenantId: string;
  userId: string;
  userName: string;
  externalId: string | undefined;
  active: boolean;
  /** Every other attribute the directory sent (name, emails, extensions, …). */
  attributes: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

/** A group as the tenant's directory provisioned it, with its members' user ids. */
export interface ScimGroupRecord {
  tenantId: string;
  id: string;
  displayName: string;
  externalId: string | undefined;
  members: string[];
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

interface UserRow {
  tenant_id: string;
  user_id: string;
  user_name: string;
  external_id: string | null;
  active: boolean;
  attributes: Record<string, unknown> | string;
  created_at: Date;
  updated_at: Date;
  version: number;
}

interface GroupRow {
  tenant_id: string;
  id: string;
  display_name: string;
  external_id: string | null;
  members: string[] | null;
  created_at: Date;
  updated_at: Date;
  version: number;
}

const toUser = (r: UserRow): ScimUserRecord => ({
  tenantId: r.tenant_id,
  userId: r.user_id,
  userName: r.user_name,
  externalId: r.external_id ?? undefined,
  active: r.active,
  attributes: typeof r.attributes === "string" ? (JSON.parse(r.attributes) as Record<string, unknown>) : r.attributes,
  createdAt: date(r.created_at),
  updatedAt: date(r.updated_at),
  version: r.version,
});

const toGroup = (r: GroupRow): ScimGroupRecord => ({
  tenantId: r.tenant_id,
  id: r.id,
  displayName: r.display_name,
  externalId: r.external_id ?? undefined,
  members: r.members ?? [],
  createdAt: date(r.created_at),
  updatedAt: date(r.updated_at),
  version: r.version,
});

const GROUP_SELECT = `SELECT g.tenant_id, g.id, g.display_name, g.external_id, g.created_at, g.updated_at, g.version,
  ARRAY(SELECT m.user_id FROM auth.scim_group_members m WHERE m.tenant_id = g.tenant_id AND m.group_id = g.id ORDER BY m.user_id) AS members
  FROM auth.scim_groups g`;

/** A group as a member's role mapping reads it. */
export interface ScimGroupName {
  id: string;
  displayName: string;
  externalId: string | undefined;
}

/** A lookup by an indexed attribute (`userName`/`externalId`, `displayName`/`externalId`). */
export interface ScimLookup {
  attribute: string;
  value: string;
}

/** A unique index was hit (userName or displayName taken). */
export class ScimConflict extends Error {}

async function uniquely<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (pgErrorCode(err) === PG_ERRORS.UNIQUE_VIOLATION) throw new ScimConflict((err as Error).message);
    throw err;
  }
}

/** The SCIM reads and writes, on a connection or an open transaction. */
export const scimRows = {
  async tokenById(q: Queryable, tokenId: string): Promise<ScimTokenState | undefined> {
    const { rows } = await q.query<TokenRow>("SELECT * FROM auth.scim_tokens WHERE token_id = $1", [tokenId]);
    return rows[0] ? toToken(rows[0]) : undefined;
  },
  async token(q: Queryable, tenantId: string): Promise<ScimTokenState | undefined> {
    const { rows } = await q.query<TokenRow>("SELECT * FROM auth.scim_tokens WHERE tenant_id = $1", [tenantId]);
    return rows[0] ? toToken(rows[0]) : undefined;
  },

  async user(q: Queryable, tenantId: string, userId: string, forUpdate = false): Promise<ScimUserRecord | undefined> {
    const { rows } = await q.query<UserRow>(
      `SELECT * FROM auth.scim_users WHERE tenant_id = $1 AND user_id = $2${forUpdate ? " FOR UPDATE" : ""}`,
      [tenantId, userId],
    );
    return rows[0] ? toUser(rows[0]) : undefined;
  },
  /** The tenant's users in creation order, narrowed by an indexed equality when given. */
  async users(q: Queryable, tenantId: string, lookup?: ScimLookup): Promise<ScimUserRecord[]> {
    const where =
      lookup === undefined
        ? ""
        : lookup.attribute === "userName"
          ? " AND lower(user_name) = lower($2)"
          : lookup.attribute === "externalId"
            ? " AND external_id = $2"
            : " AND user_id = $2";
    const { rows } = await q.query<UserRow>(
      `SELECT * FROM auth.scim_users WHERE tenant_id = $1${where} ORDER BY created_at, user_id`,
      lookup === undefined ? [tenantId] : [tenantId, lookup.value],
    );
    return rows.map(toUser);
  },
  /** Which of `userIds` are provisioned users of the tenant. */
  async existingUserIds(q: Queryable, tenantId: string, userIds: readonly string[]): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>(
      "SELECT user_id FROM auth.scim_users WHERE tenant_id = $1 AND user_id = ANY($2::text[])",
      [tenantId, [...userIds]],
    );
    return rows.map((r) => r.user_id);
  },
  async usersPage(q: Queryable, tenantId: string, offset: number, limit: number): Promise<{ total: number; items: ScimUserRecord[] }> {
    const [{ rows: count }, { rows }] = await Promise.all([
      q.query<{ n: string | number }>("SELECT count(*) AS n FROM auth.scim_users WHERE tenant_id = $1", [tenantId]),
      q.query<UserRow>("SELECT * FROM auth.scim_users WHERE tenant_id = $1 ORDER BY created_at, user_id OFFSET $2 LIMIT $3", [
        tenantId,
        offset,
        limit,
      ]),
    ]);
    return { total: Number(count[0]?.n ?? 0), items: rows.map(toUser) };
  },
  async insertUser(q: Queryable, u: Omit<ScimUserRecord, "version">): Promise<void> {
    await uniquely(() =>
      q.query(
        `INSERT INTO auth.scim_users (tenant_id, user_id, user_name, external_id, active, attributes, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::timestamptz, $7::timestamptz, 1)`,
        [u.tenantId, u.userId, u.userName, u.externalId ?? null, u.active, JSON.stringify(u.attributes), u.createdAt],
      ),
    );
  },
  async updateUser(q: Queryable, u: ScimUserRecord): Promise<void> {
    await uniquely(() =>
      q.query(
        `UPDATE auth.scim_users SET user_name = $3, external_id = $4, active = $5, attributes = $6::jsonb, updated_at = $7::timestamptz,
           version = version + 1 WHERE tenant_id = $1 AND user_id = $2`,
        [u.tenantId, u.userId, u.userName, u.externalId ?? null, u.active, JSON.stringify(u.attributes), u.updatedAt],
      ),
    );
  },
  async deleteUser(q: Queryable, tenantId: string, userId: string): Promise<void> {
    await q.query("DELETE FROM auth.scim_users WHERE tenant_id = $1 AND user_id = $2", [tenantId, userId]);
  },
  /** The display names of the groups `userId` is a member of (what the role mapping reads). */
  async groupsOf(q: Queryable, tenantId: string, userIds: readonly string[]): Promise<Map<string, ScimGroupName[]>> {
    const out = new Map<string, ScimGroupName[]>();
    if (userIds.length === 0) return out;
    const { rows } = await q.query<{ user_id: string; id: string; display_name: string; external_id: string | null }>(
      `SELECT m.user_id, g.id, g.display_name, g.external_id FROM auth.scim_group_members m
       JOIN auth.scim_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
       WHERE m.tenant_id = $1 AND m.user_id = ANY($2::text[]) ORDER BY g.display_name`,
      [tenantId, [...userIds]],
    );
    for (const r of rows)
      out.set(r.user_id, [
        ...(out.get(r.user_id) ?? []),
        { id: r.id, displayName: r.display_name, externalId: r.external_id ?? undefined },
      ]);
    return out;
  },

  async group(q: Queryable, tenantId: string, id: string, forUpdate = false): Promise<ScimGroupRecord | undefined> {
    if (forUpdate) await q.query("SELECT 1 FROM auth.scim_groups WHERE tenant_id = $1 AND id = $2 FOR UPDATE", [tenantId, id]);
    const { rows } = await q.query<GroupRow>(`${GROUP_SELECT} WHERE g.tenant_id = $1 AND g.id = $2`, [tenantId, id]);
    return rows[0] ? toGroup(rows[0]) : undefined;
  },
  async groups(q: Queryable, tenantId: string, lookup?: ScimLookup): Promise<ScimGroupRecord[]> {
    const where =
      lookup === undefined
        ? ""
        : lookup.attribute === "displayName"
          ? " AND lower(g.display_name) = lower($2)"
          : lookup.attribute === "externalId"
            ? " AND g.external_id = $2"
            : " AND g.id = $2";
    const { rows } = await q.query<GroupRow>(
      `${GROUP_SELECT} WHERE g.tenant_id = $1${where} ORDER BY g.created_at, g.id`,
      lookup === undefined ? [tenantId] : [tenantId, lookup.value],
    );
    return rows.map(toGroup);
  },
  async insertGroup(q: Queryable, g: Omit<ScimGroupRecord, "version" | "members">): Promise<void> {
    await uniquely(() =>
      q.query(
        `INSERT INTO auth.scim_groups (tenant_id, id, display_name, external_id, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5::timestamptz, $5::timestamptz, 1)`,
        [g.tenantId, g.id, g.displayName, g.externalId ?? null, g.createdAt],
      ),
    );
  },
  async updateGroup(q: Queryable, g: Omit<ScimGroupRecord, "version" | "members">): Promise<void> {
    await uniquely(() =>
      q.query(
        `UPDATE auth.scim_groups SET display_name = $3, external_id = $4, updated_at = $5::timestamptz, version = version + 1
         WHERE tenant_id = $1 AND id = $2`,
        [g.tenantId, g.id, g.displayName, g.externalId ?? null, g.updatedAt],
      ),
    );
  },
  async deleteGroup(q: Queryable, tenantId: string, id: string): Promise<void> {
    await q.query("DELETE FROM auth.scim_groups WHERE tenant_id = $1 AND id = $2", [tenantId, id]);
  },
  async setMembers(q: Queryable, tenantId: string, groupId: string, add: readonly string[], remove: readonly string[]): Promise<void> {
    if (remove.length > 0) {
      await q.query("DELETE FROM auth.scim_group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = ANY($3::text[])", [
        tenantId,
        groupId,
        [...remove],
      ]);
    }
    if (add.length > 0) {
      await q.query(
        `INSERT INTO auth.scim_group_members (tenant_id, group_id, user_id) SELECT $1, $2, u FROM unnest($3::text[]) AS u
         ON CONFLICT DO NOTHING`,
        [tenantId, groupId, [...add]],
      );
    }
  },
};
