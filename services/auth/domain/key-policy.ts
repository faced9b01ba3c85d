import type { Principal, TenantRole } from "../../kernel/context.js";
import type { ApiKey } from "./api-key.js";
import { accept, type Decision, reject } from "./decision.js";

/**
 * Who may do what to which key, beyond the permission table's per-RPC role check:
 * a caller grants at most its own role (admins cannot mint owners), only owners (and
 * platform operators) touch owner keys, and a tenant principal never sees another tenant's
 * keys or platform keys (NOT_FOUND, never "forbidden", so existence does not leak).
 */

/** Role strength: owner 4 > admin 3 > editor 2 > viewer 1. */
export const ROLE_RANK: Readonly<Record<TenantRole, number>> = { owner: 4, admin: 3, editor: 2, viewer: 1 };

/** True when `role` is at least `minimum`. */
export function roleAtLeast(role: TenantRole, minimum: TenantRole): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[minimum];
}

/** Whether `actor` may give a key the role `role`. */
export function mayGrantRole(actor: Principal, role: TenantRole): Decision<never> {
  if (actor.kind === "platform") return accept();
  if (roleAtLeast(actor.role, role)) return accept();
  return reject("RBAC_FORBIDDEN", `a ${actor.role} cannot grant the ${role} role`, { required_role: role });
}

/** Whether `actor` may see the key at all (else it is reported as NOT_FOUND). */
export function maySeeKey(actor: Principal, key: ApiKey): boolean {
  if (actor.kind === "platform") return true;
  return key.kind === "tenant" && key.tenantId === actor.tenantId;
}

/** Whether `actor` may revoke, rotate, reactivate or re-role the key. */
export function mayManageKey(actor: Principal, key: ApiKey): Decision<never> {
  if (!maySeeKey(actor, key)) return reject("NOT_FOUND", "API key not found");
  if (actor.kind === "platform") return accept();
  if (key.role === "owner" && actor.role !== "owner") {
    return reject("RBAC_FORBIDDEN", "only owners can manage owner keys", { required_role: "owner" });
  }
  return accept();
}
