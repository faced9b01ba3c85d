import type { PlatformPrincipal, Principal, TenantPrincipal } from "../context.js";
import { authorizationRefusal } from "./refusal.js";

/**
 * The two "which kind of key" guards every handler uses, written once. The permission table
 * (permissions.ts) already refuses the wrong kind of key for most procedures; handlers check
 * again because they never trust their caller, and some calls decide by the request (a
 * platform key flag, a quota change). A refusal is PERMISSION_DENIED RBAC_FORBIDDEN with
 * ErrorInfo metadata `principal_kind`, recorded once as rbac.forbidden by the authorization
 * interceptor (refusal.ts).
 */

/**
 * The caller as a tenant member. Platform keys administer the installation; they do not act
 * on a tenant's own content: refused with "platform keys cannot `action`; use a key of the
 * tenant" (e.g. `action` "run agents or read sessions").
 */
export function requireTenantPrincipal(principal: Principal, action: string): TenantPrincipal {
  if (principal.kind !== "tenant") {
    throw authorizationRefusal("RBAC_FORBIDDEN", `platform keys cannot ${action}; use a key of the tenant`, { principal_kind: principal.kind });
  }
  return principal;
}

/**
 * The caller as a platform operator; a tenant key is refused with "only platform operators
 * can `action`" (e.g. `action` "change quotas").
 */
export function requirePlatformPrincipal(principal: Principal, action: string): PlatformPrincipal {
  if (principal.kind !== "platform") {
    throw authorizationRefusal("RBAC_FORBIDDEN", `only platform operators can ${action}`, { principal_kind: principal.kind });
  }
  return principal;
}
