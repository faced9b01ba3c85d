import { NEXUS_GROUP, NEXUS_VERSION, type ResourceNames } from "./group.js";

/** An OpenAPI v3 schema as Kubernetes structural schemas accept it (with CEL rules). */
export type JsonSchema = {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: (string | number)[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  additionalProperties?: JsonSchema;
  nullable?: boolean;
  "x-kubernetes-validations"?: { rule: string; message: string; reason?: string; fieldPath?: string }[];
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
};

/** One `kubectl get` column. */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** A CustomResourceDefinition object (apiextensions.k8s.io/v1). */
export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: "Namespaced";
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchema };
    }[];
  };
}

/** The `metav1.Condition` schema every Nexus status uses. */
export const conditionsSchema: JsonSchema = {
  type: "array",
  description: "Ready, Reconciling and Degraded (plus kind-specific ones), with reasons and messages.",
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    required: ["type", "status", "lastTransitionTime", "reason", "message"],
    properties: {
      type: { type: "string", maxLength: 316 },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      observedGeneration: { type: "integer", minimum: 0 },
      lastTransitionTime: { type: "string", format: "date-time" },
      reason: { type: "string", maxLength: 1024, minLength: 1, pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" },
      message: { type: "string", maxLength: 32768 },
    },
  },
};

/** DNS-1123 label (Kubernetes object names, Nexus slugs). */
export const DNS_LABEL = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
/** DNS-1123 subdomain (Secret names). */
export const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/** Options of {@link buildCrd}. */
export interface CrdOptions {
  names: ResourceNames;
  description: string;
  spec: JsonSchema;
  status: JsonSchema;
  printerColumns: PrinterColumn[];
}

/**
 * Builds a namespaced CRD in group nexus.dev, version v1alpha1, with the status subresource,
 * category `nexus` (so `kubectl get nexus` lists every kind) and an AGE column last.
 */
export function buildCrd(options: CrdOptions): CustomResourceDefinition {
  const { names } = options;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${names.plural}.${NEXUS_GROUP}`,
      labels: { "app.kubernetes.io/name": "nexus", "app.kubernetes.io/component": "crd", "app.kubernetes.io/part-of": "nexus" },
    },
    spec: {
      group: NEXUS_GROUP,
      names: {
        kind: names.kind,
        listKind: `${names.kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: ["nexus"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: NEXUS_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...options.printerColumns, { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: options.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: options.spec,
                status: options.status,
              },
            },
          },
        },
      ],
    },
  };
}
