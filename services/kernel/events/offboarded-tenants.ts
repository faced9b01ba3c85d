import type { Logger } from "pino";
import type { Queryable } from "../db/ports.js";
import type { EventBus, ObservedEvent } from "./ports.js";

/**
 * Consumers skip the events of an offboarded tenant (docs/event-sourcing.md, "Tenant
 * offboarding"): once the tenant's offboarding saga has passed its point of no return (its
 * keys shredded; delete-data follows), a delivered event of that tenant is acknowledged
 * without running the handler — otherwise a consumer still catching up (metering's plan copy,
 * an ingestion worker mid-document) would write the tenant's rows again after delete-data.
 *
 * The status is read from the saga's own events (`platform.events`, by the saga starts) and
 * cached per process: "offboarded" for good (it cannot be undone), "not offboarded" until a
 * `TenantSuspended` or a saga step past the point of no return of that tenant is observed on
 * the bus (every offboarding starts with both), or at most `ttlMs` (default 30 s) should the
 * feed miss one. A skip is logged once per tenant and counted as the outcome "skipped".
 *
 * A handler that ran for a second or more (a document mid-ingestion) checks again, uncached,
 * before it commits, and its writes are rolled back if the tenant was offboarded meanwhile.
 * Residual window: a shorter handler that passed the check just before the point of no return
 * (or before this process observed it) may still commit, after delete-data if that was quicker.
 */

/** The saga whose point of no return marks a tenant offboarded (services/runtime/tenant-offboarding.ts). */
export const TENANT_OFFBOARDING_SAGA = "tenant-offboarding";

const STEP_COMPLETED = "nexus.sagas.v1.SagaStepCompleted";

/** Whether a tenant has been offboarded, cached. */
export interface OffboardedTenants {
  /** `fresh`: read the log now, whatever is cached. */
  isOffboarded(tenantId: string, options?: { fresh?: boolean }): Promise<boolean>;
  /** Drops what is cached about a tenant (the next check reads the log). */
  invalidate(tenantId: string): void;
  /** Logs once per tenant that its events are skipped. */
  noteSkipped(tenantId: string, consumer: string): void;
  /** Starts invalidating from the bus's events (idempotent). */
  watch(bus: EventBus): Promise<void>;
  close(): Promise<void>;
}

/**
 * True when the tenant's offboarding saga completed a point-of-no-return step. Looks through
 * the saga starts (a small partial index, `events_saga_starts_idx`: the type is a literal so
 * the planner can use it), then each candidate saga's own stream — never the tenant's events.
 */
export async function tenantOffboarded(q: Queryable, tenantId: string): Promise<boolean> {
  const { rows } = await q.query<{ offboarded: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM platform.events s
        WHERE s.type = 'nexus.sagas.v1.SagaStarted' AND s.payload->>'name' = $2 AND s.payload->>'tenantId' = $1
          AND EXISTS (SELECT 1 FROM platform.events c
                       WHERE c.stream_id = s.stream_id AND c.type = $3 AND c.payload->>'pointOfNoReturn' = 'true')
     ) AS offboarded`,
    [tenantId, TENANT_OFFBOARDING_SAGA, STEP_COMPLETED],
  );
  return rows[0]?.offboarded === true;
}

export function createOffboardedTenants(db: Queryable, logger: Logger, options: { ttlMs?: number } = {}): OffboardedTenants {
  const ttlMs = options.ttlMs ?? 30_000;
  const cache = new Map<string, { offboarded: boolean; at: number }>();
  const logged = new Set<string>();
  let watching: Promise<{ stop(): Promise<void> } | undefined> | undefined;

  const onEvent = (e: ObservedEvent): void => {
    const tenantId = e.metadata.tenantId ?? (e.payload as { tenantId?: unknown } | undefined)?.tenantId;
    if (typeof tenantId === "string" && tenantId) cache.delete(tenantId);
  };

  // While the feed is down, what was not offboarded may have become so: read the log again.
  const forgetUnlessOffboarded = (live: boolean): void => {
    if (live) return;
    for (const [tenantId, v] of cache) if (!v.offboarded) cache.delete(tenantId);
  };

  return {
    async isOffboarded(tenantId, options) {
      const hit = cache.get(tenantId);
      if (hit && (hit.offboarded || (options?.fresh !== true && Date.now() - hit.at < ttlMs))) return hit.offboarded;
      const offboarded = await tenantOffboarded(db, tenantId);
      cache.set(tenantId, { offboarded, at: Date.now() });
      if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
      return offboarded;
    },
    invalidate(tenantId) {
      cache.delete(tenantId);
    },
    noteSkipped(tenantId, consumer) {
      if (logged.has(tenantId)) return;
      logged.add(tenantId);
      logger.info({ tenantId, consumer }, "tenant offboarded: its events are acknowledged without running consumers' handlers");
    },
    watch(bus) {
      watching ??= Promise.all([
        bus.observe({ subject: "auth.tenant_suspended", handler: onEvent, onStateChange: forgetUnlessOffboarded }),
        bus.observe({ subject: "saga.step_completed", handler: onEvent, onStateChange: forgetUnlessOffboarded }),
      ])
        .then(([a, b]) => ({
          async stop() {
            await Promise.allSettled([a.stop(), b.stop()]);
          },
        }))
        .catch((err: unknown) => {
          logger.warn({ err }, "cannot observe tenant suspensions; offboarded tenants are re-checked every ttl");
          return undefined;
        });
      return watching.then(() => undefined);
    },
    async close() {
      await (await watching)?.stop();
    },
  };
}
