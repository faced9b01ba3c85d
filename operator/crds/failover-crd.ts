import { buildCrd, type CustomResourceDefinition, conditionsSchema, DNS_LABEL } from "./crd-builder.js";
import { FAILOVER } from "./group.js";

/** Phases of the failover state machine, in the order a successful run visits them. */
export const FAILOVER_PHASES = [
  "idle",
  "freeze_writes",
  "precheck",
  "promoting",
  "verification",
  "completed",
  "failed",
  "rollback_pending",
  "rolled_back",
] as const;

/** Failover modes: Planned enforces the replication-lag threshold; Emergency records lag but proceeds. */
export const FAILOVER_MODES = ["Planned", "Emergency"] as const;

/** The Failover CRD: one run of the state machine; printer columns PHASE/TARGET/AGE. */
export function failoverCrd(): CustomResourceDefinition {
  return buildCrd({
    names: FAILOVER,
    description:
      "One regional failover: freeze writes, check replication lag, promote the target region's database, verify health, unfreeze. One runs at a time, with a cooldown between runs.",
    printerColumns: [
      { name: "Phase", type: "string", jsonPath: ".status.phase" },
      { name: "Target", type: "string", jsonPath: ".spec.targetRegion" },
      { name: "Mode", type: "string", jsonPath: ".spec.mode", priority: 1 },
      { name: "Reason", type: "string", jsonPath: ".spec.reason", priority: 1 },
    ],
    spec: {
      type: "object",
      required: ["targetRegion", "reason"],
      "x-kubernetes-validations": [
        { rule: "self.targetRegion == oldSelf.targetRegion", message: "targetRegion is immutable: create a new Failover" },
        { rule: "!has(oldSelf.mode) || (has(self.mode) && self.mode == oldSelf.mode)", message: "mode is immutable" },
        {
          rule: "!has(oldSelf.rollback) || !oldSelf.rollback || (has(self.rollback) && self.rollback)",
          message: "a requested rollback cannot be withdrawn",
        },
      ],
      properties: {
        targetRegion: {
          type: "string",
          description: "Region to fail over to; a key of the operator's regions ConfigMap.",
          minLength: 1,
          maxLength: 63,
          pattern: DNS_LABEL,
        },
        reason: { type: "string", description: "Why (recorded in events and status).", minLength: 1, maxLength: 500 },
        mode: { type: "string", enum: [...FAILOVER_MODES], default: "Planned" },
        maxReplicationLagSeconds: {
          type: "number",
          minimum: 0,
          maximum: 3600,
          default: 10,
          description: "Planned mode refuses (REPLICATION_LAG_TOO_HIGH) when the target lags more than this. Default 10.",
        },
        rollback: {
          type: "boolean",
          default: false,
          description: "Set to true on a completed failover to return to the previous region.",
        },
      },
    },
    status: {
      type: "object",
      properties: {
        observedGeneration: { type: "integer" },
        phase: { type: "string", enum: [...FAILOVER_PHASES] },
        sourceRegion: { type: "string", description: "Region active before the failover." },
        sourceEndpoint: { type: "string" },
        targetEndpoint: { type: "string" },
        replicationLagSeconds: { type: "number" },
        failureReason: { type: "string", description: "Machine reason of the failure, e.g. REPLICATION_LAG_TOO_HIGH." },
        startedAt: { type: "string", format: "date-time" },
        phaseStartedAt: { type: "string", format: "date-time" },
        finishedAt: { type: "string", format: "date-time" },
        history: {
          type: "array",
          maxItems: 32,
          items: {
            type: "object",
            required: ["phase", "at"],
            properties: { phase: { type: "string" }, at: { type: "string", format: "date-time" }, message: { type: "string" } },
          },
        },
        conditions: conditionsSchema,
      },
    },
  });
}
