import { advisoryKey } from "../kernel/db/advisory-key.js";
import type { Queryable } from "../kernel/db/ports.js";
import { type ActiveHold, type CustomRetention, keptByTenantHold, newRetentionReport, retentionHolds } from "../kernel/governance/index.js";
import type { Keyring } from "../kernel/keyring/index.js";
import { type AuditCheckpoint, checkpointStatement } from "./ports.js";

const SIGNATURES = "signatures";

/**
 * Whether a checkpoint's signature opens, with the tenant's key, to its statement. Without a
 * configured keyring checkpoints are unsigned, and accepted as stored.
 */
export function checkpointVerifier(keyring: Keyring): (c: AuditCheckpoint) => Promise<boolean> {
  return async (c) => {
    if (!c.signature) return !keyring.configured;
    try {
      return (await keyring.openText({ tenantId: c.tenantId, purpose: SIGNATURES }, c.signature)) === checkpointStatement(c);
    } catch {
      return false;
    }
  };
}

/**
 * The "audit" retention policy (docs/governance.md#retention). The trail is a hash chain, so
 * entries are never removed one by one: the oldest run of entries — all older than the cutoff,
 * none naming a subject under a legal hold, never the chain's head — is summarized into a
 * checkpoint (the last removed entry's sequence and hash, the number removed, their time span
 * and counts per event type), signed by the keyring, and removed in the same transaction. The
 * kept chain verifies from the checkpoint: its first entry's prev_hash is the checkpoint's
 * hash. A tenant hold keeps everything; a hold on a key, user, session or document stops the
 * run at the first entry naming it (entries after it are kept until the hold is released).
 * `anonymize` is refused: entries are evidence, removed behind a checkpoint, never rewritten.
 */
export function auditRetention(keyring: Keyring): CustomRetention {
  return {
    category: "audit",
    target: "audit.entries",
    apply: (db, tenantId, action, cutoff) =>
      db.transaction(async (tx) => {
        const report = newRetentionReport(tenantId, "audit", "audit.entries", action, cutoff);
        // The chain's lock orders the run against appends; the hold lock (retentionHolds) against new holds.
        await tx.query("SELECT pg_advisory_xact_lock($1)", [advisoryKey(`nexus.audit.chain.${tenantId}`)]);
        const expired = await tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM audit.entries WHERE tenant_id = $1 AND occurred_at < $2",
          [tenantId, cutoff],
        );
        report.expired = expired.rows[0]?.n ?? 0;
        if (report.expired === 0) return report;
        if (action === "anonymize") {
          report.skippedReason =
            "audit entries are evidence: they are removed behind a signed checkpoint, never rewritten; set the audit policy to delete";
          return report;
        }
        const { holds, tenantHold, of } = await retentionHolds(tx, tenantId);
        if (tenantHold) return keptByTenantHold(report, tenantHold.hold_id);
        const bounds = await tx.query<{ head: string | null; kept: string | null; held_seq: string | null; last_cp: string | null }>(
          `SELECT (SELECT max(sequence) FROM audit.entries WHERE tenant_id = $1) AS head,
                  (SELECT min(sequence) FROM audit.entries WHERE tenant_id = $1 AND occurred_at >= $2) AS kept,
                  (SELECT min(sequence) FROM audit.entries WHERE tenant_id = $1 AND occurred_at < $2 AND (${NAMES_HELD})) AS held_seq,
                  (SELECT max(sequence) FROM audit.checkpoints WHERE tenant_id = $1) AS last_cp`,
          [tenantId, cutoff, of("key"), of("user"), of("session"), of("document")],
        );
        const b = bounds.rows[0]!;
        const head = Number(b.head ?? 0);
        const lastCheckpoint = Number(b.last_cp ?? 0);
        // The last entry to remove: before the first one still in the window, before the first
        // one a hold covers, and never the head (new entries chain on from it).
        let last = head - 1;
        if (b.kept !== null) last = Math.min(last, Number(b.kept) - 1);
        const heldAt = b.held_seq === null ? undefined : Number(b.held_seq);
        if (heldAt !== undefined) last = Math.min(last, heldAt - 1);
        if (last > lastCheckpoint) {
          const { rows } = await tx.query<{ n: number; first: Date; last: Date; hash: string; types: Record<string, number> }>(
            `SELECT count(*)::int AS n, min(occurred_at) AS first, max(occurred_at) AS last,
                    (SELECT hash FROM audit.entries WHERE tenant_id = $1 AND sequence = $2) AS hash,
                    (SELECT jsonb_object_agg(event_type, n) FROM (SELECT event_type, count(*)::int AS n FROM audit.entries
                       WHERE tenant_id = $1 AND sequence <= $2 GROUP BY event_type) t) AS types
             FROM audit.entries WHERE tenant_id = $1 AND sequence <= $2`,
            [tenantId, last],
          );
          const s = rows[0]!;
          const checkpoint = { tenantId, sequence: last, hash: s.hash, entriesRemoved: s.n };
          const signature = keyring.configured
            ? await (keyring.using ? keyring.using(tx) : keyring).sealText(
                { tenantId, purpose: SIGNATURES },
                checkpointStatement(checkpoint),
              )
            : "";
          await tx.query(
            `INSERT INTO audit.checkpoints (tenant_id, sequence, hash, entries_removed, first_occurred_at, last_occurred_at, event_types, signature)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)`,
            [tenantId, last, s.hash, s.n, s.first, s.last, JSON.stringify(s.types ?? {}), signature],
          );
          await tx.query("SET LOCAL nexus.audit_retention = 'on'");
          const deleted = await tx.query("DELETE FROM audit.entries WHERE tenant_id = $1 AND sequence <= $2", [tenantId, last]);
          await tx.query("SET LOCAL nexus.audit_retention = 'off'");
          report.removed = deleted.rowCount;
        }
        report.held = report.expired - report.removed;
        if (report.held > 0) {
          if (heldAt !== undefined && heldAt <= (b.kept === null ? head : Number(b.kept))) {
            const covering = await holdsNaming(tx, tenantId, heldAt, holds);
            report.heldBy = covering;
            report.skippedReason = `${report.held} kept: entry ${heldAt} names a subject under legal hold ${covering.join(", ")}, and the chain is cut only before it`;
          } else {
            report.skippedReason = `${report.held} kept: the chain's newest entry is never removed, nor what follows an entry still in the window`;
          }
        }
        return report;
      }),
  };
}

/** An entry naming a held subject ($3 keys, $4 users, $5 sessions, $6 documents). */
const NAMES_HELD = `actor_key_id = ANY($3::text[]) OR (resource_type = 'api_key' AND resource_id = ANY($3::text[]))
  OR actor_key_id = ANY(SELECT 'user:' || u FROM unnest($4::text[]) u) OR (resource_type = 'user' AND resource_id = ANY($4::text[]))
  OR (resource_type = 'session' AND resource_id = ANY($5::text[])) OR (resource_type = 'document' AND resource_id = ANY($6::text[]))`;

async function holdsNaming(q: Queryable, tenantId: string, sequence: number, holds: ActiveHold[]): Promise<string[]> {
  const { rows } = await q.query<{ actor_key_id: string; resource_type: string; resource_id: string }>(
    "SELECT actor_key_id, resource_type, resource_id FROM audit.entries WHERE tenant_id = $1 AND sequence = $2",
    [tenantId, sequence],
  );
  const e = rows[0];
  if (!e) return [];
  return holds
    .filter(
      (h) =>
        (h.scope === "key" && (e.actor_key_id === h.subject_id || (e.resource_type === "api_key" && e.resource_id === h.subject_id))) ||
        (h.scope === "user" &&
          (e.actor_key_id === `user:${h.subject_id}` || (e.resource_type === "user" && e.resource_id === h.subject_id))) ||
        (h.scope === "session" && e.resource_type === "session" && e.resource_id === h.subject_id) ||
        (h.scope === "document" && e.resource_type === "document" && e.resource_id === h.subject_id),
    )
    .map((h) => h.hold_id);
}
