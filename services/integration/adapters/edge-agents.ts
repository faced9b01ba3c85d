import type { Queryable } from "../../kernel/db/ports.js";

/** What an edge agent reports about itself (GetEdgeConfig's `status`), as stored. */
export interface EdgeStatusRow {
  queueDepth: number;
  queueBytes: number;
  oldestQueuedAgeSeconds: number;
  /** ISO time of the agent's previous sync, or null. */
  lastSyncAt: string | null;
  forwardedTotal: number;
  failedTotal: number;
}

/** An edge agent row (the token's digest is never read back). */
export interface EdgeRow {
  id: string;
  tenantId: string;
  name: string;
  tokenPrefix: string;
  appIds: string[];
  createdAt: Date;
  revokedAt: Date | null;
  lastSeenAt: Date | null;
  status: EdgeStatusRow | null;
}

const COLUMNS = "id, tenant_id, name, token_prefix, app_ids, created_at, revoked_at, last_seen_at, status";

function edge(r: Record<string, unknown>): EdgeRow {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    name: r.name as string,
    tokenPrefix: r.token_prefix as string,
    appIds: (r.app_ids as string[] | null) ?? [],
    createdAt: new Date(r.created_at as string),
    revokedAt: r.revoked_at ? new Date(r.revoked_at as string) : null,
    lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at as string) : null,
    status: (r.status as EdgeStatusRow | null) ?? null,
  };
}

/** The `integration.edge_agents` queries. Every query of tenant data names the tenant. */
export const edgeStore = {
  async insert(q: Queryable, e: Pick<EdgeRow, "id" | "tenantId" | "name" | "tokenPrefix" | "appIds">, digest: Buffer): Promise<EdgeRow> {
    const r = await q.query(
      `INSERT INTO integration.edge_agents (id, tenant_id, name, token_digest, token_prefix, app_ids)
       VALUES ($1, $2, $3, $4, $5, $6::text[]) RETURNING ${COLUMNS}`,
      [e.id, e.tenantId, e.name, digest, e.tokenPrefix, e.appIds],
    );
    return edge(r.rows[0] as Record<string, unknown>);
  },
  async get(q: Queryable, tenantId: string, id: string, lock = false): Promise<EdgeRow | undefined> {
    const r = await q.query(`SELECT ${COLUMNS} FROM integration.edge_agents WHERE tenant_id = $1 AND id = $2${lock ? " FOR UPDATE" : ""}`, [
      tenantId,
      id,
    ]);
    return r.rows[0] ? edge(r.rows[0]) : undefined;
  },
  /** The agent a token belongs to, and whether its tenant is suspended. */
  async byDigest(q: Queryable, digest: Buffer): Promise<(EdgeRow & { tenantSuspended: boolean }) | undefined> {
    const r = await q.query(
      `SELECT ${COLUMNS}, EXISTS (SELECT 1 FROM integration.suspended_tenants s WHERE s.tenant_id = e.tenant_id) AS tenant_suspended
       FROM integration.edge_agents e WHERE token_digest = $1`,
      [digest],
    );
    const row = r.rows[0];
    return row ? { ...edge(row), tenantSuspended: row.tenant_suspended === true } : undefined;
  },
  /** Records auth's TenantSuspended / TenantResumed (the integration-tenant-status consumer). */
  async setSuspended(q: Queryable, tenantId: string, suspended: boolean, at: Date): Promise<void> {
    if (suspended)
      await q.query(
        "INSERT INTO integration.suspended_tenants (tenant_id, suspended_at) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
        [tenantId, at],
      );
    else await q.query("DELETE FROM integration.suspended_tenants WHERE tenant_id = $1", [tenantId]);
  },
  async list(q: Queryable, tenantId: string, includeRevoked: boolean): Promise<EdgeRow[]> {
    const r = await q.query(
      `SELECT ${COLUMNS} FROM integration.edge_agents WHERE tenant_id = $1${includeRevoked ? "" : " AND revoked_at IS NULL"} ORDER BY name, created_at`,
      [tenantId],
    );
    return r.rows.map(edge);
  },
  async setApps(q: Queryable, tenantId: string, id: string, appIds: string[]): Promise<EdgeRow> {
    const r = await q.query(
      `UPDATE integration.edge_agents SET app_ids = $3::text[] WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [tenantId, id, appIds],
    );
    return edge(r.rows[0] as Record<string, unknown>);
  },
  async revoke(q: Queryable, tenantId: string, id: string, at: Date): Promise<EdgeRow> {
    const r = await q.query(
      `UPDATE integration.edge_agents SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [tenantId, id, at],
    );
    return edge(r.rows[0] as Record<string, unknown>);
  },
  /** Records a call of the agent: when, and (from a sync) what it reported. */
  async seen(q: Queryable, id: string, at: Date, status?: EdgeStatusRow): Promise<void> {
    if (status) {
      await q.query("UPDATE integration.edge_agents SET last_seen_at = $2, status = $3::jsonb WHERE id = $1", [
        id,
        at,
        JSON.stringify(status),
      ]);
      return;
    }
    // A forward: at most one write a second per agent.
    await q.query(
      "UPDATE integration.edge_agents SET last_seen_at = $2::timestamptz WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2::timestamptz - interval '1 second')",
      [id, at],
    );
  },
  /** Which of `appIds` are sender apps of the tenant. */
  async existingApps(q: Queryable, tenantId: string, appIds: string[]): Promise<Set<string>> {
    const r = await q.query("SELECT id FROM integration.sender_apps WHERE tenant_id = $1 AND id = ANY($2::text[])", [tenantId, appIds]);
    return new Set(r.rows.map((row) => row.id as string));
  },
  /** The assigned apps that still exist, with their key digests (GetEdgeConfig). */
  async assignedApps(q: Queryable, tenantId: string, appIds: string[]) {
    const r = await q.query(
      "SELECT id, key_digest, encryption_required FROM integration.sender_apps WHERE tenant_id = $1 AND id = ANY($2::text[]) ORDER BY id",
      [tenantId, appIds],
    );
    return r.rows.map((row) => ({
      appId: row.id as string,
      keyDigest: new Uint8Array(row.key_digest as Buffer),
      encryptionRequired: row.encryption_required as boolean,
    }));
  },
};
