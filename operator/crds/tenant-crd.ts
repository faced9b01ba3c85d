import { buildCrd, type CustomResourceDefinition, conditionsSchema, DNS_LABEL, DNS_SUBDOMAIN } from "./crd-builder.js";
import { TENANT } from "./group.js";

/** Plans a Tenant may name (Nexus `Plan` enum, lower-case). */
export const TENANT_PLANS = ["free", "pro", "enterprise"] as const;
/** Roles an API key may carry (Nexus `Role` enum, lower-case). */
export const KEY_ROLES = ["owner", "admin", "editor", "viewer"] as const;

/** The Tenant CRD: spec (slug, displayName, plan, apiKeys), status, printer columns READY/PLAN/USAGE. */
export function tenantCrd(): CustomResourceDefinition {
  return buildCrd({
    names: TENANT,
    description:
      "A Nexus tenant: the operator creates it in the auth service, keeps its display name and plan, issues each listed API key into its Secret, and suspends it and revokes its keys when the object is deleted.",
    printerColumns: [
      { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: "Plan", type: "string", jsonPath: ".spec.plan" },
      { name: "Usage", type: "string", jsonPath: ".status.usage", description: "Runs used this month against the monthly limit." },
      { name: "Tenant ID", type: "string", jsonPath: ".status.tenantId", priority: 1 },
    ],
    spec: {
      type: "object",
      required: ["slug", "displayName", "plan"],
      properties: {
        slug: {
          type: "string",
          description: "Unique short name in Nexus (a DNS label). Immutable.",
          minLength: 1,
          maxLength: 63,
          pattern: DNS_LABEL,
          "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "slug is immutable", reason: "FieldValueForbidden" }],
        },
        displayName: {
          type: "string",
          description: "Name shown to people. Changing it renames the tenant in Nexus (UpdateTenant).",
          minLength: 1,
          maxLength: 200,
        },
        plan: { type: "string", description: "The tenant's plan.", enum: [...TENANT_PLANS] },
        suspended: {
          type: "boolean",
          description: "Suspend the tenant: its keys are refused at once until this is false again. Default false.",
          default: false,
        },
        apiKeys: {
          type: "array",
          description:
            "API keys to issue. Each key's plaintext is written once into the named Secret (key `apiKey`); annotate the Tenant with rotate.nexus.dev/<name>=<any new value> to rotate it.",
          maxItems: 20,
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
          "x-kubernetes-validations": [
            { rule: "self.all(a, self.exists_one(b, b.secretName == a.secretName))", message: "each API key needs its own secretName" },
          ],
          items: {
            type: "object",
            required: ["name", "role", "secretName"],
            properties: {
              name: {
                type: "string",
                description: "Key label (also names its rotation annotation).",
                minLength: 1,
                maxLength: 63,
                pattern: DNS_LABEL,
              },
              role: { type: "string", description: "Role of the key inside the tenant.", enum: [...KEY_ROLES] },
              secretName: {
                type: "string",
                description: "Secret (same namespace) the operator creates with the key's plaintext.",
                minLength: 1,
                maxLength: 253,
                pattern: DNS_SUBDOMAIN,
              },
            },
          },
        },
      },
    },
    status: {
      type: "object",
      properties: {
        observedGeneration: { type: "integer", description: "metadata.generation the status describes." },
        phase: { type: "string", enum: ["Pending", "Ready", "Degraded", "Suspended", "Deleting"] },
        tenantId: { type: "string", description: "The tenant's id in Nexus." },
        usage: { type: "string", description: "Runs this month, e.g. 12/5000 (resynced every minute)." },
        lastVerifiedAt: { type: "string", format: "date-time", description: "When every key last authenticated." },
        apiKeys: {
          type: "array",
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
          items: {
            type: "object",
            required: ["name"],
            properties: {
              name: { type: "string" },
              keyId: { type: "string" },
              secretName: { type: "string" },
              rotation: { type: "string", description: "Value of the rotation annotation last acted on." },
              authenticated: { type: "boolean", description: "The key in the Secret authenticated at the last check." },
            },
          },
        },
        conditions: conditionsSchema,
      },
    },
  });
}
