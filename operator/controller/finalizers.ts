import type { CommonStatus, NexusResource } from "../crds/types.js";
import type { ResourceClient } from "../kube/resource-client.js";

/** Tenant finalizer: deleting a Tenant suspends it in Nexus and revokes its keys before the object goes. */
export const TENANT_FINALIZER = "nexus.dev/tenant-cleanup";
/** Quota finalizer: deleting a Quota returns the tenant to its plan's default limits. */
export const QUOTA_FINALIZER = "nexus.dev/quota-reset";
/** Failover finalizer: deleting a running Failover unfreezes writes and releases the failover Lease. */
export const FAILOVER_FINALIZER = "nexus.dev/failover-cleanup";
/** Workflow, Destination and SenderApp finalizer: deleting the resource deletes the object in the integration service. */
export const INTEGRATION_FINALIZER = "nexus.dev/integration-cleanup";

/** Whether the object carries the finalizer. */
export function hasFinalizer(obj: NexusResource<unknown, CommonStatus>, finalizer: string): boolean {
  return (obj.metadata.finalizers ?? []).includes(finalizer);
}

/**
 * Adds the finalizer (conditional on the resourceVersion read: a concurrent writer makes this
 * a 409 and the reconcile is retried) and returns the updated object.
 */
export async function addFinalizer<T extends NexusResource<unknown, CommonStatus>>(
  client: ResourceClient<T>,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  return client.patch(obj.metadata.namespace, obj.metadata.name, {
    metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: [...(obj.metadata.finalizers ?? []), finalizer] },
  });
}

/** Removes the finalizer (conditionally, as {@link addFinalizer}); the API server then deletes the object. */
export async function removeFinalizer<T extends NexusResource<unknown, CommonStatus>>(
  client: ResourceClient<T>,
  obj: T,
  finalizer: string,
): Promise<void> {
  if (!hasFinalizer(obj, finalizer)) return;
  await client.patch(obj.metadata.namespace, obj.metadata.name, {
    metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer) },
  });
}
