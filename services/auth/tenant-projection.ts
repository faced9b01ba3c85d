import type { Versioned } from "../kernel/commands/index.js";
import { rehydrate } from "../kernel/commands/index.js";
import type { Projection } from "../kernel/projections/index.js";
import { TENANT_TABLE_COLUMNS, writeTenantRows } from "./adapters/postgres.js";
import { tenantStreamId } from "./auth-aggregates.js";
import type { Tenant, TenantEvent } from "./domain/tenant.js";
import { evolveTenant } from "./domain/tenant.js";
import { tenantEventFromRecorded } from "./tenant-event-sourcing.js";

const PREFIX = tenantStreamId("");

/** Rehydrates tenants from their full streams (no snapshots: a rebuild trusts only the log). */
const fromLog = {
  streamId: tenantStreamId,
  evolve: (state: Tenant | undefined, event: TenantEvent): Tenant => {
    const next = evolveTenant(state, event);
    if (next === undefined) throw new Error(`${event.type} applied to no tenant`);
    return next;
  },
  eventSourcing: { fromEvent: tenantEventFromRecorded },
};

/**
 * `auth.tenants` as a projection of the `tenant-<id>` streams: each stream replayed through
 * the tenant's `evolve` gives its row (`nexus projections rebuild auth.tenants`).
 */
export const tenantsProjection: Projection = {
  name: "auth.tenants",
  description: "tenant state rows, a projection of the tenant-<id> streams (written in each command's transaction)",
  table: "auth.tenants",
  key: "id",
  columns: TENANT_TABLE_COLUMNS,
  streamPrefix: PREFIX,
  versionColumn: "version",
  async project(tx, target, streamIds) {
    const rows: Versioned<Tenant>[] = [];
    const gone: string[] = [];
    for (const streamId of streamIds) {
      const id = streamId.slice(PREFIX.length);
      const r = await rehydrate(tx, fromLog, id, { useSnapshots: false });
      if (r.state === undefined) gone.push(id);
      else rows.push({ state: r.state, version: r.version });
    }
    await writeTenantRows(tx, target, rows, gone);
  },
};
