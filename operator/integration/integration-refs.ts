import { Code } from "@connectrpc/connect";
import type { CoreV1Api, V1Secret } from "@kubernetes/client-node";
import { findCondition } from "../controller/conditions.js";
import type { NexusResource, SecretKeyRef, Tenant } from "../crds/types.js";
import { isNotFound } from "../kube/api-errors.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { hasCode } from "../nexus/nexus-api.js";

/**
 * Something the object needs is not there yet (its Tenant has no id, a referenced Destination or
 * SenderApp is not Ready): Ready=False with the reason, not Degraded, and looked at again soon.
 */
export class WaitingError extends Error {
  override name = "WaitingError";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The spec cannot be applied as the cluster stands (a credential Secret or its key is missing, a
 * Secret the operator did not write is in the way): Degraded=True with the reason.
 */
export class SpecProblemError extends Error {
  override name = "SpecProblemError";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The value of the `kubernetes_resource` marker for an object: "<Kind> <namespace>/<name>". The
 * integration service refuses any edit of the object that does not name it.
 */
export function markerOf(obj: NexusResource<unknown, unknown>): string {
  return `${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`;
}

/** The Nexus tenant id of the Tenant an object references (WaitingError until it has one). */
export async function tenantIdOf(tenants: ResourceClient<Tenant>, namespace: string, name: string): Promise<string> {
  let tenant: Tenant;
  try {
    tenant = await tenants.get(namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new WaitingError("TenantNotFound", `Tenant ${name} does not exist in ${namespace}`);
    throw err;
  }
  const id = tenant.status?.tenantId;
  if (!id) {
    const ready = findCondition(tenant.status?.conditions, "Ready");
    throw new WaitingError("TenantNotReady", `Tenant ${name} has no tenant id yet${ready ? ` (${ready.reason}: ${ready.message})` : ""}`);
  }
  return id;
}

/** A Secret of the namespace, or undefined when there is none. */
export async function readSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A credential read from a Secret, with the Secret's version (a changed Secret is re-applied). */
export interface Credential {
  value: string;
  /** `<name>@<resourceVersion>` of the Secret it came from. */
  version: string;
}

/** Reads `ref` (SpecProblemError SecretNotFound / SecretKeyMissing when it cannot). */
export async function readCredential(core: CoreV1Api, namespace: string, ref: SecretKeyRef, defaultKey: string): Promise<Credential> {
  const key = ref.key ?? defaultKey;
  const secret = await readSecret(core, namespace, ref.name);
  if (!secret) throw new SpecProblemError("SecretNotFound", `Secret ${ref.name} does not exist in ${namespace}`);
  const raw =
    secret.data?.[key] ?? (secret.stringData?.[key] !== undefined ? Buffer.from(secret.stringData[key]).toString("base64") : undefined);
  if (raw === undefined) throw new SpecProblemError("SecretKeyMissing", `Secret ${ref.name} has no key ${JSON.stringify(key)}`);
  return { value: Buffer.from(raw, "base64").toString("utf8"), version: `${ref.name}@${secret.metadata?.resourceVersion ?? ""}` };
}

/**
 * The Nexus object a resource stands for: by the id its status recorded (when it belongs to the
 * same tenant and still exists), else the tenant's object of the resource's name — created in
 * the console, or by an earlier reconcile whose status write was lost — which is then adopted.
 */
export async function findObject<O extends { name: string }>(
  recorded: { id: string | undefined; tenantId: string | undefined },
  tenantId: string,
  name: string,
  get: (id: string) => Promise<O | undefined>,
  list: () => Promise<readonly O[]>,
): Promise<O | undefined> {
  if (recorded.id && recorded.tenantId === tenantId) {
    try {
      const found = await get(recorded.id);
      if (found) return found;
    } catch (err) {
      if (!hasCode(err, Code.NotFound)) throw err;
    }
  }
  return (await list()).find((o) => o.name === name);
}
