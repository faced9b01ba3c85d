import type { Condition } from "../crds/types.js";

/** Condition types every Nexus resource carries (plus kind-specific ones such as SoftCapReached). */
export const CONDITION_TYPES = {
  ready: "Ready",
  reconciling: "Reconciling",
  degraded: "Degraded",
  softCapReached: "SoftCapReached",
} as const;

/** A condition before lastTransitionTime is decided. */
export type ConditionInput = Omit<Condition, "lastTransitionTime">;

function condition(type: string, ok: boolean, reason: string, message: string, generation?: number): ConditionInput {
  return { type, status: ok ? "True" : "False", reason, message, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

/** Ready: True only when the resource really works (e.g. every key of a Tenant authenticates). */
export function readyCondition(ready: boolean, reason: string, message: string, generation?: number): ConditionInput {
  return condition(CONDITION_TYPES.ready, ready, reason, message, generation);
}

/** Reconciling: True while the operator is still driving the world toward the spec. */
export function reconcilingCondition(reconciling: boolean, reason: string, message: string, generation?: number): ConditionInput {
  return condition(CONDITION_TYPES.reconciling, reconciling, reason, message, generation);
}

/** Degraded: True when the last attempt failed (a service error, a conflict with a foreign object). */
export function degradedCondition(degraded: boolean, reason: string, message: string, generation?: number): ConditionInput {
  return condition(CONDITION_TYPES.degraded, degraded, reason, message, generation);
}

/** SoftCapReached (Quota): True when usage reached softCapRatio of a limit in the current day or month. */
export function softCapReachedCondition(reached: boolean, reason: string, message: string, generation?: number): ConditionInput {
  return condition(CONDITION_TYPES.softCapReached, reached, reason, message, generation);
}

/** The condition of a type, if present. */
export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * Sets conditions on a list, keeping each one's lastTransitionTime when its status did not
 * change (so `kubectl wait` and alerting see real transitions only). Other types are kept.
 */
export function setConditions(existing: readonly Condition[] | undefined, updates: readonly ConditionInput[], now: Date): Condition[] {
  const out = [...(existing ?? [])];
  const at = now.toISOString().replace(/\.\d+Z$/, "Z");
  for (const u of updates) {
    const i = out.findIndex((c) => c.type === u.type);
    const prev = i >= 0 ? out[i] : undefined;
    const next: Condition = { ...u, lastTransitionTime: prev && prev.status === u.status ? prev.lastTransitionTime : at };
    if (i >= 0) out[i] = next;
    else out.push(next);
  }
  return out;
}

/** Ready=False and Reconciling=True with the reason, Degraded=False: waiting for something else, nothing failed. */
export function waitingConditions(
  existing: readonly Condition[] | undefined,
  reason: string,
  message: string,
  generation: number,
  now: Date,
): Condition[] {
  return setConditions(
    existing,
    [
      readyCondition(false, reason, message, generation),
      reconcilingCondition(true, reason, message, generation),
      degradedCondition(false, "Healthy", "waiting, not failing", generation),
    ],
    now,
  );
}

/** Ready=False and Degraded=True with the failure, Reconciling=True (retrying with backoff). */
export function failedConditions(
  existing: readonly Condition[] | undefined,
  reason: string,
  message: string,
  generation: number,
  now: Date,
): Condition[] {
  return setConditions(
    existing,
    [
      readyCondition(false, reason, message, generation),
      reconcilingCondition(true, "Retrying", "retrying with backoff", generation),
      degradedCondition(true, reason, message, generation),
    ],
    now,
  );
}

/** One change of a condition's status between two lists (for Events). */
export interface ConditionTransition {
  type: string;
  from: Condition["status"] | undefined;
  to: Condition["status"];
  reason: string;
  message: string;
}

/** The conditions whose status changed from `before` to `after`. */
export function conditionTransitions(before: readonly Condition[] | undefined, after: readonly Condition[]): ConditionTransition[] {
  const out: ConditionTransition[] = [];
  for (const c of after) {
    const prev = findCondition(before, c.type);
    if (prev?.status !== c.status) out.push({ type: c.type, from: prev?.status, to: c.status, reason: c.reason, message: c.message });
  }
  return out;
}
