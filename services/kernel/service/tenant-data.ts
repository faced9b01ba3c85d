import type { Database, Tx } from "../db/ports.js";
import { assertTenantNotHeld } from "../governance/legal-holds.js";

/**
 * How a service deletes one tenant's rows when the tenant is offboarded (the `delete-data`
 * step of the tenant offboarding saga, services/runtime/tenant-offboarding.ts). A service
 * declares its deleters in `defineService({ dataDeleters })`, beside its migrations: the
 * runtime collects every service's, whatever roles the running process hosts, since they all
 * act on the one database through the service's own schema.
 *
 * A deleter must be idempotent (the saga delivers at least once: it runs again after a crash)
 * and must name only its own service's schema. What a service deliberately keeps is said in
 * `keeps` (and in docs/event-sourcing.md, "Tenant offboarding").
 */
export interface TenantDataDeleter {
  /** Names the deleter in logs and the saga's errors, e.g. "metering". */
  name: string;
  /** Deletes the tenant's rows; resolves to the rows deleted per table. */
  deleteTenantData(db: Database, tenantId: string): Promise<Record<string, number>>;
  /** What the service keeps of an offboarded tenant, and why (documentation). */
  keeps?: string;
}

/** One table a {@link tenantRowsDeleter} empties of the tenant: `schema.table` and the tenant condition. */
export interface TenantRows {
  /** `schema.table`, of the service's own schema. */
  table: string;
  /** The SQL condition selecting the tenant's rows, with the tenant id as `$1`. Default `tenant_id = $1`. */
  where?: string;
}

/**
 * A deleter that deletes the tenant's rows of each table, in the order given (children before
 * the parents they reference), in one transaction — which first checks the tenant's legal
 * holds (`assertTenantNotHeld`, LEGAL_HOLD_ACTIVE): inside the deleting transaction, so a hold
 * placed concurrently either waits for the deletion to commit or stops it (docs/governance.md).
 * `deleted`, when given, runs last in that transaction with the rows deleted per table (e.g. to
 * record the deletion on the event log, so a projection rebuild does not bring the rows back).
 */
export function tenantRowsDeleter(
  name: string,
  tables: readonly TenantRows[],
  keeps?: string,
  deleted?: (tx: Tx, tenantId: string, rows: Record<string, number>) => Promise<void>,
): TenantDataDeleter {
  for (const t of tables) {
    if (!/^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/.test(t.table)) throw new Error(`deleter ${name}: ${t.table} is not schema.table`);
  }
  return {
    name,
    ...(keeps ? { keeps } : {}),
    deleteTenantData: (db, tenantId) =>
      db.transaction(async (tx: Tx) => {
        await assertTenantNotHeld(tx, tenantId, `delete the tenant's ${name} data`);
        const counts: Record<string, number> = {};
        for (const t of tables) {
          // A service whose role was never deployed has no tables here: nothing to delete.
          const { rows } = await tx.query<{ exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [t.table]);
          if (rows[0]?.exists !== true) continue;
          const { rowCount } = await tx.query(`DELETE FROM ${t.table} WHERE ${t.where ?? "tenant_id = $1"}`, [tenantId]);
          counts[t.table] = (counts[t.table] ?? 0) + rowCount;
        }
        await deleted?.(tx, tenantId, counts);
        return counts;
      }),
  };
}
