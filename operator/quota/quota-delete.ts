import { Code } from "@connectrpc/connect";
import { hasFinalizer, QUOTA_FINALIZER, removeFinalizer } from "../controller/finalizers.js";
import { done, type ReconcileResult } from "../controller/reconcile-result.js";
import type { Quota } from "../crds/types.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { hasCode, type NexusApi } from "../nexus/nexus-api.js";

/** Dependencies of {@link finalizeQuota} and {@link resetTenantQuota}. */
export interface QuotaDeleteDeps {
  quotas: ResourceClient<Quota>;
  nexus: NexusApi;
  recorder: EventRecorder;
}

/**
 * Returns a tenant to its plan's default limits (SetQuota with no limits). A tenant that is
 * already gone needs nothing.
 */
export async function resetTenantQuota(deps: QuotaDeleteDeps, quota: Quota, tenantId: string): Promise<void> {
  try {
    await deps.nexus.metering.setQuota({ tenantId });
    await deps.recorder.record(quota, "Normal", "QuotaReset", `tenant ${tenantId} returned to its plan's default limits`);
  } catch (err) {
    if (!hasCode(err, Code.NotFound)) throw err;
  }
}

/**
 * The Quota finalizer: returns the tenant to its plan's default limits, then releases the
 * object. When another live Quota references the same Tenant (`shared`), its limits stay: that
 * Quota owns them now.
 */
export async function finalizeQuota(deps: QuotaDeleteDeps, quota: Quota, shared = false): Promise<ReconcileResult> {
  if (!hasFinalizer(quota, QUOTA_FINALIZER)) return done();
  const tenantId = quota.status?.tenantId;
  if (tenantId && !shared) await resetTenantQuota(deps, quota, tenantId);
  await removeFinalizer(deps.quotas, quota, QUOTA_FINALIZER);
  return done();
}
