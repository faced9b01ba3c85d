import { WorkflowChangedSchema } from "../../gen/nexus/events/v1/integration_events_pb.js";
import { recordFacts } from "../kernel/commands/index.js";
import type { Database, Tx } from "../kernel/db/ports.js";
import { eventOf } from "../kernel/events/index.js";
import { store, type WorkflowRow } from "./adapters/postgres.js";

async function integrationInstalled(tx: Tx): Promise<boolean> {
  const { rows } = await tx.query<{ t: string | null }>("SELECT to_regclass('integration.workflows')::text AS t");
  return Boolean(rows[0]?.t);
}

async function change(db: Database, tenantId: string, by: string, enabled: boolean): Promise<string[]> {
  return db.transaction(async (tx) => {
    if (!(await integrationInstalled(tx))) return [];
    const { rows } = enabled
      ? await tx.query("SELECT * FROM integration.workflows WHERE tenant_id = $1 AND NOT enabled AND paused_by = $2 FOR UPDATE", [
          tenantId,
          by,
        ])
      : await tx.query("SELECT * FROM integration.workflows WHERE tenant_id = $1 AND enabled FOR UPDATE", [tenantId]);
    const ids: string[] = [];
    for (const r of rows as { id: string; name: string; current_version: number }[]) {
      await store.setWorkflowEnabled(tx, tenantId, r.id, enabled, by);
      await recordFacts(
        tx,
        `integration_workflow-${r.id}`,
        [
          eventOf(WorkflowChangedSchema, {
            tenantId,
            workflowId: r.id,
            change: enabled ? "enabled" : "disabled",
            name: r.name,
            version: r.current_version,
          }),
        ],
        { metadata: { tenantId, actor: by } },
      );
      ids.push(r.id);
    }
    return ids;
  });
}

/**
 * Pauses every running workflow of a tenant on behalf of `by` (`saga:<id>` of its offboarding):
 * their messages wait on the bus, none is delivered; every integration replica stops their
 * consumers at its next reconcile (within 2 s). Each pause is a `WorkflowChanged` "disabled"
 * event (audited). Idempotent; nothing when integration's schema does not exist. The ids paused.
 */
export function pauseTenantWorkflows(db: Database, tenantId: string, by: string): Promise<WorkflowRow["id"][]> {
  return change(db, tenantId, by, false);
}

/** Resumes the workflows of a tenant that `by` paused (and no others). The ids resumed. */
export function resumeTenantWorkflows(db: Database, tenantId: string, by: string): Promise<WorkflowRow["id"][]> {
  return change(db, tenantId, by, true);
}
