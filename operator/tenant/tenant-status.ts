import { degradedCondition, failedConditions, readyCondition, reconcilingCondition, setConditions } from "../controller/conditions.js";
import type { Condition, TenantApiKeyStatus, TenantStatus } from "../crds/types.js";

/** What one reconcile of a Tenant found. */
export type TenantOutcome =
  | { kind: "ready"; tenantId: string; keys: TenantApiKeyStatus[]; usage: string }
  | { kind: "suspended"; tenantId: string; keys: TenantApiKeyStatus[]; usage: string }
  | { kind: "keysNotWorking"; tenantId: string; keys: TenantApiKeyStatus[]; usage: string; message: string }
  | { kind: "failed"; reason: string; message: string };

/**
 * The Tenant status for an outcome. Ready=True means every listed key authenticated as this
 * tenant just now (so `kubectl wait --for=condition=Ready` means the keys work); a service or
 * Kubernetes failure sets Degraded=True with the error, keeping what was known before.
 */
export function tenantStatus(previous: TenantStatus | undefined, outcome: TenantOutcome, generation: number, now: Date): TenantStatus {
  const base: TenantStatus = { ...(previous ?? {}) };
  let conditions: Condition[];
  switch (outcome.kind) {
    case "ready":
      conditions = setConditions(
        previous?.conditions,
        [
          readyCondition(
            true,
            "KeysAuthenticate",
            `tenant ${outcome.tenantId} is active and all ${outcome.keys.length} API key(s) authenticate`,
            generation,
          ),
          reconcilingCondition(false, "Reconciled", "spec applied", generation),
          degradedCondition(false, "Healthy", "last reconcile succeeded", generation),
        ],
        now,
      );
      return {
        ...base,
        phase: "Ready",
        tenantId: outcome.tenantId,
        apiKeys: outcome.keys,
        usage: outcome.usage,
        lastVerifiedAt: now.toISOString().replace(/\.\d+Z$/, "Z"),
        conditions,
      };
    case "suspended":
      conditions = setConditions(
        previous?.conditions,
        [
          readyCondition(false, "Suspended", "the tenant is suspended (spec.suspended): its keys are refused", generation),
          reconcilingCondition(false, "Reconciled", "spec applied", generation),
          degradedCondition(false, "Healthy", "last reconcile succeeded", generation),
        ],
        now,
      );
      return { ...base, phase: "Suspended", tenantId: outcome.tenantId, apiKeys: outcome.keys, usage: outcome.usage, conditions };
    case "keysNotWorking":
      conditions = setConditions(
        previous?.conditions,
        [
          readyCondition(false, "KeyNotAuthenticating", outcome.message, generation),
          reconcilingCondition(true, "VerifyingKeys", "waiting for every API key to authenticate", generation),
          degradedCondition(false, "Healthy", "services answered", generation),
        ],
        now,
      );
      return { ...base, phase: "Pending", tenantId: outcome.tenantId, apiKeys: outcome.keys, usage: outcome.usage, conditions };
    case "failed":
      conditions = failedConditions(previous?.conditions, outcome.reason, outcome.message, generation, now);
      return { ...base, phase: "Degraded", conditions };
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}
