import { type EntitlementOverrides, isFeatureKey, NO_OVERRIDES } from "../../kernel/authz/plans.js";
import type { PlanName } from "../../kernel/context.js";
import { accept, type Decision, reject } from "./decision.js";

/**
 * The tenant aggregate: a customer organisation, its plan, status and entitlement overrides.
 * Slug uniqueness spans tenants, so the store enforces it (unique index), not this decider.
 */

// ---- Events ----

/** A tenant was created. */
export interface TenantCreated {
  type: "TenantCreated";
  tenantId: string;
  slug: string;
  displayName: string;
  plan: PlanName;
  at: Date;
}

/** A tenant was suspended: its keys stop working. */
export interface TenantSuspended {
  type: "TenantSuspended";
  tenantId: string;
  reason: string;
  at: Date;
}

/** A suspended tenant was resumed. */
export interface TenantResumed {
  type: "TenantResumed";
  tenantId: string;
  at: Date;
}

/** A tenant's plan changed. */
export interface PlanChanged {
  type: "PlanChanged";
  tenantId: string;
  previousPlan: PlanName;
  plan: PlanName;
  at: Date;
}

/** A tenant's entitlement overrides were replaced. */
export interface EntitlementOverridesChanged {
  type: "EntitlementOverridesChanged";
  tenantId: string;
  previous: EntitlementOverrides;
  overrides: EntitlementOverrides;
  at: Date;
}

/** A tenant's display name changed. */
export interface TenantDisplayNameChanged {
  type: "TenantDisplayNameChanged";
  tenantId: string;
  previousDisplayName: string;
  displayName: string;
  at: Date;
}

/** Every tenant event. */
export type TenantEvent =
  | TenantCreated
  | TenantSuspended
  | TenantResumed
  | PlanChanged
  | EntitlementOverridesChanged
  | TenantDisplayNameChanged;

// ---- State ----

/** A tenant as the decider sees it; `undefined` before it is created. */
export interface Tenant {
  id: string;
  slug: string;
  displayName: string;
  plan: PlanName;
  status: "active" | "suspended";
  overrides: EntitlementOverrides;
  suspensionReason: string;
  createdAt: Date;
  updatedAt: Date;
  suspendedAt: Date | undefined;
}

/** The state of a tenant stream. */
export type TenantState = Tenant | undefined;

// ---- evolve ----

/** Applies one event to the state. */
export function evolveTenant(state: TenantState, event: TenantEvent): TenantState {
  switch (event.type) {
    case "TenantCreated":
      return {
        id: event.tenantId,
        slug: event.slug,
        displayName: event.displayName,
        plan: event.plan,
        status: "active",
        overrides: NO_OVERRIDES,
        suspensionReason: "",
        createdAt: event.at,
        updatedAt: event.at,
        suspendedAt: undefined,
      };
    case "TenantSuspended":
      return state && { ...state, status: "suspended", suspensionReason: event.reason, suspendedAt: event.at, updatedAt: event.at };
    case "TenantResumed":
      return state && { ...state, status: "active", suspensionReason: "", suspendedAt: undefined, updatedAt: event.at };
    case "PlanChanged":
      return state && { ...state, plan: event.plan, updatedAt: event.at };
    case "EntitlementOverridesChanged":
      return state && { ...state, overrides: event.overrides, updatedAt: event.at };
    case "TenantDisplayNameChanged":
      return state && { ...state, displayName: event.displayName, updatedAt: event.at };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Create a tenant. */
export interface CreateTenant {
  type: "CreateTenant";
  tenantId: string;
  slug: string;
  displayName: string;
  plan: PlanName;
  now: Date;
}

/** Suspend a tenant (idempotent). */
export interface SuspendTenant {
  type: "SuspendTenant";
  reason: string;
  now: Date;
}

/** Resume a suspended tenant (idempotent). */
export interface ResumeTenant {
  type: "ResumeTenant";
  now: Date;
}

/** Change the plan (setting the current plan changes nothing). */
export interface SetPlan {
  type: "SetPlan";
  plan: PlanName;
  now: Date;
}

/** Replace the entitlement overrides with exactly this set. */
export interface SetEntitlementOverrides {
  type: "SetEntitlementOverrides";
  overrides: EntitlementOverrides;
  now: Date;
}

/** Change the display name (setting the current name changes nothing). */
export interface SetDisplayName {
  type: "SetDisplayName";
  displayName: string;
  now: Date;
}

/** Every tenant command. */
export type TenantCommand = CreateTenant | SuspendTenant | ResumeTenant | SetPlan | SetEntitlementOverrides | SetDisplayName;

// ---- decide ----

const notFound = <E>(): Decision<E> => reject("NOT_FOUND", "tenant not found");

/** Longest display name, in characters (the proto's max_len). */
export const DISPLAY_NAME_MAX = 200;

/** Decides which events a command produces against the current state. */
export function decideTenant(command: TenantCommand, state: TenantState): Decision<TenantEvent> {
  switch (command.type) {
    case "CreateTenant":
      if (state !== undefined) return reject("ALREADY_EXISTS", "tenant already exists", { tenant_id: command.tenantId });
      return accept({
        type: "TenantCreated",
        tenantId: command.tenantId,
        slug: command.slug,
        displayName: command.displayName,
        plan: command.plan,
        at: command.now,
      });
    case "SuspendTenant":
      if (state === undefined) return notFound();
      if (state.status === "suspended") return accept();
      return accept({ type: "TenantSuspended", tenantId: state.id, reason: command.reason, at: command.now });
    case "ResumeTenant":
      if (state === undefined) return notFound();
      if (state.status === "active") return accept();
      return accept({ type: "TenantResumed", tenantId: state.id, at: command.now });
    case "SetPlan":
      if (state === undefined) return notFound();
      if (state.plan === command.plan) return accept();
      return accept({ type: "PlanChanged", tenantId: state.id, previousPlan: state.plan, plan: command.plan, at: command.now });
    case "SetDisplayName":
      if (state === undefined) return notFound();
      if (command.displayName.length === 0 || [...command.displayName].length > DISPLAY_NAME_MAX) {
        return reject("INVALID_ARGUMENT", `display_name must be 1-${DISPLAY_NAME_MAX} characters`, { field: "display_name" });
      }
      if (state.displayName === command.displayName) return accept();
      return accept({
        type: "TenantDisplayNameChanged",
        tenantId: state.id,
        previousDisplayName: state.displayName,
        displayName: command.displayName,
        at: command.now,
      });
    case "SetEntitlementOverrides": {
      if (state === undefined) return notFound();
      const unknown = command.overrides.features.map((f) => f.featureKey).filter((k) => !isFeatureKey(k));
      if (unknown.length > 0) {
        return reject("INVALID_ARGUMENT", `unknown feature key(s): ${unknown.join(", ")}`, {
          field: "overrides.features",
          feature_key: unknown[0] ?? "",
        });
      }
      const keys = command.overrides.features.map((f) => f.featureKey);
      if (new Set(keys).size !== keys.length) {
        return reject("INVALID_ARGUMENT", "each feature key may be overridden only once", { field: "overrides.features" });
      }
      if (command.overrides.unlimitedRuns && command.overrides.monthlyRunAllowance !== undefined) {
        return reject("INVALID_ARGUMENT", "set either monthly_run_allowance or unlimited_runs, not both", { field: "overrides" });
      }
      const normalized = normalizeOverrides(command.overrides);
      if (sameOverrides(state.overrides, normalized)) return accept();
      return accept({
        type: "EntitlementOverridesChanged",
        tenantId: state.id,
        previous: state.overrides,
        overrides: normalized,
        at: command.now,
      });
    }
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}

/** Sorted by feature key, without absent optionals, so equal sets compare equal. */
export function normalizeOverrides(o: EntitlementOverrides): EntitlementOverrides {
  const features = [...o.features]
    .sort((a, b) => a.featureKey.localeCompare(b.featureKey))
    .map((f) => ({
      featureKey: f.featureKey,
      enabled: f.enabled,
      ...(f.config && Object.keys(f.config).length > 0 ? { config: f.config } : {}),
    }));
  return {
    features,
    ...(o.monthlyRunAllowance !== undefined ? { monthlyRunAllowance: o.monthlyRunAllowance } : {}),
    ...(o.unlimitedRuns ? { unlimitedRuns: true } : {}),
    ...(o.maxActiveApiKeys !== undefined ? { maxActiveApiKeys: o.maxActiveApiKeys } : {}),
  };
}

function sameOverrides(a: EntitlementOverrides, b: EntitlementOverrides): boolean {
  return JSON.stringify(normalizeOverrides(a)) === JSON.stringify(normalizeOverrides(b));
}
