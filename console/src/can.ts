import { PrincipalKind, type Principal as PrincipalMessage, Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { authorize } from "../../services/kernel/authz/authorize.js";
import { permissionOf } from "../../services/kernel/authz/permissions.js";
import type { Principal, TenantRole } from "../../services/kernel/context.js";

const ROLES: Partial<Record<Role, TenantRole>> = {
  [Role.OWNER]: "owner",
  [Role.ADMIN]: "admin",
  [Role.EDITOR]: "editor",
  [Role.VIEWER]: "viewer",
};
const PLANS = { [Plan.FREE]: "free", [Plan.PRO]: "pro", [Plan.ENTERPRISE]: "enterprise" } as const;

/** The signed-in principal (WhoAmI) in the shape the permission table's `authorize` takes. */
export function principalOf(p: PrincipalMessage): Principal {
  if (p.kind === PrincipalKind.PLATFORM) return { kind: "platform", keyId: p.keyId, name: p.name };
  const features: Record<string, boolean> = {};
  for (const f of p.entitlements?.features ?? []) features[f.key] = f.enabled;
  return {
    kind: "tenant",
    keyId: p.keyId,
    name: p.name,
    tenantId: p.tenantId,
    tenantSlug: p.tenantSlug,
    role: ROLES[p.role] ?? "viewer",
    plan: PLANS[p.plan as keyof typeof PLANS] ?? "free",
    entitlements: { features, featureConfig: {}, monthlyRunAllowance: undefined, maxActiveApiKeys: undefined },
  };
}

/**
 * Whether the principal may call `/<service>/<Method>`: the same permission table and decision
 * the servers enforce (services/kernel/authz), so the console shows and enables only what will work.
 */
export function can(principal: Principal | undefined, procedure: string): boolean {
  if (principal === undefined) return false;
  return authorize({ permission: permissionOf(procedure), principal, requestTenantId: undefined }).kind === "allowed";
}
