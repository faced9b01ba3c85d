import type { ApiextensionsV1Api } from "@kubernetes/client-node";
import type { CustomResourceDefinition } from "../crds/index.js";
import { FIELD_MANAGER, SERVER_SIDE_APPLY } from "./kube-clients.js";

/**
 * Applies the operator's CRDs server-side (field manager "nexus-operator", force: take over
 * fields another manager such as Helm set). This is how upgrades reach the CRDs: Helm installs
 * charts/nexus/crds/ only on first install and never upgrades them, so each new operator image
 * brings and applies its own CRD versions at start-up. Needs `patch` (and `create`) on
 * customresourcedefinitions; turn it off with NEXUS_OPERATOR_APPLY_CRDS=false and apply
 * k8s/crds/ yourself instead.
 */
export async function applyCrds(api: ApiextensionsV1Api, crds: readonly CustomResourceDefinition[]): Promise<string[]> {
  const applied: string[] = [];
  for (const crd of crds) {
    await api.patchCustomResourceDefinition(
      { name: crd.metadata.name, body: crd, fieldManager: FIELD_MANAGER, force: true },
      SERVER_SIDE_APPLY,
    );
    applied.push(crd.metadata.name);
  }
  return applied;
}
