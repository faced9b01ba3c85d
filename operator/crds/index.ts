import type { CustomResourceDefinition } from "./crd-builder.js";
import { destinationCrd } from "./destination-crd.js";
import { failoverCrd } from "./failover-crd.js";
import { quotaCrd } from "./quota-crd.js";
import { senderAppCrd } from "./sender-app-crd.js";
import { tenantCrd } from "./tenant-crd.js";
import { workflowCrd } from "./workflow-crd.js";

/**
 * Every Nexus CRD, built from the TypeScript source in operator/crds/. This is the ONE
 * source: `npm run crds:generate` writes k8s/crds/ and charts/nexus/crds/ from it, the operator
 * applies it server-side at start-up, and tests/k8s-crds.test.ts fails when the files differ.
 */
export function nexusCrds(): CustomResourceDefinition[] {
  return [tenantCrd(), quotaCrd(), failoverCrd(), senderAppCrd(), destinationCrd(), workflowCrd()];
}

export type { CustomResourceDefinition } from "./crd-builder.js";
