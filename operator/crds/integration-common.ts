import { DNS_LABEL, DNS_SUBDOMAIN, type JsonSchema, type PrinterColumn } from "./crd-builder.js";

/** `spec.tenantRef`: the Tenant (same namespace) whose integration objects these are; immutable. */
export const tenantRefSchema: JsonSchema = {
  type: "object",
  required: ["name"],
  description: "The Tenant (same namespace) that owns the object in Nexus. Immutable.",
  properties: { name: { type: "string", minLength: 1, maxLength: 63, pattern: DNS_LABEL } },
  "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "tenantRef is immutable: create a new object for another tenant" }],
};

/** A reference to another Nexus resource of the same namespace, by name. */
export const localRefSchema = (what: string): JsonSchema => ({
  type: "object",
  required: ["name"],
  description: `The ${what} (same namespace), by metadata.name.`,
  properties: { name: { type: "string", minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN } },
});

/**
 * A key of a Secret in the object's namespace: credentials come only from Secrets, never from the
 * spec. The operator watches the Secret and re-applies the object when it changes.
 */
export const secretKeyRefSchema = (what: string, defaultKey: string): JsonSchema => ({
  type: "object",
  required: ["name"],
  description: `Secret (same namespace) holding the ${what}; the operator re-applies it when the Secret changes.`,
  properties: {
    name: { type: "string", minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN },
    key: { type: "string", minLength: 1, maxLength: 253, default: defaultKey, pattern: "^[-._a-zA-Z0-9]+$" },
  },
});

/**
 * An inline credential field that exists only to be refused with a message saying where the
 * credential goes (pruning would drop it silently; `kubectl apply` users deserve the reason).
 */
export const refusedInline = (field: string, ref: string): { property: JsonSchema; rule: { rule: string; message: string } } => ({
  property: { type: "string", description: `Refused: put the credential in a Secret and name it in ${ref}.` },
  rule: {
    rule: `!has(self.${field})`,
    message: `inline credentials are refused: put the ${field} in a Secret and reference it with ${ref}`,
  },
});

/** Status fields the three integration kinds share. */
export const integrationStatusProperties: Record<string, JsonSchema> = {
  observedGeneration: { type: "integer", description: "metadata.generation the status describes." },
  phase: { type: "string", enum: ["Pending", "Ready", "Degraded", "Deleting"] },
  tenantId: { type: "string", description: "The Tenant's id in Nexus." },
  lastAppliedAt: { type: "string", format: "date-time", description: "When the operator last changed the object in Nexus." },
};

/** READY and TENANT columns, first in every integration kind. */
export const readyAndTenantColumns: PrinterColumn[] = [
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Tenant", type: "string", jsonPath: ".spec.tenantRef.name" },
];

/** The condition reason column (priority 1: `kubectl get -o wide`). */
export const reasonColumn: PrinterColumn = {
  name: "Reason",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  priority: 1,
};
