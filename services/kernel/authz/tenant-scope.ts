import type { HandlerContext } from "@connectrpc/connect";
import { principalKey, type Principal } from "../context.js";
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

