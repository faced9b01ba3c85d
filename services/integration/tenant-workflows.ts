import { executeInTransaction } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { workflowAggregate } from "./adapters/workflow-aggregate.js";

async function change(db: Database, tenantId: string, by: string, pause: boolean): Promise<string[]> {
  return db.transaction(async (tx) => {
    const { rows: installed } = await tx.query<{ t: string | null }>("SELECT to_regclass('integration.workflows')::text AS t");
    if (!installed[0]?.t) return [];
    const { rows } = await tx.query<{ id: string }>(
      pause
        ? "SELECT id FROM integration.workflows WHERE tenant_id = $1 AND enabled ORDER BY id"
        : "SELECT id FROM integration.workflows WHERE tenant_id = $1 AND NOT enabled AND paused_by = $2 ORDER BY id",
      pause ? [tenantId] : [tenantId, by],
    );
    const changed: string[] = [];
    for (const { id } of rows) {
      const r = await executeInTransaction(
        tx,
        workflowAggregate,
        { tenantId, workflowId: id },
        pause ? { type: "Pause", by } : { type: "Resume", onlyPausedBy: by },
        { metadata: { tenantId, actor: by } },
      );
      if (r.events.length > 0) changed.push(id);
    }
    return changed;
  });
}

/**
 * Pauses every running workflow of a tenant on behalf of `by` (`saga:<id>` of its offboarding),
 * each through the workflow aggregate (a `WorkflowChanged` "disabled" event, audited): their
 * messages wait on the bus, none is delivered; every integration replica stops their consumers
 * at its next reconcile (within 2 s). Idempotent; nothing when integration's schema does not
 * exist. The ids paused.
 */
export function pauseTenantWorkflows(db: Database, tenantId: string, by: string): Promise<string[]> {
  return change(db, tenantId, by, true);
}

/** Resumes the workflows of a tenant that `by` paused (and no others). The ids resumed. */
export function resumeTenantWorkflows(db: Database, tenantId: string, by: string): Promise<string[]> {
  return change(db, tenantId, by, false);
}
