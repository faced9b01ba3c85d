import type { Principal, TenantRole } from "../context.js";
import { CLASS_MIN_ROLE, type Permission } from "./permissions.js";

const RANK: Readonly<Record<TenantRole, number>> = { owner: 4, admin: 3, editor: 2, viewer: 1 };

/** Why the permission table refuses a call (the ErrorInfo reasons of rbac.forbidden). */
export type ForbiddenReason = "RBAC_FORBIDDEN" | "TENANT_MISMATCH" | "FEATURE_NOT_ENABLED";

/** The permission table's answer for one call. */
export type AuthorizationDecision =
  | { kind: "allowed" }
  | {
      kind: "denied";
      reason: ForbiddenReason;
      message: string;
      /** Weakest tenant role the RPC admits; undefined when platform-only (or unlisted). */
      requiredRole: TenantRole | undefined;
      /** The missing feature, for FEATURE_NOT_ENABLED. */
      featureKey?: string;
    };

/** What {@link authorize} looks at. */
export interface AuthorizationInput {
  /** The procedure's rule; undefined when the table does not list it. */
  permission: Permission | undefined;
  /** Undefined only for public RPCs. */
  principal: Principal | undefined;
  /** The request's `tenant_id` field (empty or undefined when absent or unset). */
  requestTenantId: string | undefined;
}

/**
 * Decides one call against the permission table. Order: listed at all → principal class and
 * role → tenant boundary (a tenant principal naming another tenant → TENANT_MISMATCH) →
 * required feature. Pure: the caller records and reports the refusal.
 */
export function authorize(input: AuthorizationInput): AuthorizationDecision {
  const { permission, principal } = input;
  if (permission === undefined) {
    return deny("RBAC_FORBIDDEN", "this procedure is not in the permission table and is closed to everyone", undefined);
  }
  if (permission.class === "public") return { kind: "allowed" };
  if (principal === undefined) return deny("RBAC_FORBIDDEN", "this procedure needs an authenticated principal", undefined);

  const requiredRole =
    permission.class === "read" || permission.class === "write" || permission.class === "admin"
      ? CLASS_MIN_ROLE[permission.class]
      : undefined;

  if (principal.kind === "platform") {
    if (permission.class === "authenticated" || permission.class === "platform" || permission.platform === true) {
      return { kind: "allowed" };
    }
    return deny(
      "RBAC_FORBIDDEN",
      "platform keys cannot call this procedure: it acts on a tenant's own content; use a key of that tenant",
      requiredRole,
    );
  }

  if (permission.class === "platform") {
    return deny("RBAC_FORBIDDEN", "only platform operators can call this procedure", undefined);
  }
  if (requiredRole !== undefined && RANK[principal.role] < RANK[requiredRole]) {
    return deny(
      "RBAC_FORBIDDEN",
      `the ${principal.role} role cannot call this procedure; it needs ${requiredRole} or stronger`,
      requiredRole,
    );
  }
  const requested = input.requestTenantId;
  if (requested !== undefined && requested !== "" && requested !== principal.tenantId) {
    return deny(
      "TENANT_MISMATCH",
      "tenant_id names another tenant: a tenant key acts only inside its own tenant (leave tenant_id empty)",
      requiredRole,
    );
  }
  if (permission.feature !== undefined && principal.entitlements.features[permission.feature] !== true) {
    return {
      kind: "denied",
      reason: "FEATURE_NOT_ENABLED",
      message: `feature ${permission.feature} is not enabled for this tenant's plan`,
      requiredRole,
      featureKey: permission.feature,
    };
  }
  return { kind: "allowed" };
}

function deny(reason: ForbiddenReason, message: string, requiredRole: TenantRole | undefined): AuthorizationDecision {
  return { kind: "denied", reason, message, requiredRole };
}
