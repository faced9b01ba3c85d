import { buildCrd, type CustomResourceDefinition, conditionsSchema, DNS_LABEL, type JsonSchema } from "./crd-builder.js";
import { QUOTA } from "./group.js";

/** Hard-cap modes a Quota may name (Nexus `HardCapMode`). */
export const HARD_CAP_MODES = ["Enforce", "Observe"] as const;

const limits = (period: string): JsonSchema => ({
  type: "object",
  description: `Limits per UTC ${period}; an absent limit falls back to the plan's default.`,
  properties: {
    runs: { type: "integer", minimum: 0, description: `Most agent runs per ${period}.` },
    runUnits: { type: "number", minimum: 0, description: `Most run units per ${period}.` },
  },
});

const windowStatus: JsonSchema = {
  type: "object",
  properties: {
    runsUsed: { type: "integer" },
    runsLimit: { type: "integer", description: "Absent: unlimited." },
    runUnitsUsed: { type: "number" },
    runUnitsLimit: { type: "number", description: "Absent: unlimited." },
    softCapReached: { type: "boolean" },
    hardCapReached: { type: "boolean" },
    resetsAt: { type: "string", format: "date-time" },
  },
};

/** The Quota CRD: limits of one Tenant applied through SetQuota; printer columns USED/LIMIT. */
export function quotaCrd(): CustomResourceDefinition {
  return buildCrd({
    names: QUOTA,
    description:
      "Run and run-unit limits of one Tenant, applied through the metering service's SetQuota. Status shows this month's usage (resynced every minute) and a SoftCapReached condition.",
    printerColumns: [
      { name: "Tenant", type: "string", jsonPath: ".spec.tenantRef.name" },
      {
        name: "Used",
        type: "string",
        jsonPath: ".status.used",
        description: "Usage in the shape of Limit: runs this month, and today's with /day (run units when no runs limit).",
      },
      {
        name: "Limit",
        type: "string",
        jsonPath: ".status.limit",
        description: "Runs limits in force: per month, and per day with /day (run units when no runs limit).",
      },
      { name: "Soft Cap", type: "string", jsonPath: '.status.conditions[?(@.type=="SoftCapReached")].status', priority: 1 },
    ],
    spec: {
      type: "object",
      required: ["tenantRef"],
      "x-kubernetes-validations": [
        {
          rule: "!has(self.daily) || !has(self.monthly) || !has(self.daily.runs) || !has(self.monthly.runs) || self.daily.runs <= self.monthly.runs",
          message: "daily.runs cannot exceed monthly.runs",
        },
        {
          rule: "!has(self.daily) || !has(self.monthly) || !has(self.daily.runUnits) || !has(self.monthly.runUnits) || self.daily.runUnits <= self.monthly.runUnits",
          message: "daily.runUnits cannot exceed monthly.runUnits",
        },
      ],
      properties: {
        tenantRef: {
          type: "object",
          required: ["name"],
          description: "The Tenant (same namespace) these limits apply to.",
          properties: { name: { type: "string", minLength: 1, maxLength: 63, pattern: DNS_LABEL } },
        },
        daily: limits("day"),
        monthly: limits("month"),
        softCapRatio: {
          type: "number",
          description: "Fraction of a limit at which the soft cap fires, in (0, 1]. Default 0.8.",
          default: 0.8,
          "x-kubernetes-validations": [{ rule: "self > 0.0 && self <= 1.0", message: "softCapRatio must be greater than 0 and at most 1" }],
        },
        hardCapMode: {
          type: "string",
          description:
            "Enforce refuses runs over a limit (QUOTA_EXCEEDED); Observe lets them through and records an overage. Default Enforce.",
          enum: [...HARD_CAP_MODES],
          default: "Enforce",
        },
      },
    },
    status: {
      type: "object",
      properties: {
        observedGeneration: { type: "integer" },
        phase: { type: "string", enum: ["Pending", "Ready", "Degraded", "Deleting"] },
        tenantId: { type: "string" },
        used: { type: "string", description: "Runs used this month (printer column)." },
        limit: {
          type: "string",
          description:
            'Limits in force (printer column): "100 runs" per month, "100 runs, 10/day" or "1000 runs/day" with a daily limit, run units the same way when no runs limit is set; "unlimited" only when no limit applies.',
        },
        daily: windowStatus,
        monthly: windowStatus,
        lastSyncedAt: { type: "string", format: "date-time" },
        conditions: conditionsSchema,
      },
    },
  });
}
