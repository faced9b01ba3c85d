import { create, type JsonObject } from "@bufbuild/protobuf";
import { PrincipalKind, type Principal as PrincipalMessage, PrincipalSchema, Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import { EntitlementSource, type Entitlements, EntitlementsSchema, Plan } from "../../../gen/nexus/auth/v1/tenant_pb.js";
import type { PlanName, Principal, PrincipalEntitlements, TenantRole } from "../context.js";
import { roleToProto } from "./access-recorder.js";

const PLAN_TO_PROTO: Readonly<Record<PlanName, Plan>> = { free: Plan.FREE, pro: Plan.PRO, enterprise: Plan.ENTERPRISE };

/** The proto Plan of a plan name. */
export function planToProto(plan: PlanName): Plan {
  return PLAN_TO_PROTO[plan];
}

/** The plan name of a proto Plan; undefined for PLAN_UNSPECIFIED or unknown values. */
export function planFromProto(plan: Plan): PlanName | undefined {
  switch (plan) {
    case Plan.FREE:
      return "free";
    case Plan.PRO:
      return "pro";
    case Plan.ENTERPRISE:
      return "enterprise";
    default:
      return undefined;
  }
}

/** The tenant role of a proto Role; undefined for ROLE_UNSPECIFIED or unknown values. */
export function roleFromProto(role: Role): TenantRole | undefined {
  switch (role) {
    case Role.OWNER:
      return "owner";
    case Role.ADMIN:
      return "admin";
    case Role.EDITOR:
      return "editor";
    case Role.VIEWER:
      return "viewer";
    default:
      return undefined;
  }
}

/** A principal's compact entitlements as the proto message (sources are not known here). */
export function entitlementsToProto(e: PrincipalEntitlements, sources?: Readonly<Record<string, EntitlementSource>>): Entitlements {
  return create(EntitlementsSchema, {
    features: Object.keys(e.features)
      .sort()
      .map((key) => ({
        key,
        enabled: e.features[key] === true,
        source: sources?.[key] ?? EntitlementSource.UNSPECIFIED,
        ...(e.featureConfig[key] ? { config: e.featureConfig[key] as JsonObject } : {}),
      })),
    ...(e.monthlyRunAllowance !== undefined ? { monthlyRunAllowance: BigInt(e.monthlyRunAllowance) } : {}),
    ...(e.maxActiveApiKeys !== undefined ? { maxActiveApiKeys: e.maxActiveApiKeys } : {}),
  });
}

/** The proto Principal (AuthenticateResponse, WhoAmIResponse) of a principal. */
export function principalToProto(p: Principal, entitlements?: Entitlements): PrincipalMessage {
  if (p.kind === "platform") {
    return create(PrincipalSchema, { kind: PrincipalKind.PLATFORM, keyId: p.keyId, name: p.name });
  }
  return create(PrincipalSchema, {
    kind: PrincipalKind.TENANT,
    keyId: p.keyId,
    name: p.name,
    tenantId: p.tenantId,
    tenantSlug: p.tenantSlug,
    role: roleToProto(p.role),
    plan: planToProto(p.plan),
    entitlements: entitlements ?? entitlementsToProto(p.entitlements),
    userId: p.userId ?? "",
    groups: [...(p.groups ?? [])],
  });
}

/** Reads a proto Principal back; throws when it is not a complete platform or tenant principal. */
export function principalFromProto(m: PrincipalMessage): Principal {
  if (m.kind === PrincipalKind.PLATFORM) return { kind: "platform", keyId: m.keyId, name: m.name };
  const role = roleFromProto(m.role);
  const plan = planFromProto(m.plan);
  if (m.kind !== PrincipalKind.TENANT || role === undefined || plan === undefined || !m.tenantId) {
    throw new Error("incomplete principal in Authenticate response");
  }
  const features: Record<string, boolean> = {};
  const featureConfig: Record<string, Readonly<Record<string, unknown>>> = {};
  for (const f of m.entitlements?.features ?? []) {
    features[f.key] = f.enabled;
    if (f.config && Object.keys(f.config).length > 0) featureConfig[f.key] = f.config as Record<string, unknown>;
  }
  return {
    kind: "tenant",
    keyId: m.keyId,
    name: m.name,
    tenantId: m.tenantId,
    tenantSlug: m.tenantSlug,
    role,
    plan,
    entitlements: {
      features,
      featureConfig,
      monthlyRunAllowance: m.entitlements?.monthlyRunAllowance === undefined ? undefined : Number(m.entitlements.monthlyRunAllowance),
      maxActiveApiKeys: m.entitlements?.maxActiveApiKeys,
    },
    ...(m.userId ? { userId: m.userId } : {}),
    ...(m.groups.length > 0 ? { groups: [...m.groups] } : {}),
  };
}
