import { Code, ConnectError } from "@connectrpc/connect";
import type { CoreV1Api, V1Secret } from "@kubernetes/client-node";
import { type ApiKey, ApiKeyStatus, Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { errorReason } from "../../services/kernel/errors.js";
import type { Tenant, TenantApiKeySpec, TenantApiKeyStatus } from "../crds/types.js";
import { isNotFound } from "../kube/api-errors.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import { MERGE_PATCH } from "../kube/kube-clients.js";
import { hasCode, type NexusApi } from "../nexus/nexus-api.js";
import { roleToProto, rotationAnnotation, SECRET_FIELDS } from "./tenant-mapping.js";

/** A Secret exists under the key's secretName that the operator did not write; it is never overwritten. */
export class ForeignSecretError extends Error {
  override name = "ForeignSecretError";
}

/** Dependencies of {@link ensureApiKeys}. */
export interface TenantKeysDeps {
  core: CoreV1Api;
  nexus: NexusApi;
  recorder: EventRecorder;
}

/**
 * The Tenant as the controlling owner of a key Secret: the garbage collector deletes the
 * Secret with its Tenant, `kubectl describe` names the Tenant as its controller, and a second
 * controller cannot claim it. blockOwnerDeletion needs `update` on tenants/finalizers, which
 * the chart grants.
 */
export function tenantOwnerReference(tenant: Tenant): {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: true;
  blockOwnerDeletion: true;
} {
  return {
    apiVersion: tenant.apiVersion,
    kind: tenant.kind,
    name: tenant.metadata.name,
    uid: tenant.metadata.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, "base64").toString("utf8"));

async function readSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The plaintext key stored in a Secret written by the operator, if any. */
export function plaintextOf(secret: V1Secret | undefined): string | undefined {
  return unb64(secret?.data?.[SECRET_FIELDS.apiKey]);
}

function secretData(plaintext: string, keyId: string, tenantId: string): Record<string, string> {
  return { [SECRET_FIELDS.apiKey]: b64(plaintext), [SECRET_FIELDS.keyId]: b64(keyId), [SECRET_FIELDS.tenantId]: b64(tenantId) };
}

async function createKeySecret(
  deps: TenantKeysDeps,
  tenant: Tenant,
  spec: TenantApiKeySpec,
  tenantId: string,
): Promise<TenantApiKeyStatus> {
  const created = await deps.nexus.auth.createApiKey({ tenantId, name: spec.name, role: roleToProto(spec.role) });
  const keyId = created.apiKey?.id ?? "";
  try {
    await deps.core.createNamespacedSecret({
      namespace: tenant.metadata.namespace,
      body: {
        metadata: {
          name: spec.secretName,
          namespace: tenant.metadata.namespace,
          labels: { "app.kubernetes.io/managed-by": "nexus-operator", [SECRET_FIELDS.tenantLabel]: tenant.metadata.name },
          annotations: { [SECRET_FIELDS.keyIdAnnotation]: keyId },
          ...(tenant.metadata.uid ? { ownerReferences: [tenantOwnerReference(tenant)] } : {}),
        },
        type: "Opaque",
        data: secretData(created.plaintextKey, keyId, tenantId),
      },
    });
  } catch (err) {
    // The plaintext exists nowhere else: a key we cannot store must not stay valid.
    await deps.nexus.auth.revokeApiKey({ keyId, reason: "its Kubernetes Secret could not be written" }).catch(() => undefined);
    throw err;
  }
  await deps.recorder.record(tenant, "Normal", "ApiKeyIssued", `API key ${spec.name} (${keyId}) written to Secret ${spec.secretName}`);
  return {
    name: spec.name,
    keyId,
    secretName: spec.secretName,
    ...(tenant.metadata.annotations?.[rotationAnnotation(spec.name)]
      ? { rotation: tenant.metadata.annotations[rotationAnnotation(spec.name)] }
      : {}),
  };
}

async function rotateKeySecret(
  deps: TenantKeysDeps,
  tenant: Tenant,
  spec: TenantApiKeySpec,
  secret: V1Secret,
  keyId: string,
  tenantId: string,
  rotation: string,
): Promise<TenantApiKeyStatus> {
  let plaintext: string;
  let newId: string;
  try {
    const rotated = await deps.nexus.auth.rotateApiKey({ keyId });
    plaintext = rotated.plaintextKey;
    newId = rotated.apiKey?.id ?? "";
  } catch (err) {
    // A revoked or expired key cannot be rotated: issue a fresh one in its place.
    if (!hasCode(err, Code.FailedPrecondition) && !hasCode(err, Code.NotFound)) throw err;
    const created = await deps.nexus.auth.createApiKey({ tenantId, name: spec.name, role: roleToProto(spec.role) });
    plaintext = created.plaintextKey;
    newId = created.apiKey?.id ?? "";
  }
  // The one time a Secret is re-written: the rotation the annotation asked for.
  await deps.core.patchNamespacedSecret(
    {
      namespace: tenant.metadata.namespace,
      name: spec.secretName,
      body: {
        metadata: { resourceVersion: secret.metadata?.resourceVersion, annotations: { [SECRET_FIELDS.keyIdAnnotation]: newId } },
        data: secretData(plaintext, newId, tenantId),
      },
    },
    MERGE_PATCH,
  );
  await deps.recorder.record(
    tenant,
    "Normal",
    "ApiKeyRotated",
    `API key ${spec.name} rotated: ${keyId} -> ${newId}; Secret ${spec.secretName} updated`,
  );
  return { name: spec.name, keyId: newId, secretName: spec.secretName, rotation };
}

/**
 * Gives an existing key the role the spec asks for (SetApiKeyRole), so editing `role` in the
 * spec takes effect on the key the application already holds. A key that is gone or can no
 * longer be used is left to the verification step, which reports it.
 */
async function ensureRole(deps: TenantKeysDeps, tenant: Tenant, spec: TenantApiKeySpec, keyId: string): Promise<void> {
  let key: ApiKey | undefined;
  try {
    key = (await deps.nexus.auth.getApiKey({ keyId })).apiKey;
  } catch (err) {
    if (hasCode(err, Code.NotFound)) return;
    throw err;
  }
  const want = roleToProto(spec.role);
  if (!key || key.role === want || key.status === ApiKeyStatus.REVOKED || key.status === ApiKeyStatus.EXPIRED) return;
  await deps.nexus.auth.setApiKeyRole({ keyId, role: want });
  await deps.recorder.record(
    tenant,
    "Normal",
    "ApiKeyRoleChanged",
    `API key ${spec.name} (${keyId}) now has role ${spec.role} (was ${roleName(key.role)})`,
  );
}

function roleName(role: Role): string {
  return Role[role]?.toLowerCase() ?? String(role);
}

/** Deletes a Secret the operator wrote (it carries the key-id annotation); any other Secret is left alone. */
async function deleteOwnedSecret(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  const secret = await readSecret(core, namespace, name);
  if (!secret?.metadata?.annotations?.[SECRET_FIELDS.keyIdAnnotation]) return;
  await core.deleteNamespacedSecret({ namespace, name }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}

/**
 * Makes every key of the spec exist, each in its Secret, with the role the spec names: issues
 * missing keys (plaintext written once), rotates a key when its rotation annotation holds a
 * value not yet acted on, and changes a key's role when the spec's differs. Keys nothing holds
 * any more — removed from the spec, moved to another Secret, or whose Secret was deleted (a new
 * key is issued then) — are revoked, and Secrets the operator wrote that no key uses are
 * deleted: a plaintext nobody is meant to hold must not stay valid. Returns the keys' status entries.
 */
export async function ensureApiKeys(deps: TenantKeysDeps, tenant: Tenant, tenantId: string): Promise<TenantApiKeyStatus[]> {
  const out: TenantApiKeyStatus[] = [];
  const previous = tenant.status?.apiKeys ?? [];
  const wanted = tenant.spec.apiKeys ?? [];
  // Predecessors of keys rotated just now: they keep working for the rotation's grace period.
  const rotatedFrom = new Set<string>();
  for (const spec of wanted) {
    const secret = await readSecret(deps.core, tenant.metadata.namespace, spec.secretName);
    if (!secret) {
      out.push(await createKeySecret(deps, tenant, spec, tenantId));
      continue;
    }
    const keyId = secret.metadata?.annotations?.[SECRET_FIELDS.keyIdAnnotation];
    if (!keyId) {
      throw new ForeignSecretError(
        `Secret ${spec.secretName} exists and was not written by the operator; choose another secretName or delete it`,
      );
    }
    const prev = previous.find((k) => k.name === spec.name);
    const requested = tenant.metadata.annotations?.[rotationAnnotation(spec.name)];
    if (requested && requested !== prev?.rotation) {
      const rotated = await rotateKeySecret(deps, tenant, spec, secret, keyId, tenantId, requested);
      rotatedFrom.add(keyId);
      if (rotated.keyId) await ensureRole(deps, tenant, spec, rotated.keyId);
      out.push(rotated);
      continue;
    }
    await ensureRole(deps, tenant, spec, keyId);
    out.push({ name: spec.name, keyId, secretName: spec.secretName, ...(prev?.rotation ? { rotation: prev.rotation } : {}) });
  }
  const keysInUse = new Set(out.map((k) => k.keyId));
  const secretsInUse = new Set(wanted.map((w) => w.secretName));
  for (const old of previous) {
    const orphanedKey = old.keyId !== undefined && old.keyId !== "" && !keysInUse.has(old.keyId) && !rotatedFrom.has(old.keyId);
    const orphanedSecret = old.secretName !== undefined && !secretsInUse.has(old.secretName);
    if (orphanedKey)
      await deps.nexus.auth.revokeApiKey({ keyId: old.keyId ?? "", reason: `no longer held by Tenant ${tenant.metadata.name}` });
    if (orphanedSecret) await deleteOwnedSecret(deps.core, tenant.metadata.namespace, old.secretName ?? "");
    if (!orphanedKey && !orphanedSecret) continue;
    const stillWanted = wanted.some((w) => w.name === old.name);
    const why = stillWanted ? "replaced (its Secret was deleted or secretName changed)" : "removed from the spec";
    await deps.recorder.record(
      tenant,
      "Normal",
      "ApiKeyRevoked",
      `API key ${old.name} (${old.keyId ?? "unknown id"}) ${why}: ${orphanedKey ? "revoked" : "already replaced"}${orphanedSecret ? `, Secret ${old.secretName} deleted` : ""}`,
    );
  }
  return out;
}

/** What to do about a key the auth service refuses, for the condition message. */
function refusalHint(err: unknown, keyName: string): string {
  switch (errorReason(err)) {
    case "AUTH_REVOKED_KEY":
    case "AUTH_EXPIRED_KEY":
    case "AUTH_INACTIVE_KEY":
    case "AUTH_UNAUTHORIZED":
      return ` (annotate the Tenant with ${rotationAnnotation(keyName)}=<a new value> to issue a new key into its Secret)`;
    default:
      return "";
  }
}

/**
 * Checks each key the way a client would: WhoAmI with the plaintext from its Secret must answer
 * with this tenant and the role the spec names. Returns the entries with `authenticated` set,
 * the first failure (with what to do about it when the key is refused), and whether a key is
 * refused for good (revoked, expired, inactive) rather than not yet known across the mesh.
 */
export async function verifyApiKeys(
  deps: TenantKeysDeps,
  tenant: Tenant,
  tenantId: string,
  keys: TenantApiKeyStatus[],
): Promise<{ keys: TenantApiKeyStatus[]; failure: string | undefined; refused: boolean }> {
  let failure: string | undefined;
  let refused = false;
  const out: TenantApiKeyStatus[] = [];
  for (const key of keys) {
    const secret = key.secretName ? await readSecret(deps.core, tenant.metadata.namespace, key.secretName) : undefined;
    const plaintext = plaintextOf(secret);
    const wantRole = tenant.spec.apiKeys?.find((k) => k.name === key.name)?.role;
    let ok = false;
    if (plaintext) {
      try {
        const me = await deps.nexus.authAs(plaintext).whoAmI({});
        if (me.principal?.tenantId !== tenantId) {
          failure ??= `key ${key.name} authenticates as another tenant (${me.principal?.tenantId ?? "none"})`;
        } else if (wantRole !== undefined && me.principal.role !== roleToProto(wantRole)) {
          failure ??= `key ${key.name} has role ${roleName(me.principal.role)}, the spec asks for ${wantRole}`;
        } else {
          ok = true;
        }
      } catch (err) {
        const message = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
        const reason = errorReason(err);
        // Revoked, expired and inactive keys stay refused until someone acts: no point asking every few seconds.
        if (reason === "AUTH_REVOKED_KEY" || reason === "AUTH_EXPIRED_KEY" || reason === "AUTH_INACTIVE_KEY") refused = true;
        failure ??= `key ${key.name} does not authenticate: ${reason ? `${reason}: ` : ""}${message}${refusalHint(err, key.name)}`;
      }
    } else {
      failure ??= `Secret ${key.secretName ?? "(none)"} holds no key for ${key.name}`;
    }
    out.push({ ...key, authenticated: ok });
  }
  return { keys: out, failure, refused };
}
