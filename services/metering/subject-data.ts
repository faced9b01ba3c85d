import type { Queryable } from "../kernel/db/ports.js";
import { type Subject, type SubjectDataContributor, subjectActors } from "../kernel/governance/index.js";

/** The request ids of the runs principals ($2) started in the tenant ($1): through `events_type_tenant_actor_idx`. */
export const RUNS_BY_ACTORS_SQL = `SELECT e.payload->>'requestId' FROM platform.events e
       WHERE e.type = 'nexus.events.v1.RunStarted' AND e.metadata->>'tenant_id' = $1 AND e.metadata->>'actor' = ANY($2::text[])`;
const RUNS_IN_SESSION_SQL = `SELECT e.payload->>'requestId' FROM platform.events e
       WHERE e.type = 'nexus.events.v1.RunStarted' AND e.metadata->>'tenant_id' = $1 AND e.payload->>'sessionId' = $2`;

/**
 * The usage records of the subject's runs: runs started (RunStarted appended) by the key, by
 * a principal acting as the user (its token, sign-in sessions, owned keys), or in the session.
 */
async function usageOf(q: Queryable, tenantId: string, subject: Subject) {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT u.request_id AS "requestId", u.outcome, u.plan, u.run_units AS "runUnits", u.cpu_seconds AS "cpuSeconds",
            u.gpu_seconds AS "gpuSeconds", u.tool_calls AS "toolCalls", u.input_tokens::text AS "inputTokens",
            u.output_tokens::text AS "outputTokens", u.usage_date::text AS "usageDate", u.recorded_at AS "recordedAt"
     FROM metering.usage_records u
     WHERE u.tenant_id = $1 AND u.request_id IN (${subject.scope === "session" ? RUNS_IN_SESSION_SQL : RUNS_BY_ACTORS_SQL})
     ORDER BY u.recorded_at, u.request_id`,
    [tenantId, subject.scope === "session" ? subject.id : subjectActors(subject)],
  );
  return rows;
}

/**
 * Metering's part of data-subject requests (docs/governance.md#data-subject-requests): the
 * usage of the subject's runs. An erase keeps them — they are billing records (ids, counts,
 * units; no content) the tenant's invoices are built from — and says so in the summary.
 */
export function meteringSubjectContributor(): SubjectDataContributor {
  return {
    part: "usage",
    export: usageOf,
    async erase(db, tenantId, subject) {
      const kept = (await usageOf(db, tenantId, subject)).length;
      return {
        removed: 0,
        kept,
        ...(kept > 0 ? { note: "usage records are kept: billing records with ids and counts, no content" } : {}),
      };
    },
  };
}
