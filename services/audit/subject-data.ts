import type { Queryable } from "../kernel/db/ports.js";
import { type Subject, type SubjectDataContributor, subjectActors } from "../kernel/governance/index.js";

/**
 * The audit entries naming the subject: acting as it (a key; for a user its token, sign-in
 * sessions and owned keys) or about it (the user, its keys, the key, the session).
 */
function naming(subject: Subject): string {
  switch (subject.scope) {
    case "key":
      return "(actor_key_id = $2 OR (resource_type = 'api_key' AND resource_id = $2))";
    case "user":
      return "(actor_key_id = ANY($3::text[]) OR (resource_type = 'user' AND resource_id = $2) OR (resource_type = 'api_key' AND resource_id = ANY($3::text[])))";
    case "session":
      return "(resource_type = 'session' AND resource_id = $2)";
  }
}

async function entries(q: Queryable, tenantId: string, subject: Subject) {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT id::text AS id, sequence::text AS sequence, occurred_at, event_type, actor_kind, actor_key_id, actor_name, actor_role, action,
            resource_type, resource_id, outcome, request_id, before, after, metadata
     FROM audit.entries WHERE tenant_id = $1 AND ${naming(subject)} ORDER BY sequence`,
    subject.scope === "user" ? [tenantId, subject.id, subjectActors(subject)] : [tenantId, subject.id],
  );
  return rows;
}

/**
 * The audit trail's part of data-subject requests (docs/governance.md#data-subject-requests):
 * every entry naming the subject. An erase removes none of them — the trail is append-only and
 * hash-chained, and it is the record that the processing (including this erasure) happened;
 * entries hold ids, actions and outcomes, never content (the redaction rules drop secrets).
 * They are counted as kept, with that reason, in the request's summary.
 */
export function auditSubjectContributor(): SubjectDataContributor {
  return {
    part: "audit",
    export: entries,
    async erase(db, tenantId, subject) {
      const kept = (await entries(db, tenantId, subject)).length;
      return {
        removed: 0,
        kept,
        ...(kept > 0
          ? { note: "audit entries are kept: the trail is append-only and hash-chained, and records the processing itself" }
          : {}),
      };
    },
  };
}
