import type { HandlerContext } from "@connectrpc/connect";
import { type PlatformPrincipal, type Principal, principalKey, type TenantPrincipal } from "../context.js";
import { domainError } from "../errors.js";
import { authorizationRefusal } from "./refusal.js";

/**
 * The principal of the call being handled. The gate guarantees one on every non-public RPC;
 * a missing principal here means the handler runs without the gate (a wiring bug), so it
 * fails closed with UNAUTHENTICATED.
 */
export function principalOf(ctx: Pick<HandlerContext, "values">): Principal {
  const principal = ctx.values.get(principalKey);
  if (principal === undefined) throw domainError("AUTH_UNAUTHORIZED", "this call needs an API key");
  return principal;
}

/**
 * The caller as a tenant member, the one "tenant key only" guard: platform keys administer the
 * installation, they do not act on a tenant's own content (corpora, documents, search,
 * sessions, runs). A platform key → PERMISSION_DENIED RBAC_FORBIDDEN with ErrorInfo
 * `principal_kind`, recorded once as rbac.forbidden by the authorization interceptor. The
 * permission table already refuses most such calls; handlers check again because they never
 * trust their caller. `refusal` words the message for the call.
 */
export function requireTenantPrincipal(
  principal: Principal,
  refusal = "platform keys cannot act on tenant data; use a key of the tenant",
): TenantPrincipal {
  if (principal.kind !== "tenant") throw authorizationRefusal("RBAC_FORBIDDEN", refusal, { principal_kind: principal.kind });
  return principal;
}

/** The caller as a platform operator, the one "platform key only" guard; see {@link requireTenantPrincipal}. */
export function requirePlatformPrincipal(principal: Principal, refusal = "only platform keys may use this call"): PlatformPrincipal {
  if (principal.kind !== "platform") throw authorizationRefusal("RBAC_FORBIDDEN", refusal, { principal_kind: principal.kind });
  return principal;
}

/** {@link requireTenantPrincipal} for the principal of the call being handled (no principal → UNAUTHENTICATED). */
export function tenantPrincipal(ctx: Pick<HandlerContext, "values">, refusal?: string): TenantPrincipal {
  return requireTenantPrincipal(principalOf(ctx), refusal);
}

/** {@link requirePlatformPrincipal} for the principal of the call being handled (no principal → UNAUTHENTICATED). */
export function platformPrincipal(ctx: Pick<HandlerContext, "values">, refusal?: string): PlatformPrincipal {
  return requirePlatformPrincipal(principalOf(ctx), refusal);
}

/**
 * The tenant a tenant-scoped request acts on, following the API rule for `tenant_id`: tenant
 * principals may leave it empty (their own tenant) and get PERMISSION_DENIED TENANT_MISMATCH
 * for any other value (the interceptor already refused those; checked again here because
 * handlers must never trust their caller); platform principals must set it
 * (INVALID_ARGUMENT otherwise).
 */
export function tenantScope(principal: Principal, requestedTenantId: string | undefined): string {
  const requested = requestedTenantId ?? "";
  if (principal.kind === "tenant") {
    if (requested !== "" && requested !== principal.tenantId) {
      throw authorizationRefusal("TENANT_MISMATCH", "tenant_id names another tenant: a tenant key acts only inside its own tenant");
    }
    return principal.tenantId;
  }
  if (requested === "") {
    throw domainError("INVALID_ARGUMENT", "platform principals must name the tenant (tenant_id)", { field: "tenant_id" });
  }
  return requested;
}
