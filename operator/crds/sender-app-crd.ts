import { buildCrd, type CustomResourceDefinition, conditionsSchema, DNS_SUBDOMAIN } from "./crd-builder.js";
import { SENDER_APP } from "./group.js";
import { integrationStatusProperties, readyAndTenantColumns, reasonColumn, tenantRefSchema } from "./integration-common.js";

/** Field types a sender app's schema may name (Nexus `FieldType`). */
export const FIELD_TYPES = ["String", "Integer", "Number", "Boolean", "Timestamp", "Json"] as const;

/** The SenderApp CRD: an app that posts to integration ingress; its key is written into a Secret. */
export function senderAppCrd(): CustomResourceDefinition {
  return buildCrd({
    names: SENDER_APP,
    description:
      "An integration sender app: the operator creates it in the integration service, keeps its field schema as the spec says, and writes its app key (and master secret, with encryptionRequired) once into the Secret keySecretName. Deleting the object deletes the app.",
    printerColumns: [
      ...readyAndTenantColumns,
      { name: "Key Secret", type: "string", jsonPath: ".spec.keySecretName" },
      { name: "App ID", type: "string", jsonPath: ".status.appId", priority: 1 },
      reasonColumn,
    ],
    spec: {
      type: "object",
      required: ["tenantRef", "keySecretName"],
      properties: {
        tenantRef: tenantRefSchema,
        fields: {
          type: "array",
          description: "Fields every message is checked against; empty accepts any JSON object.",
          maxItems: 500,
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
          items: {
            type: "object",
            required: ["name"],
            properties: {
              name: { type: "string", minLength: 1, maxLength: 200 },
              type: { type: "string", enum: [...FIELD_TYPES], default: "Json", description: "Default Json (any value)." },
              required: { type: "boolean", default: false },
            },
          },
        },
        encryptionRequired: {
          type: "boolean",
          default: false,
          description: "Payloads must be AES-256-GCM envelopes sealed with the app's master secret (written to the key Secret). Immutable.",
          "x-kubernetes-validations": [
            { rule: "self == oldSelf", message: "encryptionRequired is immutable: create a new SenderApp to change it" },
          ],
        },
        keySecretName: {
          type: "string",
          description:
            "Secret (same namespace) the operator creates with the app key (keys appKey, appId; masterSecret with encryptionRequired). Deleting the Secret issues a new key into it. Immutable.",
          minLength: 1,
          maxLength: 253,
          pattern: DNS_SUBDOMAIN,
          "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "keySecretName is immutable" }],
        },
      },
    },
    status: {
      type: "object",
      properties: {
        ...integrationStatusProperties,
        appId: { type: "string", description: "The sender app's id in Nexus." },
        keyPrefix: { type: "string", description: "Non-secret start of the app key in the Secret." },
        conditions: conditionsSchema,
      },
    },
  });
}
