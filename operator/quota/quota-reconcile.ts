import type { Logger } from "pino";
import { findCondition } from "../controller/conditions.js";
import { addFinalizer, QUOTA_FINALIZER } from "../controller/finalizers.js";
import { oldestClaimant, sameObject } from "../controller/oldest-claimant.js";
import { type ObjectKey, type ReconcileResult, type Reconciler, requeueAfter } from "../controller/reconcile-result.js";
import { writeStatus } from "../controller/status-writer.js";
import type { Quota, Tenant } from "../crds/types.js";
import { describeKubeError, httpStatus, isConflict, isNotFound } from "../kube/api-errors.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { describeNexusError, type NexusApi } from "../nexus/nexus-api.js";
import { finalizeQuota, resetTenantQuota } from "./quota-delete.js";
import { quotaMatches, setQuotaRequest } from "./quota-spec.js";
import { type QuotaOutcome, quotaStatus } from "./quota-status.js";

/** Dependencies of {@link createQuotaReconciler}. */
export interface QuotaReconcilerDeps {
  quotas: ResourceClient<Quota>;
  tenants: ResourceClient<Tenant>;
  nexus: NexusApi;
  recorder: EventRecorder;
  logger: Logger;
  clock?: () => Date;
  /**
   * The Quota objects in the operator's watch scope (the informer cache), to find other Quotas
   * for the same Tenant. Default: none (no duplicate detection).
   */
  quotasInScope?: () => readonly Quota[];
  /** Usage resync period. Default 60000 ms (the issue's "each minute"). */
  resyncMs?: number;
  /** How soon a Quota waiting for its Tenant looks again. Default 5000 ms. */
  waitRequeueMs?: number;
}

/** Live Quotas other than `quota` in its namespace that reference the same Tenant. */
export function otherQuotasForTenant(all: readonly Quota[], quota: Quota): Quota[] {
  return all.filter(
    (q) =>
      q.metadata.namespace === quota.metadata.namespace &&
      q.spec?.tenantRef?.name === quota.spec.tenantRef.name &&
      !q.metadata.deletionTimestamp &&
      !sameObject(q, quota),
  );
}

/**
 * Whether this generation of the spec was applied by SetQuota to this tenant. The Ready
 * condition records it (reason QuotaApplied with its observedGeneration): comparing limits alone
 * cannot see a limit removed from the spec, since the one still in force looks like a plan default.
 */
function appliedThisGeneration(quota: Quota, tenantId: string, generation: number): boolean {
  const ready = findCondition(quota.status?.conditions, "Ready");
  return (
    quota.status?.tenantId === tenantId &&
    ready?.status === "True" &&
    ready.reason === "QuotaApplied" &&
    ready.observedGeneration === generation
  );
}

/**
 * The Quota reconcile: finds the tenant id through the referenced Tenant object, applies the
 * limits with SetQuota when the spec changed since it was last applied or the quota in force
 * drifted from it, returns a tenant the Quota no longer references to its plan's defaults, and
 * mirrors the day and month windows (usage, SoftCapReached) into status every minute. A second
 * Quota for a Tenant that already has one is Degraded (DuplicateQuota) and applies nothing.
 */
export function createQuotaReconciler(deps: QuotaReconcilerDeps): Reconciler {
  const clock = deps.clock ?? (() => new Date());
  const resyncMs = deps.resyncMs ?? 60_000;
  const waitMs = deps.waitRequeueMs ?? 5_000;
  return {
    kind: "Quota",
    async reconcile(key: ObjectKey): Promise<ReconcileResult> {
      let quota: Quota;
      try {
        quota = await deps.quotas.get(key.namespace, key.name);
      } catch (err) {
        if (isNotFound(err)) return { kind: "done" };
        throw err;
      }
      const siblings = otherQuotasForTenant(deps.quotasInScope?.() ?? [], quota);
      if (quota.metadata.deletionTimestamp) return finalizeQuota(deps, quota, siblings.length > 0);
      quota = await addFinalizer(deps.quotas, quota, QUOTA_FINALIZER);
      const generation = quota.metadata.generation ?? 0;
      const owner = oldestClaimant([quota, ...siblings]);
      if (owner && !sameObject(owner, quota)) {
        const message = `Tenant ${quota.spec.tenantRef.name} already has Quota ${owner.metadata.name}; a tenant has one set of limits: edit that Quota or delete this one`;
        await writeStatus(
          deps.quotas,
          deps.recorder,
          quota,
          quotaStatus(quota.status, { kind: "failed", reason: "DuplicateQuota", message }, generation, clock()),
        );
        return requeueAfter(resyncMs);
      }
      let outcome: QuotaOutcome;
      let thrown: unknown;
      try {
        let tenant: Tenant | undefined;
        try {
          tenant = await deps.tenants.get(key.namespace, quota.spec.tenantRef.name);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        const tenantId = tenant?.status?.tenantId;
        if (!tenant) {
          outcome = {
            kind: "waitingForTenant",
            reason: "TenantNotFound",
            message: `Tenant ${quota.spec.tenantRef.name} does not exist in ${key.namespace}`,
          };
        } else if (!tenantId) {
          const ready = findCondition(tenant.status?.conditions, "Ready");
          outcome = {
            kind: "waitingForTenant",
            reason: "TenantNotReady",
            message: `Tenant ${tenant.metadata.name} has no tenant id yet${ready ? ` (${ready.reason}: ${ready.message})` : ""}`,
          };
        } else {
          const current = await deps.nexus.metering.getQuota({ tenantId });
          let windows = current.windows;
          if (!appliedThisGeneration(quota, tenantId, generation) || !quotaMatches(current.quota, quota.spec)) {
            windows = (await deps.nexus.metering.setQuota(setQuotaRequest(tenantId, quota.spec))).windows;
            await deps.recorder.record(quota, "Normal", "QuotaApplied", `limits applied to tenant ${tenantId}`);
          }
          const previousTenantId = quota.status?.tenantId;
          if (previousTenantId && previousTenantId !== tenantId) {
            // tenantRef moved to another Tenant: the one left behind goes back to its plan.
            await resetTenantQuota(deps, quota, previousTenantId);
          }
          outcome = { kind: "applied", tenantId, windows };
        }
      } catch (err) {
        if (isConflict(err)) throw err;
        thrown = err;
        outcome = {
          kind: "failed",
          ...(httpStatus(err) !== undefined ? { reason: "KubernetesApiError", message: describeKubeError(err) } : describeNexusError(err)),
        };
        deps.logger.warn({ quota: key, reason: outcome.reason, message: outcome.message }, "quota reconcile failed");
      }
      await writeStatus(deps.quotas, deps.recorder, quota, quotaStatus(quota.status, outcome, generation, clock()));
      if (thrown !== undefined) throw thrown;
      return requeueAfter(outcome.kind === "waitingForTenant" ? waitMs : resyncMs);
    },
  };
}
