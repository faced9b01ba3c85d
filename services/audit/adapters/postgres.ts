import { advisoryKey } from "../../kernel/db/advisory-key.js";
import type { Database, Queryable, Tx } from "../../kernel/db/ports.js";
import { type ActorKind, type AuditEntry, type AuditOutcome, canonicalJson, type JsonObject } from "../domain/audit-entry.js";
import type { AuditQuery, AuditStore, AuditUnitOfWork, KnownActor } from "../ports.js";

interface EntryRow {
  id: string;
  tenant_id: string;
  sequence: bigint;
  occurred_at: Date;
  event_type: string;
  actor_kind: ActorKind;
  actor_key_id: string;
  actor_name: string;
  actor_role: string;
  action: string;
  resource_type: string;
  resource_id: string;
  outcome: AuditOutcome;
  request_id: string;
  correlation_id: string;
  before: JsonObject | null;
  after: JsonObject | null;
  metadata: JsonObject | null;
  source_event_id: string;
  prev_hash: string;
  hash: string;
}

const COLUMNS =
  "id::text AS id, tenant_id, sequence, occurred_at, event_type, actor_kind, actor_key_id, actor_name, actor_role, action, resource_type, resource_id, outcome, request_id, correlation_id, before, after, metadata, source_event_id, prev_hash, hash";

function toEntry(r: EntryRow): AuditEntry {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    sequence: Number(r.sequence),
    occurredAt: new Date(r.occurred_at),
    eventType: r.event_type,
    actor: { kind: r.actor_kind, keyId: r.actor_key_id, name: r.actor_name, role: r.actor_role },
    action: r.action,
    resource: { type: r.resource_type, id: r.resource_id },
    outcome: r.outcome,
    requestId: r.request_id,
    correlationId: r.correlation_id,
    before: r.before ?? undefined,
    after: r.after ?? undefined,
    metadata: r.metadata ?? undefined,
    sourceEventId: r.source_event_id,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** WHERE clause and parameters of a query; `$1` is always the chain. */
function where(q: AuditQuery, params: unknown[]): string {
  params.push(q.tenantId);
  const conds = ["tenant_id = $1"];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    conds.push(sql.replace("?", `$${params.length}`));
  };
  if (q.eventTypes.length > 0) add("event_type = ANY(?::text[])", [...q.eventTypes]);
  if (q.actorKeyId) add("actor_key_id = ?", q.actorKeyId);
  if (q.outcome) add("outcome = ?", q.outcome);
  if (q.from) add("occurred_at >= ?", q.from);
  if (q.to) add("occurred_at < ?", q.to);
  if (q.resourceType) add("resource_type = ?", q.resourceType);
  if (q.resourceId) add("resource_id = ?", q.resourceId);
  return conds.join(" AND ");
}

// JSON parameters travel as canonical text with an explicit cast (kernel db convention).
const jsonParam = (v: JsonObject | undefined) => (v === undefined ? null : canonicalJson(v));

function unitOfWork(tx: Tx): AuditUnitOfWork {
  return {
    async lockChain(tenantId) {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [advisoryKey(`nexus.audit.chain.${tenantId}`)]);
    },
    async head(tenantId) {
      const { rows } = await tx.query<{ sequence: bigint; hash: string }>(
        "SELECT sequence, hash FROM audit.entries WHERE tenant_id = $1 ORDER BY sequence DESC LIMIT 1",
        [tenantId],
      );
      return rows[0] ? { sequence: Number(rows[0].sequence), hash: rows[0].hash } : undefined;
    },
    async hasSourceEvent(eventId) {
      const { rows } = await tx.query("SELECT 1 FROM audit.entries WHERE source_event_id = $1", [eventId]);
      return rows.length > 0;
    },
    async append(e) {
      await tx.query(
        `INSERT INTO audit.entries (id, tenant_id, sequence, occurred_at, event_type, actor_kind, actor_key_id, actor_name, actor_role,
           action, resource_type, resource_id, outcome, request_id, correlation_id, before, after, metadata, source_event_id, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17::jsonb, $18::jsonb, $19, $20, $21)`,
        [
          e.id,
          e.tenantId,
          e.sequence,
          e.occurredAt,
          e.eventType,
          e.actor.kind,
          e.actor.keyId,
          e.actor.name,
          e.actor.role,
          e.action,
          e.resource.type,
          e.resource.id,
          e.outcome,
          e.requestId,
          e.correlationId,
          jsonParam(e.before),
          jsonParam(e.after),
          jsonParam(e.metadata),
          e.sourceEventId,
          e.prevHash,
          e.hash,
        ],
      );
    },
    async actor(keyId) {
      const { rows } = await tx.query<{ key_id: string; kind: KnownActor["kind"]; name: string; role: string; tenant_id: string }>(
        "SELECT key_id, kind, name, role, tenant_id FROM audit.actors WHERE key_id = $1",
        [keyId],
      );
      const r = rows[0];
      return r ? { keyId: r.key_id, kind: r.kind, name: r.name, role: r.role, tenantId: r.tenant_id } : undefined;
    },
    async saveActor(a) {
      await tx.query(
        `INSERT INTO audit.actors (key_id, kind, name, role, tenant_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key_id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, role = EXCLUDED.role,
           tenant_id = EXCLUDED.tenant_id, updated_at = now()`,
        [a.keyId, a.kind, a.name, a.role, a.tenantId],
      );
    },
    async setActorRole(keyId, role) {
      await tx.query("UPDATE audit.actors SET role = $2, updated_at = now() WHERE key_id = $1", [keyId, role]);
    },
  };
}

async function list(db: Queryable, sql: string, params: unknown[]): Promise<AuditEntry[]> {
  const { rows } = await db.query<EntryRow>(sql, params);
  return rows.map(toEntry);
}

/** The audit trail on PostgreSQL or PGlite (schema `audit`). */
export function createPostgresAuditStore(db: Database): AuditStore {
  return {
    within: unitOfWork,
    listNewestFirst(q, before, limit) {
      const params: unknown[] = [];
      let cond = where(q, params);
      if (before !== undefined) {
        params.push(before);
        cond += ` AND sequence < $${params.length}`;
      }
      params.push(limit);
      return list(db, `SELECT ${COLUMNS} FROM audit.entries WHERE ${cond} ORDER BY sequence DESC LIMIT $${params.length}`, params);
    },
    listOldestFirst(q, after, limit) {
      const params: unknown[] = [];
      let cond = where(q, params);
      params.push(after);
      cond += ` AND sequence > $${params.length}`;
      params.push(limit);
      return list(db, `SELECT ${COLUMNS} FROM audit.entries WHERE ${cond} ORDER BY sequence ASC LIMIT $${params.length}`, params);
    },
    async latestCheckpoint(tenantId) {
      const { rows } = await db.query<{
        sequence: string;
        hash: string;
        entries_removed: number;
        first_occurred_at: Date;
        last_occurred_at: Date;
        event_types: Record<string, number>;
        signature: string;
        created_at: Date;
      }>("SELECT * FROM audit.checkpoints WHERE tenant_id = $1 ORDER BY sequence DESC LIMIT 1", [tenantId]);
      const r = rows[0];
      return r
        ? {
            tenantId,
            sequence: Number(r.sequence),
            hash: r.hash,
            entriesRemoved: r.entries_removed,
            firstOccurredAt: r.first_occurred_at,
            lastOccurredAt: r.last_occurred_at,
            eventTypes: r.event_types,
            signature: r.signature,
            createdAt: r.created_at,
          }
        : undefined;
    },
    chainPage(tenantId, after, limit) {
      return list(db, `SELECT ${COLUMNS} FROM audit.entries WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence ASC LIMIT $3`, [
        tenantId,
        after,
        limit,
      ]);
    },
  };
}
