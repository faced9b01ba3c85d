import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { tenantScope } from "../kernel/authz/tenant-scope.js";
import { rehydrate } from "../kernel/commands/index.js";
import type { Principal } from "../kernel/context.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { admitTemporalQuery, recordTemporalQuery } from "../kernel/events/temporal-queries.js";
import type { BucketStore } from "../kernel/limits/bucket-store.js";
import type { TenantAggregate } from "./auth-aggregates.js";
import type { TenantView } from "./ports.js";

/** A point of a tenant's history: an instant, or a number of its events. */
export type HistoryPoint = { asOf: Date } | { version: number };

/** Options of {@link TenantHistory}. */
export interface TenantHistoryOptions {
  db: Database;
  tenants: TenantAggregate;
  /** Temporal-query buckets (shared by replicas on PostgreSQL). */
  buckets: BucketStore;
  logger: Logger;
}

/**
 * Temporal reads of the tenant aggregate (GetTenantAt): the tenant rebuilt from its stream as
 * it was at an instant or after N events, under the rules of every temporal query (kernel
 * temporal-queries.ts): the caller's tenant only, 10 calls a minute per key, audited.
 */
export class TenantHistory {
  constructor(private readonly options: TenantHistoryOptions) {}

  async at(actor: Principal, requestedTenantId: string, point: HistoryPoint): Promise<TenantView> {
    const tenantId = tenantScope(actor, requestedTenantId);
    await admitTemporalQuery(this.options.buckets, actor.keyId);
    const started = performance.now();
    const r = await rehydrate(
      this.options.db,
      this.options.tenants,
      tenantId,
      "asOf" in point ? { asOf: point.asOf } : { toVersion: point.version },
    );
    const durationMs = performance.now() - started;
    await recordTemporalQuery(this.options.db, this.options.logger, {
      tenantId,
      keyId: actor.keyId,
      query: "GetTenantAt",
      streamId: this.options.tenants.streamId(tenantId),
      ...("asOf" in point ? { to: point.asOf } : { atVersion: point.version }),
      durationMs,
      scanned: r.replayed,
      partial: false,
    });
    if (r.state === undefined) throw domainError("NOT_FOUND", "the tenant did not exist at that point", { tenant_id: tenantId });
    return { ...r.state, version: r.version };
  }
}
