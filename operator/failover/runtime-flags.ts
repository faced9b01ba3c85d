import type { CoreV1Api } from "@kubernetes/client-node";
import { isAlreadyExists, isNotFound } from "../kube/api-errors.js";
import { MERGE_PATCH } from "../kube/kube-clients.js";

/**
 * The shared runtime flags: ONE ConfigMap (default name `nexus-runtime`, in the operator's
 * namespace) that the operator writes and every Nexus service pod mounts read-only at
 * /etc/nexus/runtime (one file per key; kubelet refreshes mounted ConfigMaps within about a
 * minute). Keys:
 *
 * | key | values | meaning |
 * |---|---|---|
 * | writeFrozen | "true" / "false" | "true": mutating RPCs fail with UNAVAILABLE reason WRITE_FROZEN |
 * | databaseRegion | region name | region whose database is the primary |
 * | databaseEndpoint | host:port | that primary's endpoint |
 * | updatedBy | text | which Failover (or the operator at start-up) wrote last |
 */
export const RUNTIME_KEYS = {
  writeFrozen: "writeFrozen",
  databaseRegion: "databaseRegion",
  databaseEndpoint: "databaseEndpoint",
  updatedBy: "updatedBy",
} as const;

/** The flags as read. */
export interface RuntimeFlags {
  writeFrozen: boolean;
  databaseRegion: string | undefined;
  databaseEndpoint: string | undefined;
}

/** Where the runtime ConfigMap lives. */
export interface RuntimeFlagsLocation {
  core: CoreV1Api;
  namespace: string;
  name: string;
}

/** Reads the flags (a missing ConfigMap reads as not frozen, no region). */
export async function readRuntimeFlags(loc: RuntimeFlagsLocation): Promise<RuntimeFlags> {
  try {
    const cm = await loc.core.readNamespacedConfigMap({ namespace: loc.namespace, name: loc.name });
    const d = cm.data ?? {};
    return {
      writeFrozen: d[RUNTIME_KEYS.writeFrozen] === "true",
      databaseRegion: d[RUNTIME_KEYS.databaseRegion] || undefined,
      databaseEndpoint: d[RUNTIME_KEYS.databaseEndpoint] || undefined,
    };
  } catch (err) {
    if (isNotFound(err)) return { writeFrozen: false, databaseRegion: undefined, databaseEndpoint: undefined };
    throw err;
  }
}

/** Sets some keys (merge patch; creates the ConfigMap when missing). Idempotent. */
export async function writeRuntimeFlags(loc: RuntimeFlagsLocation, data: Record<string, string>): Promise<void> {
  try {
    await loc.core.patchNamespacedConfigMap({ namespace: loc.namespace, name: loc.name, body: { data } }, MERGE_PATCH);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await loc.core.createNamespacedConfigMap({
        namespace: loc.namespace,
        body: {
          metadata: {
            name: loc.name,
            namespace: loc.namespace,
            labels: { "app.kubernetes.io/part-of": "nexus", "app.kubernetes.io/managed-by": "nexus-operator" },
          },
          data: { [RUNTIME_KEYS.writeFrozen]: "false", ...data },
        },
      });
    } catch (createErr) {
      if (!isAlreadyExists(createErr)) throw createErr;
      await loc.core.patchNamespacedConfigMap({ namespace: loc.namespace, name: loc.name, body: { data } }, MERGE_PATCH);
    }
  }
}
