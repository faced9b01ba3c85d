import type { AppsV1Api } from "@kubernetes/client-node";
import { MERGE_PATCH } from "../kube/kube-clients.js";

/** Pod-template annotation that carries the database endpoint; changing it rolls the pods. */
export const ENDPOINT_ANNOTATION = "nexus.dev/database-endpoint";

/**
 * Rolls the Nexus Deployments matched by `labelSelector` onto a new database endpoint by
 * setting a pod-template annotation (the same mechanism as `kubectl rollout restart`), so
 * services that read the runtime ConfigMap only at start-up pick the endpoint up too.
 * Deployments already annotated with the endpoint are left alone. Returns the names rolled.
 */
export async function restartDeployments(apps: AppsV1Api, namespace: string, labelSelector: string, endpoint: string): Promise<string[]> {
  const list = await apps.listNamespacedDeployment({ namespace, labelSelector });
  const rolled: string[] = [];
  for (const d of list.items) {
    const name = d.metadata?.name;
    if (!name || d.spec?.template?.metadata?.annotations?.[ENDPOINT_ANNOTATION] === endpoint) continue;
    await apps.patchNamespacedDeployment(
      { namespace, name, body: { spec: { template: { metadata: { annotations: { [ENDPOINT_ANNOTATION]: endpoint } } } } } },
      MERGE_PATCH,
    );
    rolled.push(name);
  }
  return rolled;
}
