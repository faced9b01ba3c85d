import type { HandlerContext } from "@connectrpc/connect";
import { principalOf } from "../../kernel/authz/tenant-scope.js";
import type { PlatformPrincipal, TenantPrincipal } from "../../kernel/context.js";
import { domainError } from "../../kernel/errors.js";

/**
 * The tenant principal of a data-plane call (corpora, documents, search). Data-plane requests
 * carry no tenant id: the tenant is the authenticated key's. No principal → UNAUTHENTICATED;
 * a platform key → PERMISSION_DENIED RBAC_FORBIDDEN (platform keys administer the
 * installation, they do not read customers' documents; the permission table agrees).
 */
export function tenantPrincipal(ctx: Pick<HandlerContext, "values">): TenantPrincipal {
  const principal = principalOf(ctx);
  if (principal.kind !== "tenant") {
    throw domainError("RBAC_FORBIDDEN", "platform keys cannot act on tenant data; use a key of the tenant", {
      principal_kind: principal.kind,
    });
  }
  return principal;
}

/** The platform principal of an installation-wide call (dead letters); others are refused. */
export function platformPrincipal(ctx: Pick<HandlerContext, "values">): PlatformPrincipal {
  const principal = principalOf(ctx);
  if (principal.kind !== "platform") {
    throw domainError("RBAC_FORBIDDEN", "only platform keys may use this call", { principal_kind: principal.kind });
  }
  return principal;
}
