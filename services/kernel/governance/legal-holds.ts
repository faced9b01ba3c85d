import { randomUUID } from "node:crypto";
import { advisoryKey } from "../db/advisory-key.js";
import type { Queryable } from "../db/ports.js";
import { domainError } from "../errors.js";

/** What a legal hold can cover. A `tenant` hold covers everything of the tenant. */
export const HOLD_SCOPES = ["tenant", "document", "session", "user", "key"] as const;
export type HoldScope = (typeof HOLD_SCOPES)[number];

/** One subject a destructive action would touch: a document, a session, a user or a key. */
export interface HoldSubject {
  scope: Exclude<HoldScope, "tenant">;
  id: string;
}

export interface LegalHold {
  holdId: string;
  tenantId: string;
  scope: HoldScope;
  /** Empty for a tenant hold. */
  subjectId: string;
  reason: string;
  placedBy: string;
  placedAt: Date;
  releasedAt: Date | null;
  releasedBy: string;
}

interface HoldRow {
  hold_id: string;
  tenant_id: string;
  scope: HoldScope;
  subject_id: string;
  reason: string;
  placed_by: string;
  placed_at: Date;
  released_at: Date | null;
  released_by: string;
}

const toHold = (r: HoldRow): LegalHold => ({
  holdId: r.hold_id,
  tenantId: r.tenant_id,
  scope: r.scope,
  subjectId: r.subject_id,
  reason: r.reason,
  placedBy: r.placed_by,
  placedAt: r.placed_at,
  releasedAt: r.released_at,
  releasedBy: r.released_by,
});

/** Places a hold. `subjectId` must be empty for a tenant hold and set for every other scope. */
export async function placeLegalHold(
  q: Queryable,
  hold: { tenantId: string; scope: HoldScope; subjectId?: string; reason?: string; placedBy?: string },
): Promise<LegalHold> {
  if (!HOLD_SCOPES.includes(hold.scope)) {
    throw domainError("INVALID_ARGUMENT", `hold scope must be one of ${HOLD_SCOPES.join(", ")}`, { scope: String(hold.scope) });
  }
  const subjectId = hold.scope === "tenant" ? "" : (hold.subjectId ?? "").trim();
  if (hold.scope !== "tenant" && !subjectId) {
    throw domainError("INVALID_ARGUMENT", `a ${hold.scope} hold needs the id of the ${hold.scope}`, { scope: hold.scope });
  }
  if (!hold.tenantId.trim()) throw domainError("INVALID_ARGUMENT", "a legal hold needs a tenant");
  // The exclusive side of the tenant's hold lock: waits for retention batches (and other
  // destructive transactions that took the shared side) in flight, so none deletes what the
  // new hold covers after it committed.
  const { rows } = await q.query<HoldRow>(
    `WITH lock AS (SELECT pg_advisory_xact_lock($7::bigint))
     INSERT INTO platform.legal_holds (hold_id, tenant_id, scope, subject_id, reason, placed_by)
     SELECT $1, $2, $3, $4, $5, $6 FROM lock RETURNING *`,
    [randomUUID(), hold.tenantId, hold.scope, subjectId, hold.reason ?? "", hold.placedBy ?? "", holdLockKey(hold.tenantId)],
  );
  return toHold(rows[0] as HoldRow);
}

/** Releases a hold of the tenant; NOT_FOUND when it does not exist or was already released. */
export async function releaseLegalHold(q: Queryable, tenantId: string, holdId: string, releasedBy = ""): Promise<LegalHold> {
  const { rows } = await q.query<HoldRow>(
    `UPDATE platform.legal_holds SET released_at = now(), released_by = $3
     WHERE tenant_id = $1 AND hold_id = $2 AND released_at IS NULL RETURNING *`,
    [tenantId, holdId, releasedBy],
  );
  if (!rows[0]) throw domainError("NOT_FOUND", `no active legal hold ${holdId} for tenant ${tenantId}`, { hold_id: holdId });
  return toHold(rows[0]);
}

/** The advisory lock between placing a tenant's holds (exclusive) and destroying its data (shared). */
export function holdLockKey(tenantId: string): bigint {
  return advisoryKey(`nexus.legal_hold:${tenantId}`);
}

/** The tenant's holds, newest first (released ones too when `includeReleased`). */
export async function listLegalHolds(q: Queryable, tenantId: string, includeReleased = false): Promise<LegalHold[]> {
  const { rows } = await q.query<HoldRow>(
    `SELECT * FROM platform.legal_holds WHERE tenant_id = $1 ${includeReleased ? "" : "AND released_at IS NULL"}
     ORDER BY placed_at DESC, hold_id`,
    [tenantId],
  );
  return rows.map(toHold);
}

/**
 * The active holds that cover any of `subjects` of the tenant — always including a tenant-wide
 * hold. One indexed query; cheap enough to call before every destructive request.
 */
export async function activeLegalHolds(q: Queryable, tenantId: string, subjects: readonly HoldSubject[] = []): Promise<LegalHold[]> {
  const scopes = subjects.map((s) => s.scope);
  const ids = subjects.map((s) => s.id);
  const { rows } = await q.query<HoldRow>(
    `SELECT h.* FROM platform.legal_holds h
     WHERE h.tenant_id = $1 AND h.released_at IS NULL
       AND (h.scope = 'tenant'
            OR (h.scope, h.subject_id) IN (SELECT * FROM unnest($2::text[], $3::text[])))
     ORDER BY h.placed_at, h.hold_id`,
    [tenantId, scopes, ids],
  );
  return rows.map(toHold);
}

/**
 * The check before destroying everything of a tenant (crypto-shredding its keys, offboarding):
 * refused (LEGAL_HOLD_ACTIVE) while ANY hold of the tenant is active, whatever its scope —
 * destroying the tenant destroys every held document, session, user's and key's data too.
 */
export async function assertTenantNotHeld(q: Queryable, tenantId: string, action: string): Promise<void> {
  await q.query("SELECT pg_advisory_xact_lock_shared($1::bigint)", [holdLockKey(tenantId)]);
  const { rows } = await q.query<HoldRow>(
    "SELECT * FROM platform.legal_holds WHERE tenant_id = $1 AND released_at IS NULL ORDER BY placed_at, hold_id",
    [tenantId],
  );
  const hold = rows[0];
  if (!hold) return;
  throw domainError(
    "LEGAL_HOLD_ACTIVE",
    `cannot ${action}: tenant ${tenantId} has ${rows.length} active legal hold(s) (first: ${hold.hold_id} on ${hold.scope}${hold.subject_id ? ` ${hold.subject_id}` : ""}); release them first`,
    { hold_id: hold.hold_id, scope: hold.scope, subject_id: hold.subject_id, holds: rows.length },
  );
}

/**
 * THE check before anything destructive (DeleteDocument, DeleteSession, key deletion,
 * retention, erasure, tenant offboarding): throws FAILED_PRECONDITION `LEGAL_HOLD_ACTIVE`
 * naming the hold when one covers the tenant or any of `subjects`. `action` names what was
 * refused in the message ("delete session s1"). Call it with the transaction that destroys:
 * it takes the shared side of the tenant's hold lock, so a hold placed meanwhile waits until
 * that transaction committed (and a later destructive transaction sees the hold).
 */
export async function assertNoLegalHold(q: Queryable, tenantId: string, subjects: readonly HoldSubject[], action: string): Promise<void> {
  await q.query("SELECT pg_advisory_xact_lock_shared($1::bigint)", [holdLockKey(tenantId)]);
  const holds = await activeLegalHolds(q, tenantId, subjects);
  const hold = holds[0];
  if (!hold) return;
  const what = hold.scope === "tenant" ? `tenant ${tenantId}` : `${hold.scope} ${hold.subjectId}`;
  throw domainError("LEGAL_HOLD_ACTIVE", `cannot ${action}: a legal hold (${hold.holdId}) covers ${what}; release the hold first`, {
    hold_id: hold.holdId,
    scope: hold.scope,
    subject_id: hold.subjectId,
    holds: holds.length,
  });
}
