import { Code } from "@connectrpc/connect";
import { ApiKeyStatus } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { hasFinalizer, removeFinalizer, TENANT_FINALIZER } from "../controller/finalizers.js";
import { done, type ReconcileResult } from "../controller/reconcile-result.js";
import type { Tenant } from "../crds/types.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { hasCode, type NexusApi } from "../nexus/nexus-api.js";

/** Dependencies of {@link finalizeTenant}. */
export interface TenantDeleteDeps {
  tenants: ResourceClient<Tenant>;
  nexus: NexusApi;
  recorder: EventRecorder;
}

async function findTenantId(nexus: NexusApi, tenant: Tenant): Promise<string | undefined> {
  if (tenant.status?.tenantId) return tenant.status.tenantId;
  try {
    const found = await nexus.auth.getTenant({ selector: { case: "slug", value: tenant.spec.slug } });
    return found.tenant?.id;
  } catch (err) {
    if (hasCode(err, Code.NotFound)) return undefined;
    throw err;
  }
}

/**
 * The Tenant finalizer: suspends the tenant in Nexus, revokes every key it still has (not only
 * the ones the operator issued), then releases the object. Each step is idempotent, so a retry
 * after a failure redoes only what is left. A tenant that never existed in Nexus is released at once.
 *
 * When another live Tenant object names the same slug (`shared`), the Nexus tenant is not this
 * object's alone: only the keys this object issued are revoked, and the tenant is not suspended.
 */
export async function finalizeTenant(deps: TenantDeleteDeps, tenant: Tenant, shared = false): Promise<ReconcileResult> {
  if (!hasFinalizer(tenant, TENANT_FINALIZER)) return done();
  if (shared) {
    const own = (tenant.status?.apiKeys ?? []).flatMap((k) => (k.keyId ? [k.keyId] : []));
    for (const keyId of own)
      await deps.nexus.auth.revokeApiKey({
        keyId,
        reason: `Tenant ${tenant.metadata.namespace}/${tenant.metadata.name} deleted in Kubernetes`,
      });
    await deps.recorder.record(
      tenant,
      "Normal",
      "TenantReleased",
      `another Tenant object claims slug ${tenant.spec.slug}: the Nexus tenant stays active; ${own.length} API key(s) this object issued revoked`,
    );
    await removeFinalizer(deps.tenants, tenant, TENANT_FINALIZER);
    return done();
  }
  const tenantId = await findTenantId(deps.nexus, tenant);
  if (tenantId) {
    try {
      await deps.nexus.auth.suspendTenant({
        tenantId,
        reason: `Tenant ${tenant.metadata.namespace}/${tenant.metadata.name} deleted in Kubernetes`,
      });
    } catch (err) {
      if (!hasCode(err, Code.NotFound)) throw err;
    }
    let revoked = 0;
    let pageToken = "";
    do {
      const page = await deps.nexus.auth.listApiKeys({
        tenantId,
        pageSize: 200,
        pageToken,
        statuses: [ApiKeyStatus.ACTIVE, ApiKeyStatus.ROTATING, ApiKeyStatus.INACTIVE],
      });
      for (const key of page.apiKeys) {
        await deps.nexus.auth.revokeApiKey({ keyId: key.id, reason: "tenant deleted" });
        revoked += 1;
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    await deps.recorder.record(tenant, "Normal", "TenantFinalized", `tenant ${tenantId} suspended and ${revoked} API key(s) revoked`);
  }
  await removeFinalizer(deps.tenants, tenant, TENANT_FINALIZER);
  return done();
}
